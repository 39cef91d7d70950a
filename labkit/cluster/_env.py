"""What a job learns about itself from SLURM's environment (no SLURM command is run)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from labkit.cluster._slurm import current_job_id

__all__ = ["in_slurm_job", "slurm_tags"]


def in_slurm_job(environ: Mapping[str, str] | None = None) -> bool:
    """True inside a batch job (not in an interactive ``salloc`` shell)."""
    env = os.environ if environ is None else environ
    return "SLURM_JOB_ID" in env and env.get("SLURM_JOB_NAME") not in ("bash", "interactive")


def slurm_tags(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """MLflow tags naming the job, the cluster and the nodes; empty outside SLURM."""
    env = os.environ if environ is None else environ
    job_id = current_job_id(env)
    if job_id is None:
        return {}
    tags = {
        "slurm.job_id": job_id,
        "slurm.cluster": env.get("LABKIT_CLUSTER") or env.get("SLURM_CLUSTER_NAME", ""),
        "slurm.nodelist": env.get("SLURM_JOB_NODELIST", ""),
        "slurm.partition": env.get("SLURM_JOB_PARTITION", ""),
        "slurm.restarts": env.get("SLURM_RESTART_COUNT", "0"),
        "slurm.ntasks": env.get("SLURM_NTASKS", "1"),
    }
    if env.get("SLURM_ARRAY_JOB_ID"):
        tags["slurm.array_job_id"] = env["SLURM_ARRAY_JOB_ID"]
    return tags
