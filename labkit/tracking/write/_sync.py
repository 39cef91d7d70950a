"""``labkit sync``: upload what runs left in their spools (offline runs, killed jobs).

Idempotent: a spool remembers, per server, how far it has been shipped, and its run is found by
its ``labkit.run_key`` tag before one is created, so a second sync sends nothing and a sync
killed midway duplicates nothing when it is run again.

A spool is data, not instructions: a run directory may have been copied, or written by someone
else in a shared runs root, so before anything goes over a network :func:`check_spool` makes
sure that the spool and its run directory are the user's own (not writable by others), that it
is a labkit spool, that it is sent only to the tracking URI the user named (``uri``) or
configured (``$MLFLOW_TRACKING_URI``, else ``./mlflow.db``), never to one only the spool names,
and that every artifact it lists resolves (links followed) inside its own run directory.
Credentials (``MLFLOW_TRACKING_*``, ``~/.netrc``) thus only ever go to a URI the user chose.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import sqlite3
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from labkit.errors import SpoolBusy, SpoolRefused, TrackingError, Unreachable
from labkit.tracking._provenance import redact_uri
from labkit.tracking.write._spool import KINDS, POINTS_SUFFIX, Pending, Spool, find_spools

__all__ = ["SpoolRefused", "SyncResult", "check_spool", "configured_uri", "sync", "sync_spool"]

# the columns labkit reads; a spool of another schema (another labkit version, a random SQLite
# file) is refused before anything reads or writes it
_COLUMNS = {"meta": {"key", "value"}, "ops": {"seq", "kind", "key", "value", "num", "step", "ts"}}
_REQUIRED_META = ("uri", "experiment", "run_name", "created_ms")
_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,200}")  # a run key: uuid hex or labkit's run-dir key


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
    refused: bool = False  #: :class:`SpoolRefused`: nothing of it was sent
    unreachable: bool = False  #: the server did not answer (:class:`Unreachable`): try again later
    status: str | None = None  #: the run's last status in the spool (RUNNING, FINISHED, ...)


def configured_uri() -> str:
    """The tracking URI the user configured: ``$MLFLOW_TRACKING_URI``, else ``./mlflow.db``."""
    from labkit.config import default_tracking_uri

    return default_tracking_uri()


def sync_spool(
    path: str | os.PathLike[str],
    uri: str | None = None,
    *,
    timeout: float | None = None,
) -> SyncResult:
    """Ship one spool to ``uri``, a tracking URI the user named; by default to the configured one
    (:func:`configured_uri`), and then only a spool whose run was started with that URI. What
    is shipped is what the spool held when it was checked: a run that goes on logging meanwhile
    is not chased (the next sync, or the relay's next round, sends the rest).

    Raises :class:`SpoolRefused` (nothing sent) for a spool :func:`check_spool` refuses."""
    from labkit.tracking.write._shipper import Shipper

    path = Path(path)
    target = check_spool(path, uri)
    if target is None:
        return SyncResult(path, "", None, 0, 0, Pending({}), f"{path} holds no run (an empty spool)")
    spool = Spool(path)
    try:
        dest = redact_uri(target)
        checked = check_ops(spool, after=spool.shipped_seq(dest))  # shipped already: not again
        sent = rejected = 0
        error: str | None = None
        unreachable = False
        run_id = spool.dest_meta(dest).get("run_id")
        try:
            with spool.shipping_lock():
                shipper = Shipper(spool, target)
                deadline = None if timeout is None else time.monotonic() + timeout
                try:
                    shipper.ship(deadline, upto=checked)
                finally:
                    run_id = shipper.run_id
                    sent, rejected = shipper.totals.sent, shipper.totals.rejected
        except SpoolBusy as exc:
            pending, status = spool.pending(dest), spool.last_status()
            return SyncResult(path, dest, run_id, 0, 0, pending, str(exc), busy=True, status=status)
        except TrackingError as exc:
            error, unreachable = str(exc), isinstance(exc, Unreachable)
        pending, status = spool.pending(dest), spool.last_status()
        return SyncResult(
            path, dest, run_id, sent, rejected, pending, error, unreachable=unreachable, status=status
        )
    finally:
        spool.close()


def sync(
    paths: Iterable[str | os.PathLike[str]], uri: str | None = None, *, timeout: float | None = None
) -> list[SyncResult]:
    """Sync every spool in or under ``paths``, studies' runs before their trials; a spool that
    is refused is reported in its result (``refused``, ``error``) and the others go on."""
    results = []
    for p in find_spools(paths):
        try:
            results.append(sync_spool(p, uri, timeout=timeout))
        except SpoolRefused as exc:
            results.append(SyncResult(p, "", None, 0, 0, Pending({}), str(exc), refused=True))
    return results


# ---------------------------------------------------------------------------------------- checks
def check_spool(path: str | os.PathLike[str], uri: str | None = None) -> str | None:
    """Everything about a spool that can be checked without writing it, before any server is
    contacted; returns the URI to ship it to (None: a spool that holds no run yet).

    Raises :class:`SpoolRefused` naming the spool and the reason."""
    spool = Path(path)
    try:
        spool = spool.resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise SpoolRefused(f"{_shown(spool)}: cannot be resolved ({exc})") from None
    run_dir = spool.parent
    if not spool.is_file():
        raise SpoolRefused(f"{_shown(spool)}: no such spool file")
    for item in (run_dir, spool, *_siblings(spool)):
        _check_yours(spool, item)
    tables, meta = _read_meta(spool)
    for table, wanted in _COLUMNS.items():
        missing = wanted - tables.get(table, set())
        if missing:
            raise _refused(
                spool,
                f"it is not a labkit spool of this version (table {table!r} "
                + (f"lacks {', '.join(sorted(missing))}" if table in tables else "is missing")
                + ")",
            )
    if not meta.get("run_key"):
        return None
    problems = [f"{key} is missing" for key in _REQUIRED_META if not meta.get(key)]
    for key in ("run_key", "parent_key"):
        if key in meta and not _KEY.fullmatch(meta[key]):
            problems.append(f"{key} {meta[key][:80]!r} is not a run key")
    if meta.get("created_ms") and not meta["created_ms"].isdigit():
        problems.append(f"created_ms {meta['created_ms'][:40]!r} is not a time in milliseconds")
    if problems:
        names = "no tracking URI" if problems == ["uri is missing"] else "; ".join(problems)
        raise _refused(spool, f"its meta table is not a labkit run's ({names})")
    named = meta["uri"]
    if uri:
        return uri  # the user named where to send it
    configured = configured_uri()
    if _same_uri(redact_uri(configured), named):
        return configured
    source = "$MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI") else "./mlflow.db here"
    raise _refused(
        spool,
        f"its run was started with the tracking URI {_shown(named)}, not the configured one "
        f"{_shown(redact_uri(configured))} ({source}); sync sends a run only where you point it: "
        f"if you trust that server, run `labkit sync --uri {_shown(named)} {_shown(run_dir)}`",
    )


def check_ops(spool: Spool, *, after: int = 0) -> int:
    """Every op of an (open, checked) spool beyond ``after`` (what is shipped already is not
    sent again) is one labkit writes, and every artifact it lists resolves inside the spool's
    run directory; returns the sequence number of the last op checked (ship no further: a live
    run may have logged more since). Raises :class:`SpoolRefused`."""
    try:
        spool.ingest()
    except TrackingError as exc:
        raise _refused(spool.path, str(exc)) from None
    last = int(spool.db.execute("SELECT COALESCE(MAX(seq), 0) FROM ops").fetchone()[0])
    kinds = ",".join(f"'{k}'" for k in KINDS)
    bad = spool.db.execute(
        f"""SELECT seq, kind FROM ops WHERE seq > ? AND seq <= ? AND (kind NOT IN ({kinds})
        OR typeof(key) != 'text' OR typeof(value) NOT IN ('text', 'null')
        OR typeof(num) NOT IN ('real', 'integer', 'null')
        OR typeof(step) NOT IN ('integer', 'null') OR typeof(ts) NOT IN ('integer', 'null')
        OR (kind = 'metric' AND num IS NULL
            AND (value IS NULL OR value NOT IN ('NaN', 'Infinity', '-Infinity'))))
        LIMIT 1""",
        (after, last),
    ).fetchone()
    if bad is not None:
        raise _refused(
            spool.path,
            f"op {bad[0]} ({_shown(str(bad[1]))[:40]}) is not one labkit writes (a spool of another "
            "labkit version, or edited by hand)",
        )
    run_dir = spool.path.resolve().parent
    artifacts = spool.db.execute(
        "SELECT key, value FROM ops WHERE kind = 'artifact' AND seq > ? AND seq <= ?", (after, last)
    )
    for key, folder in artifacts.fetchall():
        problem = _artifact_problem(run_dir, str(key), folder)
        if problem:
            raise _refused(
                spool.path,
                f"artifact {_shown(str(key))} {problem}; a spool uploads only files inside its own "
                f"run directory {_shown(run_dir)}",
            )
    return last


def artifact_inside(run_dir: Path, key: str) -> bool:
    """Whether the artifact ``key`` (a file or a folder) resolves inside ``run_dir``."""
    return _artifact_problem(run_dir.resolve(), key, None) is None


def _artifact_problem(run_dir: Path, key: str, folder: object) -> str | None:
    path = Path(key)
    if not path.is_absolute():
        return "is not an absolute path"
    if folder is not None:
        parts = PurePosixPath(str(folder)).parts
        if not isinstance(folder, str) or str(folder).startswith("/") or ".." in parts or "\\" in folder:
            return f"is to be stored at {_shown(str(folder))!r}, outside the run's artifacts"
    try:
        resolved = path.resolve()
        if not resolved.is_relative_to(run_dir):
            via = f" (to {_shown(resolved)})" if resolved != path else ""
            return f"resolves outside the run directory{via}"
        if resolved.is_dir():
            for root, dirs, files in os.walk(resolved):
                for name in dirs + files:
                    entry = Path(root) / name
                    if entry.is_symlink() and not entry.resolve().is_relative_to(run_dir):
                        to = _shown(entry.resolve())
                        return f"holds {_shown(entry)}, a link to {to} outside the run directory"
    except (OSError, RuntimeError, ValueError) as exc:
        return f"cannot be resolved ({exc})"
    return None


def _siblings(spool: Path) -> list[Path]:
    """The spool's other files that exist: its WAL, shared memory and metric points."""
    names = (f"{spool.name}-wal", f"{spool.name}-shm", spool.name + POINTS_SUFFIX)
    return [spool.with_name(n) for n in names if os.path.lexists(spool.with_name(n))]


def _check_yours(spool: Path, item: Path) -> None:
    """``item`` belongs to the user running sync and no one else can write it."""
    try:
        st = os.lstat(item) if item != spool.parent else os.stat(item)
    except OSError as exc:
        raise _refused(spool, f"cannot read {_shown(item)} ({exc.strerror})") from None
    me = os.getuid()
    if stat.S_ISLNK(st.st_mode):
        raise _refused(spool, f"{_shown(item)} is a symbolic link")
    if st.st_uid != me:
        raise _refused(
            spool,
            f"{_shown(item)} belongs to {_user(st.st_uid)}, not to you ({_user(me)}): sync uploads "
            "only your own runs (their owner can sync them)",
        )
    writers = ""
    if st.st_mode & stat.S_IWOTH:
        writers = "every user"
    elif st.st_mode & stat.S_IWGRP and not _group_is_yours(st.st_gid, me):
        writers = f"group {_group(st.st_gid)}"
    if writers:
        raise _refused(
            spool,
            f"{_shown(item)} is writable by {writers} (mode {stat.S_IMODE(st.st_mode):04o}), so someone "
            f"else could have changed what it uploads; if you trust it, `chmod go-w {_shown(item)}` "
            "and sync again",
        )


def _group_is_yours(gid: int, uid: int) -> bool:
    """A user-private group (the group named after the user, no other members: umask 002
    systems make every file group-writable in it), which gives no one else write access."""
    try:
        group, user = grp.getgrgid(gid), pwd.getpwuid(uid)
    except KeyError:
        return False
    return group.gr_name == user.pw_name and set(group.gr_mem) <= {user.pw_name}


def _user(uid: int) -> str:
    with contextlib.suppress(KeyError):
        return pwd.getpwuid(uid).pw_name
    return f"uid {uid}"


def _group(gid: int) -> str:
    with contextlib.suppress(KeyError):
        return grp.getgrgid(gid).gr_name
    return f"gid {gid}"


def _read_meta(spool: Path) -> tuple[dict[str, set[str]], dict[str, str]]:
    """The tables (with their columns) and the meta of a spool, read without writing it."""
    try:
        db = sqlite3.connect(f"file:{quote(str(spool))}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise _refused(spool, f"cannot be opened ({exc})") from None
    try:
        with contextlib.closing(db):
            names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            tables = {
                str(n): {str(c[1]) for c in db.execute(f"PRAGMA table_info({_ident(n)})")}
                for n in names
                if isinstance(n, str)
            }
            meta: dict[str, str] = {}
            if _COLUMNS["meta"] <= tables.get("meta", set()):
                for key, value in db.execute("SELECT key, value FROM meta"):
                    if isinstance(key, str) and isinstance(value, str):
                        meta[key] = value
    except sqlite3.Error as exc:
        raise _refused(spool, f"it is not a labkit spool (SQLite: {exc})") from None
    return tables, meta


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _same_uri(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _shown(text: object) -> str:
    """Text from a spool, safe to print: control characters escaped, length bounded."""
    s = str(text)
    s = "".join(c if c.isprintable() else repr(c)[1:-1] for c in s)
    return s if len(s) <= 300 else s[:297] + "..."


def _refused(spool: Path, reason: str) -> SpoolRefused:
    return SpoolRefused(f"refusing to sync {_shown(spool)}: {reason} (nothing was sent)")
