"""``labkit export``: a trained run as ONNX (and TorchScript), checked against PyTorch.

The exported model takes **raw physical inputs** (the run's input standardisation is folded in)
and returns **physical outputs**, each task's own convention: class probabilities (softmax),
regression targets in their units (log targets exponentiated, as the test step does), the
anomaly score the task computes, per-pixel class probabilities; for a user's own LightningModule
(``model.class_path``) its ``forward`` on the (standardised) input batch, whatever tensor or
tuple of tensors it returns.

ONNX goes through one exporter path, pinned: ``torch.onnx.export(..., dynamo=True)`` (the
``torch.export``-based exporter; it needs ``onnxscript``). After writing, the files check
themselves: onnxruntime (CPU, and CUDA where that provider exists) and TorchScript against the
PyTorch wrapper on events of the run's test split, at batch 1 and batch N, and the exported model
fed raw inputs against labkit's own test-step path on the standardised inputs. The difference is
:func:`relative_difference`; see ``docs/predict-export.md``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn

from labkit.errors import LabkitError
from labkit.runner._export_model import (
    FLOOR_FRACTION,
    ExportCheck,
    ExportModule,
    reference_outputs,
    relative_difference,
    task_kind,
    tensors,
)
from labkit.runner._runlog import add_to_run

if TYPE_CHECKING:
    from labkit.runner._trained import TrainedRun

__all__ = [
    "DEFAULT_OPSET",
    "DEFAULT_TOLERANCE",
    "ExportResult",
    "export_run",
    "write_onnx",
    "write_torchscript",
]

FORMATS = ("onnx", "torchscript", "both")
DEFAULT_OPSET = 18  #: the opset torch's ONNX functions (torchlib) are written in: no conversion
MIN_OPSET, MAX_OPSET = 18, 23  #: lower opsets need ONNX's version converter, which often fails
DEFAULT_TOLERANCE = 1e-5  #: max relative difference allowed (float32)
CHECK_EVENTS = 1000
CHECK_BATCH = 256
EXPORTER = "torch.onnx.export(dynamo=True)"
INPUT_NAME = "inputs"


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_run` wrote and what its self-check found."""

    run_dir: Path
    out_dir: Path
    files: tuple[Path, ...]  #: model.onnx and/or model.pt, and model.json
    kind: str
    opset: int | None
    checks: tuple[ExportCheck, ...]
    notes: tuple[str, ...]  #: e.g. fewer test events than asked for, no CUDA provider
    logged: str  #: how the files reached the run's artifacts (or why not)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def worst(self) -> ExportCheck | None:
        return max(self.checks, key=lambda c: c.max_rel, default=None)


