"""``labkit sync``: upload what runs left in their spools (offline runs, killed jobs).

Idempotent: a spool remembers, per server, how far it has been shipped, and its run is found by
its ``labkit.run_key`` tag before one is created, so a second sync sends nothing and a sync
killed midway duplicates nothing when it is run again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from labkit.errors import TrackingError
from labkit.tracking._provenance import redact_uri
from labkit.tracking._spool import Pending, Spool, SpoolBusy, find_spools

__all__ = ["SyncResult", "sync", "sync_spool"]


@dataclass(frozen=True)
class SyncResult:
    """How one spool's sync went."""

    spool: Path
    dest: str  #: the server (URI without credentials)
    run_id: str | None
    sent: int  #: items uploaded by this sync
    rejected: int  #: items the server refused for good (kept in the spool)
    pending: Pending  #: what is still not on the server
    error: str | None = None
    busy: bool = False  #: another process is shipping this spool


def sync_spool(
    path: str | os.PathLike[str], uri: str | None = None, *, timeout: float | None = None
) -> SyncResult:
    """Ship one spool to ``uri`` (default: the URI its run was started with)."""
    from labkit.tracking._shipper import Shipper

    path = Path(path)
    spool = Spool(path)
    try:
        meta = spool.meta()
        if "run_key" not in meta:
            return SyncResult(path, "", None, 0, 0, Pending({}), f"{path} holds no run (an empty spool)")
        target = uri or meta["uri"]
        dest = redact_uri(target)
        sent = rejected = 0
        error: str | None = None
        run_id = spool.dest_meta(dest).get("run_id")
        try:
            with spool.shipping_lock():
                shipper = Shipper(spool, target)
                deadline = None if timeout is None else time.monotonic() + timeout
                try:
                    shipper.ship(deadline)
                finally:
                    run_id = shipper.run_id
                    sent, rejected = shipper.totals.sent, shipper.totals.rejected
        except SpoolBusy as exc:
            return SyncResult(path, dest, run_id, 0, 0, spool.pending(dest), str(exc), busy=True)
        except TrackingError as exc:
            error = str(exc)
        return SyncResult(path, dest, run_id, sent, rejected, spool.pending(dest), error)
    finally:
        spool.close()


def sync(
    paths: Iterable[str | os.PathLike[str]], uri: str | None = None, *, timeout: float | None = None
) -> list[SyncResult]:
    """Sync every spool in or under ``paths``, studies' runs before their trials."""
    return [sync_spool(p, uri, timeout=timeout) for p in find_spools(paths)]
