"""Fine-tuning lineage: start a run from another run's weights (``init_from``) and keep named
submodules of its model fixed (``freeze``).

:func:`find_parent` resolves ``init_from`` to the parent's run directory and checkpoint (before
anything is built); :func:`load_parent_weights` copies the parent's model weights into the new
task, refusing a different architecture with one line naming the first mismatched parameter;
:func:`freeze_submodules` turns training off for the named submodules. The new run records its
parent as the ``labkit.parent_run`` tag and in ``run.json`` (``init_from``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labkit._rundir import RunDir
from labkit.errors import ConfigError, LabkitError, did_you_mean

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "PARENT_TAG",
    "Parent",
    "find_parent",
    "freeze_submodules",
    "load_parent_weights",
    "mismatch_message",
    "model_root",
]

#: the tag naming the run a fine-tuned run started from (its MLflow run id, else its run key)
PARENT_TAG = "labkit.parent_run"
#: where a task keeps its model: the entries of the task's state_dict that ``init_from`` copies
_MODEL_PREFIX = "model."


@dataclass(frozen=True)
class Parent:
    """The run that ``init_from`` names: where it is and which weights it gives."""

    ref: str  #: as the experiment wrote it
    run_dir: Path
    run_key: str
    mlflow_run_id: str | None
    checkpoint: Path  #: its best checkpoint, else its last
    model_section: dict[str, Any]  #: the ``model`` section of its config.yaml

    @property
    def tag(self) -> str:
        """The value of :data:`PARENT_TAG`: the MLflow run id, or the run key before it has one."""
        return self.mlflow_run_id or self.run_key

    def record(self) -> dict[str, Any]:
        """What ``run.json`` keeps under ``init_from``."""
        return {
            "ref": self.ref,
            "run_dir": str(self.run_dir),
            "run_key": self.run_key,
            "mlflow_run_id": self.mlflow_run_id,
            "checkpoint": str(self.checkpoint),
        }


def find_parent(ref: str, runs_root: str | Path) -> Parent:
    """The run ``ref`` names (an MLflow run id, a run key or its first 8 characters, under
    ``runs_root``; or a run directory) with its best checkpoint (else its last)."""
    from labkit.runner import find_run_dir

    try:
        run_dir = find_run_dir(ref, runs_root)
        rdir = RunDir.open(run_dir)
    except LabkitError as exc:
        message = str(exc).replace("--runs-root names", "runs_root names")
        raise ConfigError(f"init_from: {message}") from None
    found = [p for p in (rdir.checkpoints / "best.ckpt", rdir.checkpoints / "last.ckpt") if p.is_file()]
    if not found:
        raise ConfigError(
            f"init_from: run {run_dir} has no checkpoint (checkpoints/best.ckpt or last.ckpt); "
            "did it finish an epoch?"
        )
    return Parent(
        ref=ref,
        run_dir=run_dir.resolve(),
        run_key=rdir.run_key,
        mlflow_run_id=rdir.mlflow_run_id,
        checkpoint=found[0].resolve(),
        model_section=_model_section(run_dir / "config.yaml"),
    )


def _model_section(config: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    section = data.get("model") if isinstance(data, dict) else None
    return section if isinstance(section, dict) else {}


def model_root(task: nn.Module) -> nn.Module:
    """What ``init_from`` and ``freeze`` act on: a labkit task's ``model``, or a user's own
    LightningModule as a whole."""
    from torch import nn

    from labkit.tasks import Task

    model = getattr(task, "model", None)
    return model if isinstance(task, Task) and isinstance(model, nn.Module) else task


def load_parent_weights(task: nn.Module, parent: Parent, model_section: Mapping[str, Any]) -> None:
    """Copy the parent's model weights into ``task`` (a labkit task: the entries of its ``model``;
    a user's LightningModule: its whole state). Data-fitted buffers of the task itself (target
    scaling, feature means) stay this run's. A different architecture is a :class:`ConfigError`
    naming the first mismatched parameter (:func:`mismatch_message`)."""
    import torch

    try:
        checkpoint = torch.load(parent.checkpoint, map_location="cpu", weights_only=True)
        theirs = checkpoint["state_dict"]
    except Exception as exc:  # noqa: BLE001 - an unreadable or foreign file: say which
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"init_from {parent.ref}: cannot read the weights in {parent.checkpoint} ({first})"
        ) from None
    ours = task.state_dict()
    whole = model_root(task) is task
    keep = (lambda k: True) if whole else (lambda k: k.startswith(_MODEL_PREFIX))
    theirs = {k: v for k, v in theirs.items() if keep(k)}
    ours_kept = {k: v for k, v in ours.items() if keep(k)}
    problem = first_mismatch(_shapes(theirs), _shapes(ours_kept))
    if problem is not None:
        raise ConfigError(mismatch_message(parent.ref, *problem, parent.model_section, model_section))
    task.load_state_dict(theirs, strict=whole)


def _shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(int(d) for d in v.shape) for k, v in state.items()}


def first_mismatch(
    theirs: Mapping[str, tuple[int, ...]], ours: Mapping[str, tuple[int, ...]]
) -> tuple[str, tuple[int, ...] | None, tuple[int, ...] | None] | None:
    """The first parameter (in this run's order, then the parent's) that is missing on one side
    or has another shape: ``(name, shape there or None, shape here or None)``; None if they match."""
    for name, shape in ours.items():
        if theirs.get(name) != shape:
            return name, theirs.get(name), shape
    for name, shape in theirs.items():
        if name not in ours:
            return name, shape, None
    return None


def mismatch_message(
    ref: str,
    name: str,
    there: tuple[int, ...] | None,
    here: tuple[int, ...] | None,
    their_model: Mapping[str, Any],
    our_model: Mapping[str, Any],
) -> str:
    """One line: which parameter differs, how, and what differs between the model sections."""
    if there is None:
        what = f"parameter {name} (shape {_shape(here)}) is in this run's model but not in that run's"
    elif here is None:
        what = f"parameter {name} (shape {_shape(there)}) is in that run's model but not in this run's"
    else:
        what = f"parameter {name} has shape {_shape(there)} in that run and {_shape(here)} here"
    return f"init_from {ref}: {what} ({_section_difference(their_model, our_model)})"


def _shape(shape: tuple[int, ...] | None) -> str:
    return str(tuple(shape or ()))  # (16, 64), (10,), () for a scalar


def _section_difference(theirs: Mapping[str, Any], ours: Mapping[str, Any]) -> str:
    if not theirs:
        return "that run's config.yaml has no model section to compare"
    differ = [
        f"model.{key}: {_value(theirs, key)} vs {_value(ours, key)}"
        for key in dict.fromkeys([*ours, *theirs])
        if _value(theirs, key) != _value(ours, key)
    ]
    if not differ:
        return "the same model section: the data gives another input shape or number of outputs"
    return "that run vs this one: " + "; ".join(differ)


def _value(section: Mapping[str, Any], key: str) -> str:
    if key not in section:
        return "unset"
    value = section[key]
    return value if isinstance(value, str) else json.dumps(value, default=str)


def freeze_submodules(root: nn.Module, names: Sequence[str]) -> int:
    """Turn off ``requires_grad`` for every parameter of the submodules ``names`` (``encoder``,
    ``net.0``) of ``root``; the number of parameters (elements) frozen. An unknown name, a
    submodule without parameters, or freezing everything is a :class:`ConfigError`."""
    frozen = 0
    for name in names:
        module = _submodule(root, name)
        params = list(module.parameters())
        if not params:
            raise ConfigError(
                f"freeze: {name} ({type(module).__name__}) has no parameters to freeze; "
                f"submodules with parameters: {', '.join(_with_params(root)) or 'none'}"
            )
        for p in params:
            frozen += p.numel() if p.requires_grad else 0
            p.requires_grad_(False)
    if names and not any(p.requires_grad for p in root.parameters()):
        raise ConfigError(
            f"freeze: {list(names)} freezes every parameter of {type(root).__name__}; nothing is left "
            "to train (freeze fewer submodules)"
        )
    return frozen


def _submodule(root: nn.Module, path: str) -> nn.Module:
    node, done = root, list[str]()
    for part in path.split("."):
        children = dict(node.named_children())
        if part not in children:
            where = (
                f"{'.'.join(done)} ({type(node).__name__})" if done else f"the model ({type(node).__name__})"
            )
            listing = ", ".join(children) or "none"
            raise ConfigError(
                f"freeze: {where} has no submodule {part!r}{did_you_mean(part, children)}; "
                f"its submodules: {listing}"
            )
        node = children[part]
        done.append(part)
    return node


def _with_params(root: nn.Module, limit: int = 12) -> list[str]:
    names = [n for n, m in root.named_modules() if n and any(True for _ in m.parameters(recurse=False))]
    return names[:limit] + ([f"... ({len(names) - limit} more)"] if len(names) > limit else [])