# -- export ----------------------------------------------------------------------------------------
def export_run(
    ref: str,
    *,
    format: str = "both",
    out_dir: str | Path | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    runs_root: str | Path = "runs",
    tolerance: float = DEFAULT_TOLERANCE,
    events: int = CHECK_EVENTS,
    batch_size: int = CHECK_BATCH,
    log: bool = True,
    tracking_uri: str | None = None,
) -> ExportResult:
    """Export the run ``ref`` names (an MLflow run id, a run key or its first 8 characters, or a
    run directory) to ``out_dir`` (default ``<run_dir>/export``), check it, and (``log``) add the
    files to the run's artifacts. A failed check does not raise: see :attr:`ExportResult.passed`.
    Without ``dynamic_batch`` the ONNX model takes batch 1 only, and its batch-N check is skipped."""
    if format not in FORMATS:
        raise LabkitError(f"--format {format!r}: choose one of {', '.join(FORMATS)}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise LabkitError(
            f"--opset {opset}: the exporter ({EXPORTER}) writes opsets {MIN_OPSET} to {MAX_OPSET}"
        )
    if not tolerance > 0:
        raise LabkitError(f"--tolerance {tolerance}: give a positive relative difference, e.g. 1e-5")
    if events < 1 or batch_size < 1:
        raise LabkitError(f"events ({events}) and batch size ({batch_size}) must be at least 1")
    from labkit.runner._trained import load_trained

    trained = load_trained(ref, runs_root=runs_root)
    kind = task_kind(trained.task, str(trained.experiment.task.kind))
    out = Path(out_dir) if out_dir is not None else trained.run_dir / "export"
    if trained.info.input_shapes:  # named inputs (data.constituents): a set model, ONNX only
        from labkit.runner._export_sets import export_sets

        out.mkdir(parents=True, exist_ok=True)
        written, checks, notes = export_sets(
            trained, kind=kind, format=format, out=out, opset=opset, dynamic_batch=dynamic_batch,
            tolerance=tolerance, events=events, batch_size=batch_size,
        )  # fmt: skip
        return _result(trained, out, written, kind, opset, checks, notes, log=log, tracking_uri=tracking_uri)
    module = ExportModule(trained.task, kind=kind, mean=trained.input_mean, std=trained.input_std).eval()
    raw, z, notes = _test_events(trained, events)
    with torch.no_grad():
        probe = module(torch.as_tensor(raw[:2]))
        out_names = _output_names(kind, len(tensors(probe, type(trained.task).__name__)))
    out.mkdir(parents=True, exist_ok=True)
    card = model_card(trained, kind, out_names, opset, dynamic_batch, module)
    files: list[Path] = []
    runners: dict[str, Callable[[np.ndarray], list[np.ndarray]]] = {}
    example = torch.as_tensor(raw[: 2 if dynamic_batch else 1])
    if format in ("onnx", "both"):
        path = out / "model.onnx"
        write_onnx(module, example, path, out_names, opset=opset, dynamic_batch=dynamic_batch, card=card)
        files.append(path)
        runners |= _onnx_runners(path, notes)
    if format in ("torchscript", "both"):
        path = out / "model.pt"
        write_torchscript(module, example, path, card)
        files.append(path)
        runners["TorchScript"] = _torchscript_runner(path)
    checks = _self_check(module, trained.task, kind, raw, z, runners, dynamic_batch, batch_size, tolerance)
    card["checks"] = [asdict(c) | {"passed": c.passed} for c in checks]
    card["files"] = [p.name for p in files]
    (out / "model.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
    files.append(out / "model.json")
    onnx_written = format != "torchscript"
    if onnx_written and not dynamic_batch:
        notes.append("ONNX batch N not checked: the model takes batch 1 (use --dynamic-batch for any batch)")
    opset_written = opset if onnx_written else None
    return _result(
        trained, out, files, kind, opset_written, checks, notes, log=log, tracking_uri=tracking_uri
    )


def _result(
    trained: TrainedRun,
    out: Path,
    files: list[Path],
    kind: str,
    opset: int | None,
    checks: list[ExportCheck],
    notes: list[str],
    *,
    log: bool,
    tracking_uri: str | None,
) -> ExportResult:
    """The result, with the files added to the run's artifacts when asked and every check passed."""
    if not log:
        logged = "not logged (--no-log)"
    elif not all(c.passed for c in checks):
        logged = "not logged: the check failed"
    else:
        logged = add_to_run(trained.run_dir, files=[out], artifact_path="export", uri=tracking_uri)
    return ExportResult(trained.run_dir, out, tuple(files), kind, opset, tuple(checks), tuple(notes), logged)


def _output_names(kind: str, count: int) -> tuple[str, ...]:
    names = {"classification": "probabilities", "segmentation": "probabilities", "regression": "values"}
    names["anomaly"] = "anomaly_score"
    if kind in names:
        return (names[kind],)
    return ("output",) if count == 1 else tuple(f"output_{i}" for i in range(count))


def _test_events(trained: TrainedRun, wanted: int) -> tuple[np.ndarray, torch.Tensor, list[str]]:
    """The first ``wanted`` events of the test split: raw (as in the file) and standardised (as
    the test step sees them)."""
    loader = trained.datamodule.test_dataloader()
    parts: list[torch.Tensor] = []
    have = 0
    for batch in loader:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        parts.append(x.float())
        have += len(x)
        if have >= wanted:
            break
    if not parts:
        raise LabkitError(f"run {trained.run_dir}: its test split holds no events to check the export on")
    z = torch.cat(parts)[:wanted]
    notes = []
    if len(z) < wanted:
        notes.append(f"the test split holds {len(z)} events (fewer than {wanted}): checked on all of them")
    mean, std = trained.input_mean, trained.input_std
    if mean is None or std is None:
        return z.numpy().copy(), z, notes
    raw = _raw_inputs(trained.datamodule, len(z))
    if raw is None:  # a data module without the original arrays: undo the standardisation
        raw = (z.numpy() * std + mean).astype(np.float32)
        notes.append("raw inputs rebuilt as z·std + mean (the data module cannot reload them)")
    return raw, z, notes


def _raw_inputs(dm: Any, n: int) -> np.ndarray | None:
    """The test split's first ``n`` inputs as loaded, before standardisation (float32)."""
    if not (hasattr(dm, "split_indices") and hasattr(dm, "load")):
        return None
    loaded = dm.load()
    x = loaded.x if hasattr(loaded, "x") else loaded[0]
    return np.ascontiguousarray(np.asarray(x)[dm.split_indices("test")[:n]], dtype=np.float32)


def model_card(
    trained: TrainedRun, kind: str, outputs: tuple[str, ...], opset: int, dynamic: bool, module: nn.Module
) -> dict[str, Any]:
    """``model.json`` (and the ONNX ``metadata_props``, flattened): what goes in and comes out."""
    import labkit

    info, task = trained.info, cast(Any, trained.task)
    columns: tuple[str, ...] = ()
    meaning = {
        "classification": "class probabilities (softmax), one column per label",
        "segmentation": "per-pixel class probabilities (N, K, H, W), one channel per label",
        "regression": "the targets in their physical units (log targets exponentiated)",
        "anomaly": f"the {getattr(task, 'method', '')} anomaly score (higher: more signal-like)",
        "custom": f"{type(task).__name__}.forward(x) as it returns it",
    }[kind]
    labels = tuple(getattr(task, "class_names", ())) if kind in ("classification", "segmentation") else ()
    if kind == "regression":
        columns = tuple(task.targets)
    elif labels:
        columns = labels
    mean, std = trained.input_mean, trained.input_std
    return {
        "format_version": 1,
        "run_id": trained.run_id,
        "run_key": trained.run_key,
        "experiment": trained.experiment.name,
        "git_commit": trained.git_commit,
        "labkit_version": labkit.__version__,
        "torch_version": torch.__version__,
        "exporter": EXPORTER,
        "opset": opset,
        "task": kind,
        "checkpoint": str(trained.checkpoint),
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch" if dynamic else 1, *info.in_shape],
            "dtype": "float32",
            "units": "raw, as in the training file",
        },
        "input_names": list(info.input_names),
        "output_names": list(outputs),
        "output_columns": list(columns),
        "label_names": list(labels),
        "output_meaning": meaning,
        "normalisation": {
            "folded": bool(module.folded),
            "formula": "(x - mean) / std, inside the model" if module.folded else "none (raw inputs)",
            "mean": None if mean is None else np.asarray(mean).tolist(),
            "std": None if std is None else np.asarray(std).tolist(),
        },
        "relative_difference": f"|a - b| / max(|b|, {FLOOR_FRACTION:g} * max|b| of its column)",
    }


