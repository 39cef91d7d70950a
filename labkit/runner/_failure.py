"""Recording how a run stopped early: a failure (which may be the disk's) or a preemption.

A full disk or a read-only run directory must not leave a run RUNNING: :func:`record_failure`
marks ``run.json`` (rewritten in place when no temporary file fits), then the MLflow run
(directly, through a one-off spool elsewhere, when the run's own spool cannot be written), then
writes ``error.txt``; :func:`disk_problem` tells the user's fault (the machine's) from a bug.
:func:`record_preemption` marks a job stopped on its signal REQUEUED (and requeues it) or
INTERRUPTED.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from labkit._rundir import JobOptions, RunDir
from labkit.errors import LabkitError, Preempted
from labkit.tracking import SPOOL_FILE

if TYPE_CHECKING:
    from labkit.tracking import Tracker

__all__ = ["FAILURE_TAG", "disk_problem", "first_line", "record_failure", "record_preemption"]

#: the MLflow tag that says what kind of failure ended a run, where labkit knows it (``nan``)
FAILURE_TAG = "labkit.failure"


def record_failure(
    tracker: Tracker | None,
    run_dir: RunDir,
    exc: BaseException,
    elapsed_s: float,
    tags: Mapping[str, str] | None = None,
) -> LabkitError | None:
    """Mark the run FAILED (KILLED for Ctrl-C) in ``run.json``, then in MLflow, then write
    ``error.txt``: status first, each step guarded, so that a failure while recording the failure
    (a full disk, a read-only run directory) cannot leave the run RUNNING where it still can be
    marked. ``tags`` are set on the MLflow run first (a trial's state). Returns the error to
    raise instead of ``exc`` when the cause is the machine's (the disk is full or read-only),
    saying what was and was not marked; None: re-raise ``exc``."""
    import traceback

    status = "KILLED" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "FAILED"
    problem = disk_problem(exc, run_dir)
    unmarked: list[str] = []  # where the run could not be marked, and why
    try:
        run_dir.mark(status, error=f"{type(exc).__name__}: {exc}", elapsed_s=elapsed_s)
    except Exception as err:  # noqa: BLE001 - go on: MLflow must still learn of it
        unmarked.append(f"{run_dir.state_file} ({_short(err)})")
        problem = problem or disk_problem(err, run_dir)
    error_txt = run_dir.path / "error.txt"
    written = _write_error_txt(error_txt, "".join(traceback.format_exception(exc)))
    if tracker is not None and tracker.spool is not None:
        if tags:
            with contextlib.suppress(Exception):
                tracker.set_tags(dict(tags))
        if written:
            with contextlib.suppress(Exception):  # the run is failing already; its status matters more
                tracker.log_artifact(error_txt)
        try:
            tracker.fail(exc)
        except Exception as err:  # noqa: BLE001 - the spool cannot be written: tell MLflow directly
            problem = problem or disk_problem(err, run_dir)
            why = _end_on_server(tracker, run_dir, status, exc)
            if why is not None:
                unmarked.append(f"the MLflow run ({_short(err)}; then {why})")
    if problem is None:
        return None
    marked = (
        f"the run is marked {status}"
        if not unmarked
        else f"the run could not be marked {status} in {' nor in '.join(unmarked)}"
    )
    return LabkitError(f"{problem}; {marked}")


def record_preemption(
    tracker: Tracker | None,
    run_dir: RunDir,
    exc: Preempted,
    elapsed_s: float,
    job: JobOptions,
    *,
    announce: Callable[[str], None] | None = None,
) -> None:
    """The job stopped on a signal with a checkpoint saved: requeue it (the requeue signal) or
    leave it to SLURM (SIGTERM: requeued by an admin or preemption, or cancelled). ``announce``
    is told what happens next once the run is marked, before the requeue (which ends the job)."""
    from labkit.cluster import current_job_id, requeue

    job_id = current_job_id(job.environ)
    status = "REQUEUED" if exc.requeue and job_id else "INTERRUPTED"
    run_dir.mark(status, checkpoint=str(exc.checkpoint), elapsed_s=elapsed_s, error=str(exc))
    if tracker is not None and tracker.spool is not None:
        if status == "REQUEUED":
            tracker.suspend(f"{exc}; job {job_id} requeued, it resumes from there")
        else:
            tracker.fail(exc, killed=True)
    if announce is not None:
        announce(
            f"{exc}; job {job_id} is requeued and resumes from there"
            if status == "REQUEUED"
            else f"{exc}; not requeued by labkit (SLURM may requeue or end the job); continue with "
            f"labkit run {run_dir.config_file} --run-dir {run_dir.path}"
        )
    if status == "REQUEUED":
        assert job_id is not None
        try:
            requeue(job_id)  # last: SLURM stops this job at once and queues it again
        except LabkitError as err:
            run_dir.mark("INTERRUPTED", error=f"requeue failed: {err}")
            if tracker is not None and tracker.spool is not None:
                tracker.fail(err, killed=True)
            raise LabkitError(
                f"{err}; the checkpoint {exc.checkpoint} is saved: continue with "
                f"labkit run {run_dir.config_file} --run-dir {run_dir.path}"
            ) from None


def _write_error_txt(path: Path, text: str) -> bool:
    """The traceback beside the run; a partial file (a full disk) is removed, freeing its blocks."""
    try:
        path.write_text(text)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        return False
    return True


def _end_on_server(tracker: Tracker, run_dir: RunDir, status: str, exc: BaseException) -> str | None:
    """Mark the MLflow run ``status`` without the run's own spool (it cannot be written): a spool
    of one tag and one status change, in a private temporary directory, shipped at once to the
    run's server. Returns why that failed, or None."""
    import tempfile

    from labkit.tracking import Spool, sync_spool

    try:
        run_id = tracker.run_id
        if run_id is None:
            return "the run never reached the MLflow server; its spool holds it"
        with tempfile.TemporaryDirectory(prefix="labkit-end-") as tmp:
            spool = Spool.create(
                Path(tmp) / SPOOL_FILE,
                uri=tracker.dest,
                experiment=tracker.experiment_name,
                run_name=run_dir.path.name,
                run_key=run_dir.run_key,
            )
            try:
                spool.set_dest_meta(tracker.dest, run_id=run_id, experiment_id=tracker.experiment_id or "")
                text = f"{type(exc).__name__}: {exc}"
                spool.set_tags({"labkit.error": text, "labkit.error_type": type(exc).__name__})
                spool.set_status(status)
            finally:
                spool.close()
            result = sync_spool(Path(tmp) / SPOOL_FILE, tracker.uri, timeout=tracker.drain_timeout)
    except Exception as err:  # noqa: BLE001
        return _short(err)
    return result.error


#: errors of the machine that the user fixes, in what the message says
_DISK_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
}


