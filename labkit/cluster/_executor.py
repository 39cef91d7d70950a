"""The one door to SLURM from a login node: render → sbatch → record; status; cancel.

:class:`Executor` is built from a site profile. It checks and adapts an experiment for the site,
renders a :class:`~labkit.cluster.JobSpec` into the sbatch script, writes and submits it (job
arrays included), and records the job in ``<runs_root>/jobs.jsonl``; the same object asks for
jobs' state and cancels them. Runs (``labkit submit``, ``labkit reproduce --cluster``), study
workers and study summaries (``labkit tune --cluster``) all go through it, so only this package
knows which scheduler runs a job and how to talk to it.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from labkit._rundir import JobOptions
from labkit.cluster._classpath import check_class_paths
from labkit.cluster._env import environ_or_process
from labkit.cluster._jobs import JobRecord, record_job
from labkit.cluster._profile import Preemption, Profile
from labkit.cluster._render import JobSpec, render_script
from labkit.cluster._slurm import JobInfo, cancel, query, sbatch
from labkit.cluster._status import job_table
from labkit.config import Experiment, redact_uri, validate_experiment
from labkit.errors import ConfigError, LabkitError

__all__ = [
    "Executor",
    "Submission",
    "adapt_experiment",
    "check_job_imports",
    "check_tracking_uri",
    "job_environment",
    "launcher",
]


@dataclass(frozen=True)
class Submission:
    job_id: str | None  #: None for a dry run
    script: str
    job_dir: Path
    profile: str


@dataclass(frozen=True)
class Executor:
    """SLURM for one site: the only place that renders, submits and records jobs, and asks for
    their state or cancels them.

    ``profile`` (with ``profile_path``, where a site template is looked up) is needed to submit;
    ``Executor()`` without one still answers :meth:`status`, :meth:`query` and :meth:`cancel`.
    ``environ`` is the environment ``sbatch`` runs in and passes on to the job (``None``: this
    process's, inherited).
    """

    profile: Profile | None = None
    profile_path: Path | None = None
    environ: Mapping[str, str] | None = None

    @property
    def site(self) -> Profile:
        """The profile; an error without one (status and cancel need none, a submission does)."""
        if self.profile is None:
            raise LabkitError("submitting a job needs a cluster profile (--cluster PROFILE)")
        return self.profile

    @property
    def launcher(self) -> list[str]:
        """What runs labkit on the node (``python -m labkit`` for the site)."""
        return launcher(self.site)

    def job_environment(self) -> dict[str, str]:
        """The variables the script exports for a labkit job (site name, preemption policy)."""
        return job_environment(self.site)

    def check(self, exp: Experiment, *, workdir: Path | None = None) -> None:
        """Refuse, before anything is queued, what would fail in the job or leak from it: a
        password in ``tracking.uri``, a ``class_path`` that does not resolve from ``workdir``."""
        check_tracking_uri(exp)
        check_job_imports(exp, self.site, workdir)

    def adapt(self, exp: Experiment) -> Experiment:
        """``exp`` with its trainer matched to the site's allocation (devices, nodes, DDP)."""
        return adapt_experiment(exp, self.site)

    def render(self, job: JobSpec) -> str:
        """The sbatch script of ``job`` on this site (the profile's template, if it names one)."""
        return render_script(self.site, self.profile_path, job)

    def light(self, *, time: str = "00:15:00") -> Executor:
        """The same site for a small helper job (one task, one CPU, no GPU, short), e.g. the
        summary job that runs after a study's workers."""
        light = self.site.model_copy(
            update={
                "gpus_per_node": 0,
                "gpu_type": None,
                "tasks_per_node": 1,
                "cpus_per_task": 1,
                "time": time,
                "mem": None,
                "mem_per_cpu": None,
                "exclusive": False,
                "preemption": Preemption(signal="USR1", grace=60, requeue=True),
            }
        )
        return replace(self, profile=light)

    def submit(
        self,
        job: JobSpec,
        *,
        script_file: Path,
        record_to: str | os.PathLike[str] | None = None,
        record: JobRecord | None = None,
        environment: Mapping[str, str] | None = None,
        after: str | None = None,
        dry_run: bool = False,
    ) -> Submission:
        """Render ``job``; unless ``dry_run``, write the script to ``script_file`` and submit it.

        ``environment`` adds variables to the job's environment without writing them into the
        script (a storage URL with a password); ``after`` holds the job until job ``after`` has
        ended, however it ended (``--dependency=afterany``). With ``record_to`` (a runs root) and
        ``record``, the job is added to that root's list of jobs (``labkit status``/``logs``).
        """
        script = self.render(job)
        if dry_run:
            return Submission(None, script, script_file.parent, self.site.name)
        script_file.parent.mkdir(parents=True, exist_ok=True)
        script_file.write_text(script)
        env: Mapping[str, str] | None = self.environ
        if environment:
            env = {**environ_or_process(self.environ), **environment}
        extra = [f"--dependency=afterany:{after}"] if after else []
        job_id = sbatch(script_file, env, extra=extra)
        if record_to is not None and record is not None:
            self.record(record_to, job_id=job_id, record=record, directory=script_file.parent)
        return Submission(job_id, script, script_file.parent, self.site.name)

    def record(
        self, runs_root: str | os.PathLike[str], *, job_id: str, record: JobRecord, directory: Path
    ) -> None:
        """Add a submitted job to ``<runs_root>/jobs.jsonl``, which status, logs and cancel read."""
        entry: dict[str, Any] = {"job_id": job_id, "kind": record.kind}
        if record.array is not None:
            entry["array"] = record.array
        entry |= {"name": record.name, "cluster": self.site.name, "dir": str(directory), "gpus": record.gpus}
        if record.study is not None:
            entry["study"] = record.study
        record_job(runs_root, **entry)

    def status(
        self, ids: Sequence[str], *, runs_root: str | os.PathLike[str]
    ) -> tuple[list[dict[str, str]], float]:
        """One row per job or array task (default: the jobs submitted from ``runs_root``), and
        the GPU-hours of all of them (``labkit status``)."""
        return job_table(list(ids), runs_root)

    def query(self, ids: Sequence[str]) -> dict[str, JobInfo]:
        """Jobs by id as SLURM sees them (an array id expands to its tasks)."""
        return query(ids)

    def cancel(self, ids: Sequence[str], *, signal: str | None = None) -> None:
        """Cancel jobs (``scancel``), or send them ``signal``."""
        cancel(ids, signal)


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


def job_environment(profile: Profile) -> dict[str, str]:
    """What a labkit job learns from its script: the site's name (MLflow tag ``slurm.cluster``)
    and the preemption policy (which signal means "save and requeue")."""
    p = profile.preemption
    return JobOptions(cluster=profile.name, signal=p.signal, requeue=p.requeue).to_environ()


def check_tracking_uri(exp: Experiment) -> None:
    """A password in ``tracking.uri`` must not reach a job script or a run directory."""
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
