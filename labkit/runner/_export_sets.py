"""``labkit export`` for runs whose model reads named inputs (``data.constituents``: set models).

The exported model takes one input per name, in the order of ``DataInfo.input_shapes``
(``features`` (N, F), each constituent set ``g`` (N, M, F_g) float32 and its mask ``g_valid``
(N, M) bool), raw as in the file: the run's per-name standardisation is folded in (constituent
features scaled over their real entries, padding set to 0, masks untouched), and the task's
physical outputs come out as for one-array runs. ONNX only (``torch.onnx.export(dynamo=True)``);
checked with onnxruntime, fed by input name, against the PyTorch wrapper and labkit's test step
on the run's test events.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from labkit.errors import LabkitError
from labkit.runner._export_model import ExportCheck, reference_outputs, relative_difference, tensors

if TYPE_CHECKING:
    from labkit.runner._trained import TrainedRun

__all__ = ["SetExportModule", "export_sets", "set_test_events"]

Runner = Callable[[Sequence[np.ndarray]], list[np.ndarray]]


class SetExportModule(nn.Module):
    """Raw named inputs in (positional, in ``names`` order), physical outputs out: the run's
    per-name standardisation, then the task's output convention (``kind``)."""

    def __init__(
        self,
        task: nn.Module,
        *,
        kind: str,
        names: Sequence[str],
        scalings: Mapping[str, tuple[np.ndarray, np.ndarray]],
    ) -> None:
        super().__init__()
        self.task, self.kind, self.names = task, kind, tuple(names)
        self.scaled = tuple(n for n in self.names if n in scalings)
        self.folded = bool(self.scaled)
        for i, name in enumerate(self.scaled):
            mean, std = scalings[name]
            self.register_buffer(f"mean_{i}", torch.as_tensor(np.asarray(mean, dtype=np.float32)))
            self.register_buffer(f"std_{i}", torch.as_tensor(np.asarray(std, dtype=np.float32)))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        x = dict(zip(self.names, xs, strict=True))
        z: dict[str, torch.Tensor] = dict(x)
        for i, name in enumerate(self.scaled):
            f = (x[name] - getattr(self, f"mean_{i}")) / getattr(self, f"std_{i}")
            valid = x.get(name + "_valid")
            z[name] = f if valid is None else torch.where(valid.unsqueeze(-1), f, torch.zeros_like(f))
        task: Any = self.task
        if self.kind == "classification":
            return torch.softmax(task.model(z), dim=1)
        out = task.model(z)
        result: torch.Tensor = task.physical(out.reshape(out.shape[0], -1)[:, : len(task.targets)])
        return result


def export_sets(
    trained: TrainedRun,
    *,
    kind: str,
    format: str,
    out: Path,
    opset: int,
    dynamic_batch: bool,
    tolerance: float,
    events: int,
    batch_size: int,
) -> tuple[list[Path], list[ExportCheck], list[str]]:
    """Write ``model.onnx`` and ``model.json`` for a set-model run into ``out`` and check them;
    the files, the checks and the notes."""
    from labkit.runner._export import model_card as card
    from labkit.runner._export import onnx_sessions, write_onnx

    if format not in ("onnx", "both"):
        raise LabkitError(
            f"--format {format}: a run whose model reads named inputs (data.constituents) is exported "
            "to ONNX only; use --format onnx"
        )
    if kind not in ("classification", "regression"):
        raise LabkitError(
            f"task.kind {kind!r}: labkit export writes set models for classification and regression"
        )
    names = tuple(trained.info.input_shapes)
    scalings = dict(getattr(trained.datamodule, "input_scalings", {}))
    module = SetExportModule(trained.task, kind=kind, names=names, scalings=scalings).eval()
    raw, z, notes = set_test_events(trained, events)
    outputs = ("probabilities",) if kind == "classification" else ("values",)
    model_card = card(trained, kind, outputs, opset, dynamic_batch, module)
    model_card |= _inputs_card(trained, names, scalings, dynamic_batch)
    example = tuple(torch.as_tensor(a[: 2 if dynamic_batch else 1]) for a in raw)
    path = out / "model.onnx"
    write_onnx(
        module,
        example,
        path,
        outputs,
        opset=opset,
        dynamic_batch=dynamic_batch,
        card=model_card,
        input_names=names,
    )
    runners = {what: _by_name(session, names) for what, session in onnx_sessions(path, notes).items()}
    checks = _check(module, trained.task, kind, raw, z, runners, dynamic_batch, batch_size, tolerance)
    if format == "both":
        notes.append("TorchScript not written: set models (named inputs) are exported to ONNX only")
    model_card["checks"] = [asdict(c) | {"passed": c.passed} for c in checks]
    model_card["files"] = ["model.onnx"]
    (out / "model.json").write_text(json.dumps(model_card, indent=2, default=str) + "\n")
    if not dynamic_batch:
        notes.append("ONNX batch N not checked: the model takes batch 1 (use --dynamic-batch for any batch)")
    return [path, out / "model.json"], checks, notes


