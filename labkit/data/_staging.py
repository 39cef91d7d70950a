"""Node-local staging (``data.stage``): copy the input files to local disk before training.

Each file goes to ``<target>/labkit-stage-<key>/<name>``, where the key hashes the source's
absolute path, size and modification time: the same file always lands in the same place, and a
changed source gets a new one. A copy is written under a temporary name, checked against the
source (the source is hashed while it is copied, the copy is read back and hashed: xxh3-128
when ``xxhash`` is installed, else sha256), renamed into place, and only then marked verified
(a ``.labkit-verified`` file). A requeued job finds the marker and uses the copy without
copying or hashing again. :func:`unstage` removes the directories; the runner calls it when a
run ends, except on preemption (the requeued job reuses the copies).

The environment is read at the CLI: :func:`default_stage_dir` turns it into the directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from labkit.errors import DataError

__all__ = ["MARKER", "default_stage_dir", "stage_dir_for", "stage_files", "unstage"]

#: written next to a copy once it is verified
MARKER = ".labkit-verified"
#: bytes read and written at a time
BLOCK = 8 * 1024 * 1024
#: seconds between progress lines while one file is copied
EVERY_S = 5.0


def default_stage_dir(environ: Mapping[str, str] | None) -> Path:
    """Where ``data.stage: true`` copies to: ``$SLURM_TMPDIR`` (a SLURM job's node-local disk),
    else ``$TMPDIR``, else ``/tmp``; ``environ`` None: the system's temporary directory."""
    if environ is None:
        return Path(tempfile.gettempdir())
    for name in ("SLURM_TMPDIR", "TMPDIR"):
        if environ.get(name):
            return Path(environ[name])
    return Path("/tmp")  # the documented last resort


def _hasher() -> tuple[str, Callable[[], Any]]:
    try:
        import xxhash

        return "xxh3_128", xxhash.xxh3_128
    except ImportError:
        return "sha256", hashlib.sha256


def stage_dir_for(source: Path, target: Path) -> Path:
    """The directory that holds the copy of ``source`` under ``target``."""
    source = source.resolve()
    stat = source.stat()
    key = hashlib.sha256(f"{source}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return target / f"labkit-stage-{key}"


def stage_files(
    paths: Sequence[Path], *, target: Path, progress: TextIO | None = None, field: str = "data.stage"
) -> list[Path]:
    """Copy ``paths`` under ``target`` (or reuse verified copies); the copies, in order.

    ``progress`` receives a line per file (and every few seconds while a large one is copied);
    ``field`` names the experiment field in messages."""
    target = Path(target).expanduser()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"{field}: cannot create the staging directory {target} ({exc.strerror or exc})"
        ) from None
    copies = []
    for source in paths:
        try:
            copies.append(_stage_one(Path(source), target, progress, field))
        except OSError as exc:
            raise DataError(
                f"{field}: cannot stage {source} to {target} ({exc.strerror or exc}); set data.stage to "
                "a writable directory with room for the files, or to false"
            ) from None
    return copies


def _stage_one(source: Path, target: Path, progress: TextIO | None, field: str) -> Path:
    stat = source.stat()
    home = stage_dir_for(source, target)
    copy = home / source.name
    marker = home / MARKER
    if marker.is_file() and copy.is_file() and copy.stat().st_size == stat.st_size:
        _say(progress, f"staged {source.name}: reusing the verified copy in {home}")
        return copy
    free = shutil.disk_usage(target).free
    if free < stat.st_size:
        raise DataError(
            f"{field}: {target} has {free / 2**20:.0f} MiB free, {source} needs "
            f"{stat.st_size / 2**20:.0f} MiB; set data.stage to a directory with more room, or to false"
        )
    home.mkdir(exist_ok=True)
    marker.unlink(missing_ok=True)
    algorithm, make = _hasher()
    partial = home / f".{source.name}.partial-{os.getpid()}"
    start = time.monotonic()
    try:
        digest = _copy(source, partial, make(), stat.st_size, progress, start)
        again = make()
        with partial.open("rb") as handle:
            while block := handle.read(BLOCK):
                again.update(block)
        if again.hexdigest() != digest:
            raise DataError(
                f"{field}: the copy of {source} in {home} differs from the source ({algorithm}); the "
                "local disk may be failing or full"
            )
        shutil.copystat(source, partial)  # the source's times: a streamed run's checksum stays the same
        os.replace(partial, copy)
    finally:
        partial.unlink(missing_ok=True)
    record = {"source": str(source.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    marker.write_text(json.dumps(record | {algorithm: digest}) + "\n")
    seconds = max(time.monotonic() - start, 1e-6)
    _say(
        progress,
        f"staged {source.name}: {stat.st_size / 2**20:.1f} MiB to {home} in {seconds:.1f} s "
        f"({stat.st_size / 1e6 / seconds:.0f} MB/s, {algorithm} verified)",
    )
    return copy


def _copy(source: Path, copy: Path, digest: Any, size: int, progress: TextIO | None, start: float) -> str:
    """Copy ``source`` to ``copy``, hashing what was read; the hex digest."""
    done, said = 0, start
    with source.open("rb") as src, copy.open("wb") as dst:
        while block := src.read(BLOCK):
            digest.update(block)
            dst.write(block)
            done += len(block)
            now = time.monotonic()
            if now - said >= EVERY_S:
                said = now
                rate = done / 1e6 / max(now - start, 1e-6)
                _say(
                    progress,
                    f"staging {source.name}: {done / 2**20:.0f} of {size / 2**20:.0f} MiB ({rate:.0f} MB/s)",
                )
        dst.flush()
        os.fsync(dst.fileno())
    return str(digest.hexdigest())


def _say(progress: TextIO | None, line: str) -> None:
    if progress is not None:
        print(line, file=progress, flush=True)


def unstage(copies: Sequence[Path]) -> None:
    """Remove the staging directories holding ``copies`` (as :func:`stage_files` returned them);
    anything not made by staging is left alone."""
    for copy in copies:
        home = Path(copy).parent
        if home.name.startswith("labkit-stage-"):
            shutil.rmtree(home, ignore_errors=True)
