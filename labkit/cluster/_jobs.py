"""The list of submitted jobs, ``<runs_root>/jobs.jsonl``: one line per job, read by ``labkit
status``, ``logs`` and ``cancel`` (which job, which directory, how many GPUs)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["JOBS_FILE", "JobRecord", "known_jobs", "record_job"]

JOBS_FILE = "jobs.jsonl"  #: in the runs root: one line per submitted job (labkit status, logs)


@dataclass(frozen=True)
class JobRecord:
    """What the list of submitted jobs keeps of one job, besides its id, site and directory."""

    kind: str  #: "run", "tune" (a study's worker array) or "tune-summary"
    name: str  #: the experiment's name
    gpus: int  #: GPUs per job (per array task)
    array: int | None = None  #: the number of array tasks
    study: str | None = None  #: the study a tuning job works for


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