def _metadata(card: dict[str, Any]) -> dict[str, str]:
    """The model card as ONNX ``metadata_props`` (strings; lists and tables as JSON)."""
    keep = ("run_id", "run_key", "experiment", "git_commit", "labkit_version", "torch_version")
    props = {k: str(card[k]) for k in keep}
    props |= {"exporter": card["exporter"], "opset": str(card["opset"]), "task": card["task"]}
    for key in ("input_names", "output_names", "output_columns", "label_names", "normalisation"):
        props[key] = json.dumps(card[key])
    props["input"] = json.dumps(card["input"])
    props["input_name"] = card["input"]["name"]
    return props


def write_onnx(
    module: nn.Module,
    example: torch.Tensor | tuple[torch.Tensor, ...],
    path: Path,
    outputs: tuple[str, ...],
    *,
    opset: int,
    dynamic_batch: bool,
    card: dict[str, Any],
    input_names: tuple[str, ...] = (INPUT_NAME,),
) -> None:
    """``module`` as ONNX through the pinned exporter path, with ``card`` as ``metadata_props``;
    ``example`` one tensor (``forward(x)``) or a tuple of them (``forward(*xs)``, named
    ``input_names``)."""
    import onnx

    args = example if isinstance(example, tuple) else (example,)
    shapes: Any = None
    if dynamic_batch:
        shapes = {"x": {0: "batch"}} if len(args) == 1 else {"xs": tuple({0: "batch"} for _ in args)}
    try:
        with _quiet():
            program = torch.onnx.export(
                module,
                args,
                dynamo=True,  # pinned: the torch.export-based exporter (see docs/predict-export.md)
                input_names=list(input_names),
                output_names=list(outputs),
                opset_version=opset,
                dynamic_shapes=shapes,
                external_data=False,
                optimize=True,
                verbose=False,
            )
    except Exception as exc:  # noqa: BLE001 - any exporter failure is reported on one line
        raise LabkitError(unsupported_message(exc, opset)) from None
    assert program is not None
    proto = program.model_proto
    got = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset)
    if got != opset:
        raise LabkitError(
            f"--opset {opset}: the exporter could not write it (it gave opset {got}); use {got}"
        )
    onnx.helper.set_model_props(proto, _metadata(card))
    onnx.checker.check_model(proto)
    onnx.save_model(proto, str(path))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Without the exporter's chatter: its warnings, its log lines (``torchvision is not
    installed``) and the graphs it prints when ``torch.export`` fails (the error says it)."""
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            with contextlib.redirect_stderr(io.StringIO()):
                yield
    finally:
        logger.setLevel(level)


_OP = re.compile(r"OpOverload\(op='([\w.]+)'|No ONNX function found for ([\w.:]+)|\b(aten(?:::|\.)\w+)")


def unsupported_message(exc: BaseException, opset: int) -> str:
    """One line naming what the exporter could not export: the operator where it says one."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    text = "\n".join(f"{type(e).__name__}: {e}" for e in chain)
    match = _OP.search(text)
    if match:
        op = next(g for g in match.groups() if g).replace("::", ".")
        op = re.sub(r"\.default$", "", op)
        return (
            f"cannot export to ONNX (opset {opset}): the operator {op} has no ONNX translation "
            f"in {EXPORTER}; replace it in the model, or try another --opset"
        )
    first = next((ln.strip() for e in reversed(chain) for ln in str(e).splitlines() if ln.strip()), "")
    if "data-dependent" in text or "DataDependent" in text:
        return (
            f"cannot export to ONNX: the model branches on a tensor's value (a Python `if` on data), "
            f"which torch.export cannot trace; use torch.where or torch.cond ({first[:200]})"
        )
    return f"cannot export to ONNX: {type(chain[-1]).__name__}: {first[:300]}"


