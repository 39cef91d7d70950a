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
    def create(cls, root: str | os.PathLike[str], name: str) -> RunDir:
        key = uuid.uuid4().hex
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = Path(root) / name / f"{stamp}-{key[:8]}"
        try:
            path.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            raise LabkitError(f"cannot create the run directory {path} (runs_root): {exc.strerror}") from None
        run_dir = cls(path, key)
        run_dir.update(run_key=key, status="CREATED", created=_now())
        return run_dir

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
