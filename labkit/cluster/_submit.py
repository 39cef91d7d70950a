"""``labkit submit``: an experiment + a site profile → a run directory, an sbatch script, a job id.

The experiment is resolved on the login node (file + the profile's overrides + the user's) and
written to the run directory; the job runs that file, so no override ever passes through a
shell, and editing the experiment file after submitting does not change the queued job. A
requeued job runs the same script and resumes in the same run directory.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from labkit._rundir import RunDir
from labkit.cluster._classpath import check_class_paths
from labkit.cluster._profile import Profile
from labkit.cluster._render import JobSpec, render_script
from labkit.cluster._slurm import sbatch
from labkit.config import Experiment, dump_experiment, redact_uri, validate_experiment
from labkit.errors import ConfigError

__all__ = [
    "JOBS_FILE",
    "Submission",
    "adapt_experiment",
    "check_job_imports",
    "job_environment",
    "known_jobs",
    "launcher",
    "run_job",
    "submit_run",
]

JOBS_FILE = "jobs.jsonl"  #: in the runs root: one line per submitted job (labkit status, logs)


@dataclass(frozen=True)
class Submission:
    job_id: str | None  #: None for a dry run
    script: str
    job_dir: Path
    profile: str


def launcher(profile: Profile) -> list[str]:
    """What runs labkit on the node: the profile's ``python``, else the Python running labkit
    now (clusters share the file system between login and compute nodes)."""
    if profile.python:
        python = shlex.split(profile.python)
    elif profile.apptainer is not None:  # this Python's path means nothing inside the image
        python = ["python"]
    else:
        python = [sys.executable]
    return [*python, "-m", "labkit"]


def adapt_experiment(exp: Experiment, profile: Profile) -> Experiment:
    """The experiment's trainer matched to the allocation: Lightning must see the same number of
    devices per node and nodes as SLURM gives, or it refuses to start."""
    t = exp.trainer
    update: dict[str, Any] = {}
    if profile.gpus_per_node:
        update |= {"accelerator": "gpu", "devices": profile.ntasks_per_node}
    elif profile.world_size > 1:
        update |= {"accelerator": "cpu", "devices": profile.ntasks_per_node}
    if profile.world_size > 1:
        update |= {"num_nodes": profile.nodes, "strategy": t.strategy if t.strategy != "auto" else "ddp"}
    if not update:
        return exp
    # validated again as a whole: model_copy checks nothing, and the profile's numbers must fit
    # the experiment's own bounds (trainer.num_nodes, trainer.devices) before they reach a job
    data = exp.model_dump(mode="json")
    data["trainer"] = {**data["trainer"], **update}
    return validate_experiment(data, source=f"the experiment on cluster profile {profile.name}")


def _check_uri(exp: Experiment) -> None:
    uri = exp.tracking.uri or ""
    if redact_uri(uri) != uri:
        raise ConfigError(
            "tracking.uri holds a password; a job script and its run directory must not: put the "
            "credentials in MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (sbatch passes the "
            "environment on to the job)"
        )


def check_job_imports(exp: Experiment, profile: Profile, workdir: Path | None = None) -> None:
    """Every ``class_path`` of ``exp`` resolves from ``workdir`` (default: here), importing nothing:
    a typo fails now, not on the node after the queue. A job in an Apptainer image runs another
    Python, so there a module not found here is let through (a missing class still is not)."""
    check_class_paths(exp, workdir or Path.cwd(), missing_ok=profile.apptainer is not None)


def run_job(
    exp: Experiment,
    profile: Profile,
    run_dir: Path,
    source: Path | None = None,
    workdir: Path | None = None,
) -> JobSpec:
    """The job that trains ``exp`` in ``run_dir`` (its ``config.yaml``) on ``profile``'s site,
    started in ``workdir`` (default: here, so that a ``class_path`` beside the experiment imports)."""
    t = exp.trainer
    notes = [
        f"labkit {_version()}: experiment {exp.name}" + (f" from {source}" if source else ""),
        f"run directory {run_dir} (a requeued job resumes here)",
        f"profile {profile.name}: {profile.nodes} node(s) x {profile.ntasks_per_node} task(s), "
        f"{profile.gpus_per_node} GPU(s) per node",
        f"trainer: accelerator={t.accelerator} devices={t.devices} num_nodes={t.num_nodes} "
        f"strategy={t.strategy} precision={t.precision}",
    ]
    return JobSpec(
        job_name=exp.name,
        command=["run", str(run_dir / "config.yaml"), "--run-dir", str(run_dir), "--progress", "plain"],
        launcher=launcher(profile),
        workdir=workdir or Path.cwd(),
        output=run_dir / "slurm-%j.out",
        environment=job_environment(profile),
        notes=notes,
    )


def job_environment(profile: Profile) -> dict[str, str]:
    """What a labkit job learns from its script: the site's name (MLflow tag ``slurm.cluster``)
    and the preemption policy (which signal means "save and requeue")."""
    p = profile.preemption
    return {
        "LABKIT_CLUSTER": profile.name,
        "LABKIT_SIGNAL": p.signal,
        "LABKIT_REQUEUE": "1" if p.requeue else "0",
    }


def submit_run(
    exp: Experiment,
    profile: Profile,
    profile_path: Path | None,
    *,
    source: Path | None = None,
    command: str | None = None,
    dry_run: bool = False,
) -> Submission:
    """Render the job for ``exp``; unless ``dry_run``, create its run directory and submit it."""
    _check_uri(exp)
    check_job_imports(exp, profile)
    exp = adapt_experiment(exp, profile)
    planned = RunDir.plan(exp.runs_root, exp.name)
    script = render_script(profile, profile_path, run_job(exp, profile, planned.path, source))
    if dry_run:
        return Submission(None, script, planned.path, profile.name)
    run_dir = planned.make(status="SUBMITTED")
    run_dir.config_file.write_text(dump_experiment(exp))
    run_dir.job_script.write_text(script)
    run_dir.update(
        experiment_file=str(source) if source else None, submit_command=command, cluster=profile.name
    )
    try:
        job_id = sbatch(run_dir.job_script)
    except BaseException:
        shutil.rmtree(run_dir.path, ignore_errors=True)  # nothing ran: leave no half-made run behind
        raise
    run_dir.update(slurm_job_id=job_id, status="PENDING")
    record_job(
        exp.runs_root,
        job_id=job_id,
        kind="run",
        name=exp.name,
        cluster=profile.name,
        dir=str(run_dir.path),
        gpus=profile.gpus,
    )
    return Submission(job_id, script, run_dir.path, profile.name)


def record_job(runs_root: str | os.PathLike[str], **entry: Any) -> None:
    """Append one submitted job to ``<runs_root>/jobs.jsonl`` (read by status, logs, cancel)."""
    entry["submitted"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    path = Path(runs_root) / JOBS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as out:  # one short line per write: appends do not interleave
        cut = False
        if out.seek(0, os.SEEK_END) > 0:
            out.seek(-1, os.SEEK_END)
            cut = out.read(1) != b"\n"
        out.write((b"\n" if cut else b"") + json.dumps(entry).encode() + b"\n")  # after a line cut short


def known_jobs(runs_root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Jobs submitted from this runs root, oldest first."""
    path = Path(runs_root) / JOBS_FILE
    if not path.is_file():
        return []
    jobs = []
    for line in path.read_text().splitlines():
        try:
            jobs.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a full disk: skip it, keep the rest
    return jobs


def _version() -> str:
    from labkit import __version__

    return __version__