def _inputs_card(
    trained: TrainedRun,
    names: Sequence[str],
    scalings: Mapping[str, tuple[np.ndarray, np.ndarray]],
    dynamic: bool,
) -> dict[str, Any]:
    shapes = trained.info.input_shapes
    inputs = [
        {
            "name": n,
            "shape": ["batch" if dynamic else 1, *shapes[n]],
            "dtype": "bool" if _is_mask(n, names) else "float32",
            "units": "raw, as in the training file"
            + ("; True marks a real entry" if _is_mask(n, names) else ""),
            "fields": list(
                trained.info.constituents.get(n, trained.info.input_names if n == "features" else ())
            ),
        }
        for n in names
    ]
    normalisation = {
        "folded": bool(scalings),
        "formula": "(x - mean) / std per name, inside the model; constituents over their real entries "
        "(padding set to 0); masks untouched",
        "per_input": {
            n: {"mean": np.asarray(m).tolist(), "std": np.asarray(s).tolist()}
            for n, (m, s) in scalings.items()
        },
    }
    described = {
        "name": ", ".join(names),  # one input per name, fed by name
        "names": list(names),
        "shapes": {i["name"]: i["shape"] for i in inputs},
        "dtypes": {i["name"]: i["dtype"] for i in inputs},
        "units": "raw, as in the training file; masks True for a real entry",
    }
    return {"input": described, "inputs": inputs, "normalisation": normalisation}


def _is_mask(name: str, names: Sequence[str]) -> bool:
    return name.endswith("_valid") and name[: -len("_valid")] in names


def set_test_events(
    trained: TrainedRun, wanted: int
) -> tuple[list[np.ndarray], dict[str, torch.Tensor], list[str]]:
    """The first ``wanted`` events of the test split: raw per name (as read from the files, in
    ``input_shapes`` order) and standardised (as the test loader serves them), in the same order."""
    from labkit.runner._predict import _kept
    from labkit.runner._predict_sets import _chunks, _reader

    dm: Any = trained.datamodule
    parts: list[dict[str, torch.Tensor]] = []
    have = 0
    for batch in dm.test_dataloader():
        parts.append(batch[0])
        have += len(batch[1])
        if have >= wanted:
            break
    if not parts:
        raise LabkitError(f"run {trained.run_dir}: its test split holds no events to check the export on")
    z = {k: torch.cat([p[k] for p in parts])[:wanted] for k in parts[0]}
    n = len(next(iter(z.values())))
    notes = (
        []
        if n == wanted
        else [f"the test split holds {n} events (fewer than {wanted}): checked on all of them"]
    )
    rows = np.asarray(dm.split_indices("test"))[:n]
    ordered = np.sort(rows)
    found: dict[str, list[np.ndarray]] = {}
    for start, a in _chunks(_reader(trained, None, ()), 65536):
        keep = _kept(ordered, start, len(a.y))
        if keep is not None and len(keep):
            for k, v in a.x.items():
                found.setdefault(k, []).append(np.asarray(v)[keep])
        if start + len(a.y) > ordered[-1]:
            break
    names = tuple(trained.info.input_shapes)
    back = np.searchsorted(ordered, rows)  # sorted rows -> the loader's order
    raw = []
    for name in names:
        values = np.concatenate(found[name])[back]
        raw.append(values.astype(bool) if _is_mask(name, names) else np.nan_to_num(values.astype(np.float32)))
    return raw, z, notes


def _by_name(session: Any, names: Sequence[str]) -> Runner:
    def run(xs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(o) for o in session.run(None, dict(zip(names, xs, strict=True)))]

    return run


def _batched(run: Runner, xs: Sequence[np.ndarray], batch: int) -> list[np.ndarray]:
    n = len(xs[0])
    chunks = [run([np.ascontiguousarray(x[i : i + batch]) for x in xs]) for i in range(0, n, batch)]
    return [np.concatenate([c[k] for c in chunks]) for k in range(len(chunks[0]))]


def _check(
    module: SetExportModule,
    task: nn.Module,
    kind: str,
    raw: Sequence[np.ndarray],
    z: dict[str, torch.Tensor],
    runners: dict[str, Runner],
    dynamic_batch: bool,
    batch_size: int,
    tolerance: float,
) -> list[ExportCheck]:
    """onnxruntime against the PyTorch wrapper (batch 1 and, with ``dynamic_batch``, batch N), and
    the ONNX model fed raw inputs against labkit's test step on the standardised ones."""
    n = len(raw[0])
    big = min(batch_size, n)

    def torch_run(xs: Sequence[np.ndarray]) -> list[np.ndarray]:
        with torch.no_grad():
            return [
                t.numpy() for t in tensors(module(*(torch.as_tensor(x) for x in xs)), "the exported model")
            ]

    reference = _batched(torch_run, raw, big)
    checks = []
    first: tuple[int, list[np.ndarray]] | None = None
    for what, run in runners.items():
        for batch in [1] + ([big] if big > 1 and dynamic_batch else []):
            got = _batched(run, raw, batch)
            first = (batch, got) if first is None else first
            checks.append(
                ExportCheck(f"{what} vs PyTorch", batch, n, *relative_difference(got, reference), tolerance)
            )
    if first is not None:
        step = [t.numpy() for t in reference_outputs(task, kind, z)]  # type: ignore[arg-type]
        label = f"raw inputs through {next(iter(runners))} vs labkit's test step"
        checks.append(ExportCheck(label, first[0], n, *relative_difference(first[1], step), tolerance))
    return checks
