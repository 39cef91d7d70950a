"""What a job learns about itself from SLURM's environment (no SLURM command is run).

Every function takes the environment as an argument, given by the caller at the edge (the CLI,
or the runner for the job it runs). ``None`` still means this process's environment, read in one
place, :func:`environ_or_process`, for the callers that do not pass theirs yet.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["current_job_id", "environ_or_process", "in_slurm_job", "slurm_tags"]


def environ_or_process(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    """``environ``, or (``None``) this process's environment: the one read of ``os.environ`` in
    ``labkit.cluster``, for callers that do not pass the environment from their edge yet."""
    return os.environ if environ is None else environ


def current_job_id(environ: Mapping[str, str] | None = None) -> str | None:
    """This process's job id as ``scontrol``/``sacct`` write it (``A_T`` for an array task)."""
    env = environ_or_process(environ)
    array = env.get("SLURM_ARRAY_JOB_ID")
    if array and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{array}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def in_slurm_job(environ: Mapping[str, str] | None = None) -> bool:
    """True inside a batch job (not in an interactive ``salloc`` shell)."""
    env = environ_or_process(environ)
    return "SLURM_JOB_ID" in env and env.get("SLURM_JOB_NAME") not in ("bash", "interactive")


def slurm_tags(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """MLflow tags naming the job, the cluster and the nodes; empty outside SLURM."""
    env = environ_or_process(environ)
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
