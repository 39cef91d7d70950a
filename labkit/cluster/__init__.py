"""Clusters: site profiles, sbatch scripts rendered from templates, and the SLURM commands.

:class:`Executor` is the one way jobs reach the scheduler (render → sbatch → record; status;
cancel), for runs, study workers and ``labkit reproduce`` alike.

Nothing here imports torch or Lightning: ``labkit submit``, ``status``, ``logs`` and ``cancel``
answer at once on a login node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_exports

__all__, _lazy_getattr = lazy_exports(
    __name__,
    {
        "labkit.cluster._env": ("current_job_id", "in_slurm_job", "slurm_tags"),
        "labkit.cluster._executor": ("Executor", "Submission"),
        "labkit.cluster._jobs": ("JobRecord",),
        "labkit.cluster._profile": ("Profile", "SBATCH_FLAGS", "load_profile"),
        "labkit.cluster._render": ("JobSpec", "render_script"),
        "labkit.cluster._slurm": ("JobInfo", "SlurmError", "cancel", "requeue"),
        "labkit.cluster._status": ("follow_log", "job_table", "log_file"),
        "labkit.cluster._submit": ("submit_run",),
    },
)

if TYPE_CHECKING:  # the same names for type checkers; test_public_surface checks they agree
    from labkit.cluster._env import current_job_id as current_job_id
    from labkit.cluster._env import in_slurm_job as in_slurm_job
    from labkit.cluster._env import slurm_tags as slurm_tags
    from labkit.cluster._executor import Executor as Executor
    from labkit.cluster._executor import Submission as Submission
    from labkit.cluster._jobs import JobRecord as JobRecord
    from labkit.cluster._profile import SBATCH_FLAGS as SBATCH_FLAGS
    from labkit.cluster._profile import Profile as Profile
    from labkit.cluster._profile import load_profile as load_profile
    from labkit.cluster._render import JobSpec as JobSpec
    from labkit.cluster._render import render_script as render_script
    from labkit.cluster._slurm import JobInfo as JobInfo
    from labkit.cluster._slurm import SlurmError as SlurmError
    from labkit.cluster._slurm import cancel as cancel
    from labkit.cluster._slurm import requeue as requeue
    from labkit.cluster._status import follow_log as follow_log
    from labkit.cluster._status import job_table as job_table
    from labkit.cluster._status import log_file as log_file
    from labkit.cluster._submit import submit_run as submit_run
else:
    __getattr__ = _lazy_getattr
