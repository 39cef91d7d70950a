"""``labkit tune --cluster``: the study's workers as one SLURM job array; nothing stays behind on
the login node.

The login node creates the study and queues its trials, then submits an array of K workers
(``labkit tune worker``) that claim trials from the shared storage, and one small job that runs
after the whole array has ended (``--dependency=afterany``) to summarise the study onto its
MLflow parent run. The storage URL reaches the jobs in the environment (sbatch passes it on),
never in the script.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

from labkit.cluster._profile import Preemption, Profile
from labkit.cluster._render import JobSpec, render_script
from labkit.cluster._slurm import sbatch
from labkit.cluster._submit import (
    _check_uri,
    adapt_experiment,
    check_job_imports,
    job_environment,
    launcher,
    record_job,
)
from labkit.config import Experiment
from labkit.errors import ConfigError
from labkit.tuning._optuna import check_grid_size
from labkit.tuning._tune import (
    _redact,
    check_study_name,
    check_trials,
    check_workers,
    finish_study,
    parent_client,
    prepare_study,
    study_folder,
)

__all__ = ["MAX_ARRAY_WORKERS", "StudySubmission", "submit_study", "summarize_study"]

#: the most array tasks ``labkit tune --cluster`` submits (SLURM's default MaxArraySize is 1001)
MAX_ARRAY_WORKERS = 1000


@dataclass(frozen=True)
class StudySubmission:
    array_job: str | None  #: None for a dry run
    summary_job: str | None
    script: str
    folder: Path


def _worker_profile(profile: Profile) -> Profile:
    if profile.nodes > 1 or profile.ntasks_per_node > 1:
        raise ConfigError(
            f"cluster profile {profile.name}: a tuning worker is one task on one node "
            f"(got {profile.nodes} node(s) x {profile.ntasks_per_node} task(s)); "
            "use --slurm nodes=1 --slurm gpus_per_node=1 and more --workers instead"
        )
    return profile


def submit_study(
    exp: Experiment,
    profile: Profile,
    profile_path: Path | None,
    *,
    study: str,
    storage: str,
    trials: int | None,
    workers: int,
    dry_run: bool = False,
    stream: TextIO | None = None,
) -> StudySubmission:
    """Queue the study's trials and submit ``workers`` array tasks plus the summary job."""
    stream = stream or sys.stderr
    check_study_name(study)
    check_trials(trials)
    check_workers(workers, MAX_ARRAY_WORKERS, "SLURM array tasks")
    profile = _worker_profile(profile)
    _check_uri(exp)
    check_job_imports(exp, profile)
    if exp.search is not None:
        check_grid_size(exp.search)
    exp = adapt_experiment(exp, profile)
    folder = study_folder(exp, study).resolve() / f"slurm-{datetime.now():%Y%m%d-%H%M%S}"
    notes = [
        f"labkit: {workers} workers of study {study} ({exp.name}); storage {_redact(storage)} "
        "(passed in the environment as LABKIT_STUDY_STORAGE)",
        f"profile {profile.name}: one task per worker, {profile.gpus_per_node} GPU(s) each; "
        "a preempted worker is requeued and continues its trial",
    ]
    env = job_environment(profile)
    if profile.cpus_per_task is None:  # else the script sets it from SLURM_CPUS_PER_TASK
        env["OMP_NUM_THREADS"] = "1"
    workers_job = JobSpec(
        job_name=f"{exp.name}-tune",
        command=["tune", "worker", "--study", study],
        launcher=launcher(profile),
        workdir=Path.cwd(),
        output=folder / "slurm-%A_%a.out",
        array=f"0-{workers - 1}",
        environment=env,
        notes=notes,
    )
    script = render_script(profile, profile_path, workers_job)
    if dry_run:
        return StudySubmission(None, None, script, folder)

    handle, parent, total = prepare_study(exp, study=study, storage=storage, trials=trials, stream=stream)
    del handle, parent, total  # the workers and the summary job take it from here
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "workers.sh").write_text(script)
    job_env = dict(os.environ) | {"LABKIT_STUDY_STORAGE": storage}
    array_job = sbatch(folder / "workers.sh", job_env)
    # the summary: one small CPU task after every worker has ended (however it ended)
    light = profile.model_copy(
        update={
            "gpus_per_node": 0,
            "gpu_type": None,
            "tasks_per_node": 1,
            "cpus_per_task": 1,
            "time": "00:15:00",
            "mem": None,
            "mem_per_cpu": None,
            "exclusive": False,
            "preemption": Preemption(signal="USR1", grace=60, requeue=True),
        }
    )
    summary = JobSpec(
        job_name=f"{exp.name}-tune-summary",
        command=["tune", "summarize", "--study", study],
        launcher=launcher(profile),
        workdir=Path.cwd(),
        output=folder / "slurm-%j-summary.out",
        environment=job_environment(light),
        notes=[f"labkit: summary of study {study} after array job {array_job}"],
    )
    (folder / "summary.sh").write_text(render_script(light, profile_path, summary))
    summary_job = sbatch(folder / "summary.sh", job_env, extra=[f"--dependency=afterany:{array_job}"])
    common = {"name": exp.name, "cluster": profile.name, "dir": str(folder), "study": study}
    record_job(
        exp.runs_root, job_id=array_job, kind="tune", array=workers, gpus=profile.gpus_per_node, **common
    )
    record_job(exp.runs_root, job_id=summary_job, kind="tune-summary", gpus=0, **common)
    return StudySubmission(array_job, summary_job, script, folder)


def summarize_study(study: str, storage: str) -> None:
    """The summary job: fail trials of workers that died, then summarise the study onto its
    parent run (as ``labkit tune`` does when it drives the workers itself)."""
    from labkit.tuning._study import StudyHandle

    handle = StudyHandle.load(study, storage)
    handle.fail_stale()
    exp = handle.experiment()
    assert exp.search is not None
    parent = parent_client(exp, study, sys.stdout)
    if handle.parent_run_key and parent.spool_path.is_file():
        parent.resume()
    else:
        raise ConfigError(f"study {study!r} has no MLflow parent run to summarise onto")
    finish_study(handle, parent, exp.search.trials, study_folder(exp, study))
