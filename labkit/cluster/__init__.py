"""Clusters: site profiles, sbatch scripts rendered from templates, and the SLURM commands.

Nothing here imports torch or Lightning: ``labkit submit``, ``status``, ``logs`` and ``cancel``
answer at once on a login node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_getattr

__all__ = [
    "SBATCH_FLAGS",
    "JobInfo",
    "JobSpec",
    "Profile",
    "SlurmError",
    "Submission",
    "load_profile",
    "render_script",
    "slurm_tags",
    "submit_run",
]

if TYPE_CHECKING:
    from labkit.cluster._env import slurm_tags
    from labkit.cluster._profile import SBATCH_FLAGS, Profile, load_profile
    from labkit.cluster._render import JobSpec, render_script
    from labkit.cluster._slurm import JobInfo, SlurmError
    from labkit.cluster._submit import Submission, submit_run

__getattr__ = lazy_getattr(
    __name__,
    {
        "SBATCH_FLAGS": "labkit.cluster._profile",
        "Profile": "labkit.cluster._profile",
        "load_profile": "labkit.cluster._profile",
        "JobSpec": "labkit.cluster._render",
        "render_script": "labkit.cluster._render",
        "JobInfo": "labkit.cluster._slurm",
        "SlurmError": "labkit.cluster._slurm",
        "Submission": "labkit.cluster._submit",
        "submit_run": "labkit.cluster._submit",
        "slurm_tags": "labkit.cluster._env",
    },
)