def write_torchscript(module: nn.Module, example: torch.Tensor, path: Path, card: dict[str, Any]) -> None:
    """``module`` traced (``torch.jit.trace``) with ``model.json`` inside as an extra file."""
    import lightning.pytorch as pl

    try:
        # Lightning's own switch for TorchScript (what LightningModule.to_torchscript sets): its
        # properties (``trainer``) stop raising for a module that no Trainer holds
        with _quiet(), _scripting(pl.LightningModule):
            traced = torch.jit.trace(module, (example,), check_trace=False, strict=False)
    except Exception as exc:  # noqa: BLE001 - the tracer's failure, on one line
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise LabkitError(f"cannot export to TorchScript: {type(exc).__name__}: {first}") from None
    with _quiet():  # torch.jit.save warns that TorchScript is deprecated (docs/predict-export.md)
        torch.jit.save(traced, str(path), _extra_files={"model.json": json.dumps(card)})


@contextlib.contextmanager
def _scripting(cls: Any) -> Iterator[None]:
    cls._jit_is_scripting = True
    try:
        yield
    finally:
        cls._jit_is_scripting = False


# -- the self-check ------------------------------------------------------------------------------
def _onnx_runners(path: Path, notes: list[str]) -> dict[str, Callable[[np.ndarray], list[np.ndarray]]]:
    return {
        what: partial(_run_session, session, session.get_inputs()[0].name)
        for what, session in onnx_sessions(path, notes).items()
    }


