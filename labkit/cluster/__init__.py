"""Clusters: site profiles, sbatch scripts rendered from templates, and the SLURM commands.

:class:`Executor` is the one way jobs reach the scheduler (render → sbatch → record; status;
cancel), for runs, study workers and ``labkit reproduce`` alike.

Nothing here imports torch or Lightning: ``labkit submit``, ``status``, ``logs`` and ``cancel``
answer at once on a login node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_getattr

__all__ = [
    "in_slurm_job",
    "current_job_id",
    "requeue",
    "SBATCH_FLAGS",
    "Executor",
    "JobInfo",
    "JobRecord",
    "JobSpec",
    "Profile",
    "SlurmError",
    "Submission",
    "cancel",
    "follow_log",
    "job_table",
    "load_profile",
    "log_file",
    "render_script",
    "slurm_tags",
    "submit_run",
]

if TYPE_CHECKING:
    from labkit.cluster._env import current_job_id, in_slurm_job, slurm_tags
    from labkit.cluster._executor import Executor, Submission
    from labkit.cluster._jobs import JobRecord
    from labkit.cluster._profile import SBATCH_FLAGS, Profile, load_profile
    from labkit.cluster._render import JobSpec, render_script
    from labkit.cluster._slurm import JobInfo, SlurmError, cancel, requeue
    from labkit.cluster._status import follow_log, job_table, log_file
    from labkit.cluster._submit import submit_run

__getattr__ = lazy_getattr(
    __name__,
    {
        "in_slurm_job": "labkit.cluster._env",
        "current_job_id": "labkit.cluster._env",
        "requeue": "labkit.cluster._slurm",
        **{
            "SBATCH_FLAGS": "labkit.cluster._profile",
            "Profile": "labkit.cluster._profile",
            "load_profile": "labkit.cluster._profile",
            "JobSpec": "labkit.cluster._render",
            "render_script": "labkit.cluster._render",
            "JobInfo": "labkit.cluster._slurm",
            "SlurmError": "labkit.cluster._slurm",
            "Executor": "labkit.cluster._executor",
            "JobRecord": "labkit.cluster._jobs",
            "Submission": "labkit.cluster._executor",
            "submit_run": "labkit.cluster._submit",
            "slurm_tags": "labkit.cluster._env",
        },
        "follow_log": "labkit.cluster._status",
        "job_table": "labkit.cluster._status",
        "log_file": "labkit.cluster._status",
        "cancel": "labkit.cluster._slurm",
    },
)
