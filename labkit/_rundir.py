"""One directory per run: everything a run produces is written here before it goes anywhere.

Also the options a (requeued) job is started with: :class:`JobOptions`, read from the job's
environment once, at the CLI edge, and passed inward.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from labkit.errors import LabkitError

__all__ = ["JobOptions", "RunDir"]

_STATE = "run.json"
#: errors writing run.json's temporary file after which rewriting run.json in place may work
_NO_NEW_FILE = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)


@dataclass(frozen=True)
class JobOptions:
    """How the job running this process wants a run treated, as its sbatch script says.

    ``labkit submit`` writes ``LABKIT_CLUSTER``, ``LABKIT_SIGNAL`` and ``LABKIT_REQUEUE`` into the
    job's script; the CLI reads them (:meth:`from_environ`) and passes this object inward. Outside
    a job the defaults hold: signal USR1, requeue on it.
    """

    cluster: str = ""  #: the site profile's name (MLflow tag ``slurm.cluster``); "" outside a job
    signal: str = "USR1"  #: the signal (without ``SIG``) that means "save a checkpoint and requeue"
    requeue: bool = True  #: False: on that signal save and stop, but do not requeue
    #: the job's environment, where ``labkit.cluster`` reads what the scheduler says about the job
    #: (job id, nodes, restarts); None: this process's own
    environ: Mapping[str, str] | None = field(default=None, compare=False, repr=False)
    #: the CPUs the scheduler grants each task (``SLURM_CPUS_PER_TASK``); None: not said
    cpus: int | None = None
    #: ``OMP_NUM_THREADS`` as this process's parent set it (a tuning worker's share); None: unset
    omp_threads: int | None = None

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> JobOptions:
        """The options in ``env`` (the CLI passes ``os.environ``); a missing variable: its default."""
        return cls(
            cluster=env.get("LABKIT_CLUSTER", ""),
            signal=env.get("LABKIT_SIGNAL", "USR1"),
            requeue=env.get("LABKIT_REQUEUE", "1") == "1",
            environ=env,
            cpus=cls._count(env.get("SLURM_CPUS_PER_TASK")),
            omp_threads=cls._count(env.get("OMP_NUM_THREADS")),
        )

    @staticmethod
    def _count(value: str | None) -> int | None:
        """A positive count from an environment variable; None when unset or not one (as OpenMP and
        SLURM ignore such a value, so does labkit)."""
        try:
            count = int(value) if value else 0
        except ValueError:
            return None
        return count if count > 0 else None

    def to_environ(self) -> dict[str, str]:
        """The variables of a job script that :meth:`from_environ` reads back."""
        return {
            "LABKIT_CLUSTER": self.cluster,
            "LABKIT_SIGNAL": self.signal,
            "LABKIT_REQUEUE": "1" if self.requeue else "0",
        }


@dataclass(frozen=True)
class RunDir:
    """``<runs_root>/<name>/<time>-<key>/`` holding ``run.json`` (the run key, the MLflow run
    id, the status), ``config.yaml``, ``checkpoints/``, ``figures/`` and logs.

    The run key is labkit's stable identity of a run: a requeued or resumed job finds its run
    key, checkpoints and MLflow run id here.
    """

    path: Path
    run_key: str

    @classmethod
    def plan(cls, root: str | os.PathLike[str], name: str) -> RunDir:
        """Where a new run's directory will be; nothing is created (``labkit submit --dry-run``)."""
        key = uuid.uuid4().hex
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return cls(Path(root) / name / f"{stamp}-{key[:8]}", key)

    @classmethod
    def create(cls, root: str | os.PathLike[str], name: str) -> RunDir:
        return cls.plan(root, name).make()

    def make(self, status: str = "CREATED") -> RunDir:
        """Create the planned directory and its ``run.json``."""
        try:
            self.path.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            raise LabkitError(
                f"cannot create the run directory {self.path} (runs_root): {exc.strerror}"
            ) from None
        self.update(run_key=self.run_key, status=status, created=_now())
        return self

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDir:
        state_file = Path(path) / _STATE
        try:
            state = json.loads(state_file.read_text())
        except (OSError, ValueError) as exc:
            raise LabkitError(f"{path} is not a labkit run directory (no readable {_STATE}: {exc})") from None
        key = state.get("run_key") if isinstance(state, dict) else None
        if not isinstance(key, str) or not key:
            what = "has no run_key" if isinstance(state, dict) else f"is a JSON {type(state).__name__}"
            raise LabkitError(
                f"{state_file} {what}: not a labkit run directory's {_STATE} "
                '(expected a JSON object with a "run_key" string, as labkit run or submit writes it)'
            )
        return cls(Path(path), key)

    @staticmethod
    def is_run_dir(path: str | os.PathLike[str]) -> bool:
        """True when ``path`` holds a ``run.json`` (readable or not)."""
        return (Path(path) / _STATE).is_file()

    @classmethod
    def scan(cls, root: str | os.PathLike[str]) -> list[RunDir]:
        """Every run directory under ``root``, at any depth, in path order; a directory whose
        ``run.json`` is unreadable or not labkit's is left out."""
        found = []
        for state_file in sorted(Path(root).rglob(_STATE)):
            try:
                found.append(cls.open(state_file.parent))
            except LabkitError:
                continue
        return found

    @staticmethod
    def peek(path: str | os.PathLike[str] | None) -> dict[str, Any]:
        """The ``run.json`` of the directory ``path`` as far as it can be read: ``{}`` when there is
        no such directory or file, or it is not a JSON object (``labkit status``)."""
        if not path:
            return {}
        try:
            state = json.loads((Path(path) / _STATE).read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    # -- layout ------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        """``run.json``: the run key, the MLflow run id, the status."""
        return self.path / _STATE

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def figures(self) -> Path:
        return self.path / "figures"

    @property
    def job_script(self) -> Path:
        """The sbatch script of a submitted run (``labkit submit``)."""
        return self.path / "job.sh"

    def resume_checkpoint(self) -> Path | None:
        """The newest checkpoint to continue from: the one written when the job was preempted,
        or the last epoch's."""
        found = [
            p for p in (self.checkpoints / "preempted.ckpt", self.checkpoints / "last.ckpt") if p.is_file()
        ]
        return max(found, key=lambda p: p.stat().st_mtime) if found else None

    # -- state -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        path = self.path / _STATE
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise LabkitError(f"{path} is not valid JSON ({exc}); was it edited by hand?") from None
        if not isinstance(state, dict):
            raise LabkitError(f"{path} holds a JSON {type(state).__name__}, not a labkit run's state")
        return state

    def update(self, **fields: Any) -> None:
        """Merge ``fields`` into ``run.json`` atomically (write a temporary file, rename).

        ``run.json`` is always valid JSON: a float that is not finite (a NaN test loss, an
        infinite learning rate) is written as the string ``"nan"``, ``"inf"`` or ``"-inf"``
        (``float()`` reads each back), never as the bare ``NaN`` that JSON does not allow.

        When the temporary file cannot be written (the disk is full, the quota reached, the
        directory made read-only), ``run.json`` is rewritten in place instead: a failing run must
        still be marked, and the file's own blocks usually hold its new state. If that fails too
        (a read-only file system), the first ``OSError`` is raised.
        """
        state = self.state() | fields
        text = json.dumps(_finite(state), indent=2, default=str, allow_nan=False) + "\n"
        tmp = self.path / f".{_STATE}.tmp"
        try:
            tmp.write_text(text)
            os.replace(tmp, self.path / _STATE)
        except OSError as exc:
            if exc.errno not in _NO_NEW_FILE:
                raise
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)  # its blocks, if it got any, are free again
            try:
                _rewrite_in_place(self.path / _STATE, text.encode())
            except OSError:
                raise exc from None

    def mark(self, status: str, **fields: Any) -> None:
        self.update(status=status, updated=_now(), **fields)

    @property
    def mlflow_run_id(self) -> str | None:
        """The MLflow run id ``run.json`` records (None before the run reached MLflow)."""
        value = self.state().get("mlflow_run_id")
        return str(value) if value else None


def _finite(value: Any) -> Any:
    """``value`` with every float that is not finite as ``"nan"``, ``"inf"`` or ``"-inf"``."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _rewrite_in_place(path: Path, data: bytes) -> None:
    """Overwrite ``path`` with ``data`` without allocating a new file (a full disk). A write that
    fails midway puts the old content back (it fitted before), so the file stays valid JSON."""
    old = path.read_bytes()
    fd = os.open(path, os.O_WRONLY)
    try:
        try:
            _write_all(fd, data)
            os.ftruncate(fd, len(data))
        except OSError:
            _write_all(fd, old)
            os.ftruncate(fd, len(old))
            raise
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    done = 0
    while done < len(data):
        done += os.pwrite(fd, data[done:], done)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
