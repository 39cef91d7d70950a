"""``labkit status`` and ``labkit logs``: what SLURM and the run directories say about jobs."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, TextIO

from labkit._rundir import RunDir
from labkit.cluster._jobs import known_jobs
from labkit.cluster._slurm import TERMINAL, JobInfo, check_job_ids, parse_scontrol, query
from labkit.errors import LabkitError

__all__ = ["follow_log", "job_table", "log_file"]


def _hms(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    text = f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{days}-{text}" if days else text


def _run_state(directory: str | None) -> dict[str, Any]:
    return RunDir.peek(directory)


def job_table(ids: list[str], runs_root: str | os.PathLike[str]) -> tuple[list[dict[str, str]], float]:
    """One row per job or array task, and the GPU-hours of all of them."""
    check_job_ids(ids)
    known = {str(j["job_id"]): j for j in known_jobs(runs_root)}
    wanted = ids or list(known)[-50:]
    infos = query(wanted)
    rows: list[dict[str, str]] = []
    total = 0.0
    for job_id in wanted:
        entry = known.get(job_id.split("_")[0], {})
        # an array's id stands for all its tasks ("123" → "123_0", "123_1", pending "123_2-3")
        tasks = [info for jid, info in infos.items() if jid == job_id or jid.startswith(f"{job_id}_")]
        if not tasks and not entry:
            unknown = "NOT FOUND (unknown to SLURM, not submitted from here)"
            rows.append(_row(job_id, "?", unknown, 0, "", 0, {}))
            continue
        if not tasks:  # SLURM has forgotten it (MinJobAge, no accounting): the run directory knows
            state = _run_state(entry.get("dir"))
            elapsed = float(state.get("elapsed_s", 0.0))
            gpus = int(entry.get("gpus", 0))
            total += elapsed * gpus / 3600
            rows.append(
                _row(
                    job_id,
                    entry.get("name", "?"),
                    f"{state.get('status', 'UNKNOWN')} (run.json)",
                    elapsed,
                    "",
                    gpus,
                    entry,
                )
            )
            continue
        for info in sorted(tasks, key=lambda t: t.job_id):
            total += info.gpu_hours
            rows.append(
                _row(info.job_id, info.name, _state(info), info.elapsed_s, info.nodelist, info.gpus, entry)
            )
    return rows, total


def _state(info: JobInfo) -> str:
    text = info.state
    if info.state == "PENDING" and info.reason and info.reason != "None":
        text += f" ({info.reason})"
    if info.restarts:
        text += f", restarted {info.restarts}x"
    return text


def _row(
    job_id: str, name: str, state: str, elapsed: float, nodes: str, gpus: int, entry: dict[str, Any]
) -> dict[str, str]:
    return {
        "JOB": job_id,
        "NAME": name,
        "STATE": state,
        "ELAPSED": _hms(elapsed),
        "NODES": nodes,
        "GPUS": str(gpus),
        "GPU-H": f"{elapsed * gpus / 3600:.2f}",
        "CLUSTER": str(entry.get("cluster", "")),
        "DIRECTORY": str(entry.get("dir", "")),
    }


def log_file(job: str, runs_root: str | os.PathLike[str]) -> Path:
    """The sbatch output file of ``job`` (from the list of submitted jobs, else from scontrol)."""
    (job,) = check_job_ids([job])
    base, _, task = job.partition("_")
    entry = next((j for j in known_jobs(runs_root) if str(j["job_id"]) == base), None)
    if entry is not None:
        if entry.get("array"):
            name = f"slurm-{base}_{task or 0}.out"
        elif entry.get("kind") == "tune-summary":
            name = f"slurm-{base}-summary.out"
        else:
            name = f"slurm-{base}.out"
        return Path(entry["dir"]) / name
    from labkit.cluster._slurm import _run

    out = _run(["scontrol", "show", "job", "-o", job])
    for line in out.stdout.splitlines():
        fields = parse_scontrol(line)
        if fields.get("StdOut"):
            return Path(fields["StdOut"])
    raise LabkitError(
        f"job {job}: not submitted from {runs_root} (see --runs-root) and unknown to SLURM "
        "(finished jobs are forgotten after MinJobAge)"
    )


def follow_log(path: Path, job: str | None, out: TextIO, poll: float = 1.0) -> None:
    """Print ``path``; with ``job``, keep printing what is appended until the job has ended."""
    if job is None:
        if not path.is_file():
            raise LabkitError(f"no log yet at {path}: the job has not started (labkit status)")
        out.write(path.read_text(errors="replace"))
        return
    position, last_check, state = 0, 0.0, ""
    while True:
        if path.is_file():
            with path.open(errors="replace") as f:
                f.seek(position)
                chunk = f.read()
                position = f.tell()
            if chunk:
                out.write(chunk)
                out.flush()
        if time.monotonic() - last_check > 5 * poll:
            last_check = time.monotonic()
            info = query([job]).get(job)
            state = info.state if info else "GONE"
            if state in TERMINAL or state == "GONE":
                if path.is_file():  # what the last moments appended
                    with path.open(errors="replace") as f:
                        f.seek(position)
                        out.write(f.read())
                out.write(f"labkit: job {job} {state.lower()}\n")
                return
        time.sleep(poll)