def disk_problem(exc: BaseException, run_dir: RunDir) -> str | None:
    """What to tell the user when ``exc`` (or its cause) means the run directory's disk is full or
    read-only: the problem, the file and the fix; None for any other error.

    Besides ``OSError`` (ENOSPC, EDQUOT, EROFS; EACCES/EPERM on a file in the run directory) and
    SQLite's "database or disk is full" / "readonly database", a write error that names no errno
    (``torch.save``: "file write failed") counts when the run directory's file system is then
    read-only or has (almost) no space left."""
    import sqlite3

    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno is not None:
            where = Path(error.filename) if error.filename else run_dir.path
            if error.errno in _DISK_ERRNOS:
                return _disk_message(_DISK_ERRNOS[error.errno], where, run_dir)
            if error.errno in (errno.EACCES, errno.EPERM) and error.filename and _inside(where, run_dir):
                return _disk_message("permission denied", where, run_dir)
        if isinstance(error, sqlite3.Error):
            text = str(error).lower()
            if "disk is full" in text:
                return _disk_message("no space left on device", run_dir.path, run_dir)
            if "readonly" in text or "read-only" in text:
                return _disk_message("read-only file system", run_dir.path, run_dir)
        error = error.__cause__ or error.__context__
    text = str(exc).lower()
    if isinstance(exc, Exception) and any(word in text for word in ("writ", "disk", "space", "full")):
        try:
            fs = os.statvfs(run_dir.path)
        except OSError:
            return None
        if fs.f_flag & os.ST_RDONLY:
            return _disk_message("read-only file system", run_dir.path, run_dir)
        if fs.f_bavail * fs.f_frsize < 1 << 20:
            return _disk_message("no space left on device", run_dir.path, run_dir)
    return None


def _disk_message(problem: str, where: Path, run_dir: RunDir) -> str:
    fix = (
        "make it writable or set runs_root to a writable directory"
        if problem in ("read-only file system", "permission denied")
        else "free space or move runs_root"
    )
    if where == run_dir.path:
        return f"{problem} writing to the run directory {where}; {fix}"
    return f"{problem} writing {where}; {fix} (the run directory is {run_dir.path})"


def _inside(path: Path, run_dir: RunDir) -> bool:
    try:
        return path.resolve().is_relative_to(run_dir.path.resolve())
    except (OSError, RuntimeError, ValueError):
        return False


def first_line(exc: BaseException) -> str:
    """The first line of the error's message (after its type, unless it is labkit's own error
    for the user): what a notification says of it."""
    lines = str(exc).strip().splitlines()
    if isinstance(exc, LabkitError) and lines:
        return lines[0]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:197] + "..."