def onnx_sessions(path: Path, notes: list[str]) -> dict[str, Any]:
    """onnxruntime sessions of ``path``: CPU, and CUDA where onnxruntime and a GPU have it."""
    import onnxruntime as ort  # type: ignore[import-untyped, import-not-found, unused-ignore]

    available = ort.get_available_providers()
    providers = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available and torch.cuda.is_available():
        providers.append("CUDAExecutionProvider")
    else:
        notes.append("onnxruntime's CUDA provider not checked (no GPU, or a CPU-only onnxruntime)")
    sessions: dict[str, Any] = {}
    for provider in providers:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        sessions[f"onnxruntime {provider}"] = ort.InferenceSession(str(path), options, providers=[provider])
    return sessions


def _run_session(session: Any, name: str, x: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(o) for o in session.run(None, {name: x})]


def _torchscript_runner(path: Path) -> Callable[[np.ndarray], list[np.ndarray]]:
    with _quiet():
        loaded = torch.jit.load(str(path), map_location="cpu")

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in tensors(loaded(torch.as_tensor(x)), "TorchScript")]

    return run


def _batched(run: Callable[[np.ndarray], list[np.ndarray]], x: np.ndarray, batch: int) -> list[np.ndarray]:
    chunks = [run(np.ascontiguousarray(x[i : i + batch])) for i in range(0, len(x), batch)]
    return [np.concatenate([c[k] for c in chunks]) for k in range(len(chunks[0]))]


def _self_check(
    module: ExportModule,
    task: nn.Module,
    kind: str,
    raw: np.ndarray,
    z: torch.Tensor,
    runners: dict[str, Callable[[np.ndarray], list[np.ndarray]]],
    dynamic_batch: bool,
    batch_size: int,
    tolerance: float,
) -> list[ExportCheck]:
    """Each exported file against the PyTorch wrapper at batch 1 and batch N, and the first file
    fed raw inputs against labkit's test step on the standardised ones."""
    n = len(raw)
    big = min(batch_size, n)

    def torch_run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in tensors(module(torch.as_tensor(x)), "the exported model")]

    reference = _batched(torch_run, raw, big)
    checks = []
    first: tuple[int, list[np.ndarray]] | None = None
    for what, run in runners.items():
        sizes = [1] + ([big] if big > 1 and (dynamic_batch or not what.startswith("onnx")) else [])
        for batch in sizes:
            got = _batched(run, raw, batch)
            first = (batch, got) if first is None else first
            difference = relative_difference(got, reference)
            checks.append(ExportCheck(f"{what} vs PyTorch", batch, n, *difference, tolerance))
    if first is not None:
        step = [t.numpy() for t in reference_outputs(task, kind, z)]
        label = f"raw inputs through {next(iter(runners))} vs labkit's test step"
        checks.append(ExportCheck(label, first[0], n, *relative_difference(first[1], step), tolerance))
    return checks
