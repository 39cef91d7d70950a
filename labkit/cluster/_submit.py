"""``labkit submit``: an experiment + a site profile → a run directory, an sbatch script, a job id.

The experiment is resolved on the login node (file + the profile's overrides + the user's) and
written to the run directory; the job runs that file, so no override ever passes through a
shell, and editing the experiment file after submitting does not change the queued job. A
requeued job runs the same script and resumes in the same run directory. Rendering, ``sbatch``
and the list of jobs are the :class:`~labkit.cluster.Executor`'s.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

from labkit._rundir import RunDir
from labkit.cluster._executor import (
    Executor,
    Submission,
    adapt_experiment,
    check_job_imports,
    job_environment,
    launcher,
)
from labkit.cluster._jobs import JOBS_FILE, JobRecord, known_jobs, record_job
from labkit.cluster._profile import Profile
from labkit.cluster._render import JobSpec
from labkit.config import Experiment, dump_experiment

__all__ = [
    "JOBS_FILE",
    "Submission",
    "adapt_experiment",
    "check_job_imports",
    "job_environment",
    "known_jobs",
    "launcher",
    "record_job",
    "run_job",
    "submit_run",
]


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


def submit_run(
    exp: Experiment,
    profile: Profile,
    profile_path: Path | None,
    *,
    source: Path | None = None,
    command: str | None = None,
    dry_run: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Submission:
    """Render the job for ``exp``; unless ``dry_run``, create its run directory and submit it.
    ``environ``: the environment sbatch passes on to the job (default: this process's)."""
    profile = profile.with_mail(exp.notify, "run")  # notify.email: SLURM mails the end of the job
    executor = Executor(profile, profile_path, environ)
    executor.check(exp)
    exp = executor.adapt(exp)
    planned = RunDir.plan(exp.runs_root, exp.name)
    job = run_job(exp, profile, planned.path, source)
    if dry_run:
        return executor.submit(job, script_file=planned.job_script, dry_run=True)
    run_dir = planned.make(status="SUBMITTED")
    try:
        run_dir.config_file.write_text(dump_experiment(exp))
        run_dir.update(
            experiment_file=str(source) if source else None, submit_command=command, cluster=profile.name
        )
        done = executor.submit(job, script_file=run_dir.job_script)
    except BaseException:
        shutil.rmtree(run_dir.path, ignore_errors=True)  # nothing ran: leave no half-made run behind
        raise
    assert done.job_id is not None
    run_dir.update(slurm_job_id=done.job_id, status="PENDING")
    record = JobRecord(kind="run", name=exp.name, gpus=profile.gpus)
    executor.record(exp.runs_root, job_id=done.job_id, record=record, directory=run_dir.path)
    return done


def _version() -> str:
    from labkit import __version__

    return __version__
