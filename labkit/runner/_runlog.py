"""Adding to a finished run's record afterwards (``labkit export``, ``labkit predict --log``):
tags and files go into the run's spool, then the spool is shipped, as ``labkit sync`` does."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labkit.runner._predict import PredictSummary

__all__ = ["add_to_run", "record_prediction"]


def add_to_run(
    run_dir: Path,
    *,
    files: Sequence[Path] = (),
    artifact_path: str | None = None,
    tags: Mapping[str, str] | None = None,
    uri: str | None = None,
) -> str:
    """Record ``tags`` and ``files`` (each inside ``run_dir``, under the artifact folder
    ``artifact_path``) with the run, and upload them; returns one line saying what happened."""
    from labkit.tracking import SPOOL_FILE, Spool, SpoolRefused, sync_spool

    spool_path = run_dir / SPOOL_FILE
    if not spool_path.is_file():
        return f"not logged: {run_dir} has no tracking spool"
    outside = [p for p in files if not p.resolve().is_relative_to(run_dir.resolve())]
    if outside:
        return f"not logged: {outside[0]} is outside the run directory (a run uploads only its own files)"
    spool = Spool(spool_path)
    try:
        if tags:
            spool.set_tags(tags)
        for path in files:
            spool.log_artifact(path.resolve(), artifact_path)
    finally:
        spool.close()
    try:
        result = sync_spool(spool_path, uri, timeout=60.0)
    except SpoolRefused as exc:
        return f"recorded in the run's spool, not uploaded ({exc})"
    if result.error or result.pending.total:
        why = result.error or "still uploading"
        return f"recorded in the run's spool, not uploaded yet ({why}): `labkit sync {run_dir}` uploads it"
    if files and artifact_path:
        return f"logged as artifacts {artifact_path}/ of MLflow run {result.run_id}"
    return f"logged to MLflow run {result.run_id}"


def record_prediction(run_dir: Path, done: PredictSummary, *, uri: str | None = None) -> str:
    """``labkit predict --log``: a reference to the predictions ``done`` wrote (not the file,
    which may be larger than the run): ``predictions/<stem>.json`` in the run directory with the
    file's absolute path, size, sha256, events and columns, logged as an artifact, and the tag
    ``labkit.predictions.<stem>`` naming the file."""
    path = done.path.resolve()
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    from labkit import __version__

    reference = {
        "path": str(path),
        "bytes": path.stat().st_size,
        "sha256": digest.hexdigest(),
        "events": done.events,
        "columns": list(done.columns),
        "split": done.split,
        "source": done.source,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "labkit_version": __version__,
    }
    folder = run_dir / "predictions"
    folder.mkdir(exist_ok=True)
    card = folder / f"{path.stem}.json"
    card.write_text(json.dumps(reference, indent=2) + "\n")
    return add_to_run(
        run_dir,
        files=[card],
        artifact_path="predictions",
        tags={f"labkit.predictions.{path.stem}": str(path)},
        uri=uri,
    )
