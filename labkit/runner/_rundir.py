"""One directory per run: everything a run produces is written here before it goes anywhere."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from labkit.errors import LabkitError

__all__ = ["RunDir"]

_STATE = "run.json"


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
        return cls(Path(path), state["run_key"])

    # -- layout ------------------------------------------------------------------------------
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
        try:
            return dict(json.loads((self.path / _STATE).read_text()))
        except FileNotFoundError:
            return {}

    def update(self, **fields: Any) -> None:
        """Merge ``fields`` into ``run.json`` atomically (write a temporary file, rename)."""
        state = self.state() | fields
        tmp = self.path / f".{_STATE}.tmp"
        tmp.write_text(json.dumps(state, indent=2, default=str) + "\n")
        os.replace(tmp, self.path / _STATE)

    def mark(self, status: str, **fields: Any) -> None:
        self.update(status=status, updated=_now(), **fields)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
