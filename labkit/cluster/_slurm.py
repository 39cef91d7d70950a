"""The SLURM commands labkit uses: sbatch, scontrol, sacct, scancel (argument lists, never a shell).

``sacct`` needs the accounting daemon (slurmdbd); many small clusters run without one and
``sacct`` then fails. Job state is read with ``sacct`` where it works and with ``scontrol show
job`` (which keeps finished jobs for ``MinJobAge``, 5 minutes by default) where it does not.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from labkit.cluster._env import current_job_id
from labkit.errors import SlurmError

__all__ = [
    "TERMINAL",
    "JobInfo",
    "SlurmError",
    "cancel",
    "current_job_id",
    "query",
    "requeue",
    "sbatch",
]

#: states after which a job does not run again (unless requeued by hand)
TERMINAL = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
)
_JOB_ID = re.compile(r"^\d+(_\d+)?$")


@dataclass(frozen=True)
class JobInfo:
    """One job (or one array task) as SLURM sees it."""

    job_id: str  #: "123", or "123_4" for task 4 of array 123
    name: str
    state: str
    elapsed_s: int
    nodelist: str
    gpus: int
    stdout: str | None = None
    restarts: int = 0
    reason: str = ""

    @property
    def gpu_hours(self) -> float:
        return self.elapsed_s * self.gpus / 3600.0


def check_job_ids(ids: Sequence[str]) -> list[str]:
    bad = [i for i in ids if not _JOB_ID.match(i)]
    if bad:
        raise SlurmError(
            f"not a SLURM job id: {', '.join(map(repr, bad))} (write 123, or 123_4 for an array task)"
        )
    return list(ids)


def _run(cmd: Sequence[str], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(cmd),
            check=False,
            capture_output=True,
            text=True,
            env=dict(env) if env else None,
            timeout=120,
        )
    except FileNotFoundError:
        raise SlurmError(
            f"{cmd[0]} not found: labkit talks to SLURM through its commands; run this on a login node "
            "of a SLURM cluster (or use labkit run to train here)"
        ) from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{cmd[0]} did not answer within 120 s: is slurmctld reachable?") from None


def sbatch(script: Path, env: Mapping[str, str] | None = None, extra: Sequence[str] = ()) -> str:
    """Submit ``script``; return the job id (``sbatch --parsable``)."""
    out = _run(["sbatch", "--parsable", *extra, str(script)], env)
    if out.returncode != 0:
        raise SlurmError(f"sbatch refused {script}: {out.stderr.strip() or out.stdout.strip()}")
    job_id = out.stdout.strip().splitlines()[-1].split(";")[0]  # "123" or "123;cluster"
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed no job id: {out.stdout.strip()!r}")
    return job_id


def cancel(ids: Sequence[str], signal: str | None = None) -> None:
    cmd = ["scancel", *([f"--signal={signal}"] if signal else []), *check_job_ids(ids)]
    out = _run(cmd)
    if out.returncode != 0:
        raise SlurmError(f"scancel failed: {out.stderr.strip()}")


def requeue(job_id: str) -> None:
    """Put a running job back in the queue (``scontrol requeue``); it restarts its script."""
    out = _run(["scontrol", "requeue", *check_job_ids([job_id])])
    if out.returncode != 0:
        raise SlurmError(f"scontrol requeue {job_id} failed: {out.stderr.strip()}")


def query(ids: Sequence[str]) -> dict[str, JobInfo]:
    """Jobs by id (array ids expand to their tasks): sacct where accounting exists, else scontrol."""
    ids = check_job_ids(ids)
    if not ids:
        return {}
    found = _sacct(ids)
    if found is None:
        found = {}
        for job_id in ids:
            found.update(_scontrol(job_id))
    return found


def _sacct(ids: Sequence[str]) -> dict[str, JobInfo] | None:
    fields = "JobID,JobName,State,ElapsedRaw,NodeList,AllocTRES,Reason"
    try:
        out = _run(["sacct", "-n", "-P", "-X", f"--format={fields}", "-j", ",".join(ids)])
    except SlurmError:
        return None
    if out.returncode != 0:  # "Slurm accounting storage is disabled": fall back to scontrol
        return None
    jobs = {}
    for line in out.stdout.splitlines():
        parts = line.split("|")
        if len(parts) < 7:
            continue
        job_id, name, state, elapsed, nodes, tres, reason = parts[:7]
        jobs[job_id] = JobInfo(
            job_id=job_id,
            name=name,
            state=state.split()[0] if state else "UNKNOWN",
            elapsed_s=int(elapsed or 0),
            nodelist=nodes,
            gpus=_gpus(tres),
            reason=reason,
        )
    return jobs


def _scontrol(job_id: str) -> dict[str, JobInfo]:
    out = _run(["scontrol", "show", "job", "-o", job_id])
    if out.returncode != 0:  # "Invalid job id specified": gone from slurmctld's memory
        return {}
    jobs = {}
    for line in out.stdout.splitlines():
        f = parse_scontrol(line)
        if "JobId" not in f:
            continue
        jid = f["JobId"]
        if f.get("ArrayJobId") and f.get("ArrayTaskId") not in (None, "", "N/A"):
            jid = f"{f['ArrayJobId']}_{f['ArrayTaskId']}"
        jobs[jid] = JobInfo(
            job_id=jid,
            name=f.get("JobName", ""),
            state=f.get("JobState", "UNKNOWN"),
            elapsed_s=_seconds(f.get("RunTime", "0")),
            nodelist="" if f.get("NodeList") in (None, "(null)") else f["NodeList"],
            gpus=_gpus(f.get("AllocTRES") or f.get("TRES", "")),
            stdout=f.get("StdOut"),
            restarts=int(f.get("Restarts", "0") or 0),
            reason=f.get("Reason", ""),
        )
    return jobs


def parse_scontrol(line: str) -> dict[str, str]:
    """``Key=value Key2=value with spaces`` (one ``scontrol -o`` line) as a dict."""
    fields: dict[str, str] = {}
    for item in re.split(r" (?=[A-Za-z:/]+=)", line.strip()):
        key, _, value = item.partition("=")
        fields[key] = value
    return fields


def _seconds(text: str) -> int:
    days, _, clock = text.rpartition("-")
    try:
        h, m, s = ([0, 0, *map(int, clock.split(":"))])[-3:]
    except ValueError:
        return 0
    return (int(days) if days else 0) * 86400 + h * 3600 + m * 60 + s


def _gpus(tres: str) -> int:
    """GPUs in a TRES list: ``gres/gpu=2`` (with or without ``gres/gpu:a100=2`` beside it)."""
    items = [item.partition("=") for item in tres.split(",")]
    untyped = [value for key, _, value in items if key == "gres/gpu"]
    typed = [value for key, _, value in items if key.startswith("gres/gpu:")]
    return sum(int(v) for v in (untyped or typed) if v.isdigit())
