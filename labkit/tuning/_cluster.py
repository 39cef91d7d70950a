"""``labkit tune --cluster``: the study's workers as one SLURM job array; nothing stays behind on
the login node.

The login node creates the study and queues its trials, then submits an array of K workers
(``labkit tune worker``) that claim trials from the shared storage, and one small job that runs
after the whole array has ended (``--dependency=afterany``) to summarise the study onto its
MLflow parent run. The storage URL reaches the jobs in the environment (sbatch passes it on),
never in the script.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from labkit.cluster import Executor, JobRecord, JobSpec, Profile
from labkit.config import Experiment
from labkit.errors import ConfigError

if TYPE_CHECKING:
    from labkit.tuning._optuna import Heartbeat
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
    environ: Mapping[str, str] | None = None,
) -> StudySubmission:
    """Queue the study's trials and submit ``workers`` array tasks plus the summary job.
    ``environ``: the environment sbatch passes on to the jobs (default: this process's)."""
    stream = stream or sys.stderr
    check_study_name(study)
    check_trials(trials)
    check_workers(workers, MAX_ARRAY_WORKERS, "SLURM array tasks")
    executor = Executor(_worker_profile(profile).with_mail(exp.notify, "workers"), profile_path, environ)
    executor.check(exp)
    if exp.search is not None:
        check_grid_size(exp.search)
    exp = executor.adapt(exp)
    folder = study_folder(exp, study).resolve() / f"slurm-{datetime.now():%Y%m%d-%H%M%S}"
    notes = [
        f"labkit: {workers} workers of study {study} ({exp.name}); storage {_redact(storage)} "
        "(passed in the environment as LABKIT_STUDY_STORAGE)",
        f"profile {profile.name}: one task per worker, {profile.gpus_per_node} GPU(s) each; "
        "a preempted worker is requeued and continues its trial",
    ]
    env = executor.job_environment()
    if profile.cpus_per_task is None:  # else the script sets it from SLURM_CPUS_PER_TASK
        env["OMP_NUM_THREADS"] = "1"
    workers_job = JobSpec(
        job_name=f"{exp.name}-tune",
        command=["tune", "worker", "--study", study],
        launcher=executor.launcher,
        workdir=Path.cwd(),
        output=folder / "slurm-%A_%a.out",
        array=f"0-{workers - 1}",
        environment=env,
        notes=notes,
    )
    # rendered first: a template error stops here, before the study exists
    planned = executor.submit(workers_job, script_file=folder / "workers.sh", dry_run=True)
    if dry_run:
        return StudySubmission(None, None, planned.script, folder)

    handle, parent, total = prepare_study(exp, study=study, storage=storage, trials=trials, stream=stream)
    del handle, parent, total  # the workers and the summary job take it from here
    secret = {"LABKIT_STUDY_STORAGE": storage}  # in the jobs' environment, never in a script
    array = executor.submit(
        workers_job,
        script_file=folder / "workers.sh",
        environment=secret,
        record_to=exp.runs_root,
        record=JobRecord(kind="tune", name=exp.name, gpus=profile.gpus_per_node, array=workers, study=study),
    )
    assert array.job_id is not None
    # the summary: one small CPU task after every worker has ended (however it ended)
    light = executor.light(time="00:15:00")
    own = {"mail_user": profile.mail_user, "mail_type": profile.mail_type}  # not the workers' types
    light = replace(light, profile=light.site.model_copy(update=own).with_mail(exp.notify, "summary"))
    summary_job = JobSpec(
        job_name=f"{exp.name}-tune-summary",
        command=["tune", "summarize", "--study", study],
        launcher=executor.launcher,
        workdir=Path.cwd(),
        output=folder / "slurm-%j-summary.out",
        environment=light.job_environment(),
        notes=[f"labkit: summary of study {study} after array job {array.job_id}"],
    )
    summary = light.submit(
        summary_job,
        script_file=folder / "summary.sh",
        environment=secret,
        after=array.job_id,
        record_to=exp.runs_root,
        record=JobRecord(kind="tune-summary", name=exp.name, gpus=0, study=study),
    )
    return StudySubmission(array.job_id, summary.job_id, array.script, folder)


def summarize_study(
    study: str,
    storage: str,
    *,
    heartbeat: Heartbeat | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """The summary job: fail trials of workers that died, then summarise the study onto its
    parent run (as ``labkit tune`` does when it drives the workers itself) and send its
    ``study_done`` notification. ``environ``: the job's environment, where the experiment's
    ``notify.webhook_env`` variable is looked up (None: no webhook)."""
    from labkit.notify import Notifier
    from labkit.tuning._study import StudyHandle

    handle = StudyHandle.load(study, storage, heartbeat=heartbeat)
    handle.fail_stale()
    exp = handle.experiment()
    assert exp.search is not None
    parent = parent_client(exp, study, sys.stdout)
    if handle.parent_run_key and parent.spool_path.is_file():
        parent.resume()
    else:
        raise ConfigError(f"study {study!r} has no MLflow parent run to summarise onto")
    notifier = (
        Notifier.from_config(exp.notify, environ or {}, stream=sys.stdout) if environ is not None else None
    )
    finish_study(
        handle, parent, exp.search.trials, study_folder(exp, study), notifier=notifier, stream=sys.stdout
    )
