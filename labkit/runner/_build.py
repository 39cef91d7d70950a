"""Turn the validated experiment into objects: datamodule, model, task."""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from torch import nn

from labkit.config import MAX_CLASSES, MODEL_SPECS, ClassPathSpec, ComponentSpec, Experiment
from labkit.data import DataInfo
from labkit.errors import ConfigError, DataError, LabkitError, RegistryError, did_you_mean
from labkit.tasks import Task

__all__ = ["build_datamodule", "build_task", "data_info", "import_object"]


def import_object(path: str, field: str) -> Any:
    """Import ``package.module.Name`` (or ``package.module:Name``); errors name ``field``."""
    module_name, _, attr = path.replace(":", ".").rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RegistryError(f"{field}: cannot import module {module_name!r} ({exc})") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        names = [n for n in dir(module) if not n.startswith("_")]
        raise RegistryError(
            f"{field}: module {module_name!r} has no {attr!r}{did_you_mean(attr, names)}"
        ) from None


def _construct(cls: Any, kwargs: dict[str, Any], field: str, path: str = "") -> Any:
    """``cls(**kwargs)``, after checking the arguments against its signature (names, and values
    of parameters annotated ``int``/``float``/``str``/``bool``); an error raised by the class's
    constructor is a :class:`RegistryError` of one line naming the class path's field."""
    try:
        signature: inspect.Signature | None = inspect.signature(cls)
    except (TypeError, ValueError):  # no signature available (builtins): let the call decide
        signature = None
    if signature is not None:
        try:
            signature.bind(**kwargs)
        except TypeError as exc:
            accepted = ", ".join(n for n in signature.parameters if n not in ("self", "args", "kwargs"))
            raise RegistryError(
                f"{field}: {cls.__name__}: {exc}; it accepts: {accepted or 'nothing'}"
            ) from None
        _check_types(cls, kwargs, field)
    where = field.replace("init_args", "class_path")
    try:
        return cls(**kwargs)
    except Exception as exc:  # before training: the user's constructor refused its arguments
        first = (str(exc).strip().splitlines() or [""])[0]
        raise RegistryError(
            f"{where}: {path or cls.__name__}(**init_args) failed: {type(exc).__name__}: {first}"
        ) from exc


_SIMPLE: dict[Any, str] = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _check_types(cls: Any, kwargs: dict[str, Any], field: str) -> None:
    """Values given for parameters annotated with a plain ``int``, ``float``, ``str`` or ``bool``
    must be of that type (an integer passes as a float)."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # noqa: BLE001 - annotations that do not resolve: nothing to check
        return
    for name, value in kwargs.items():
        hint: Any = hints.get(name)
        if hint not in _SIMPLE:
            continue
        if hint is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif hint is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = isinstance(value, hint)
        if not ok:
            raise RegistryError(
                f"{field}.{name}: {cls.__name__} expects {_SIMPLE[hint]} ({hint.__name__}), got {value!r}"
            )


_EXPECTED = {
    "data": "a concrete subclass of lightning.pytorch.LightningDataModule that defines train_dataloader "
    "(or of labkit.data.ArraySplitDataModule that defines load)",
    "model": "a concrete subclass of torch.nn.Module that defines forward, or a LightningModule that "
    "defines training_step and configure_optimizers",
}


_NOT_A = {
    "data": "not a LightningDataModule class",
    "model": "neither a torch.nn.Module nor a LightningModule",
}


def _concrete(cls: Any, path: str, field: str, kind: str) -> None:
    """RegistryError naming ``field`` unless ``cls`` is a class of ``kind`` (``data``, ``model``)
    that can be used as it is: not abstract, and defining what labkit calls."""
    expected = _EXPECTED[kind]
    if not isinstance(cls, type):
        what = "a module" if inspect.ismodule(cls) else f"a value of type {type(cls).__name__}"
        raise RegistryError(f"{field}: {path} is {_NOT_A[kind]} (it is {what}); expected {expected}")
    missing: list[str] = []
    if kind == "data":
        from labkit.data import ArraySplitDataModule

        if not issubclass(cls, pl.LightningDataModule):
            raise RegistryError(f"{field}: {path} is {_NOT_A[kind]}; expected {expected}")
        if issubclass(cls, ArraySplitDataModule):
            missing = ["load"] if cls.load is ArraySplitDataModule.load else []
        elif cls.train_dataloader is pl.LightningDataModule.train_dataloader:
            missing = ["train_dataloader"]
    elif issubclass(cls, pl.LightningModule):
        base = pl.LightningModule
        missing = [
            m for m in ("training_step", "configure_optimizers") if getattr(cls, m) is getattr(base, m)
        ]
    elif issubclass(cls, nn.Module):
        missing = ["forward"] if cls.forward is nn.Module.forward else []
    else:
        raise RegistryError(f"{field}: {path} is {_NOT_A[kind]}; expected {expected}")
    missing += [m for m in sorted(getattr(cls, "__abstractmethods__", ())) if m not in missing]
    if missing:
        raise RegistryError(
            f"{field}: {path} cannot be used as it is: it does not define {', '.join(missing)} "
            f"(an abstract base class?); expected {expected}"
        )


def build_datamodule(exp: Experiment, *, stage_dir: Path | None = None) -> pl.LightningDataModule:
    """The experiment's DataModule; ``stage_dir``: where ``data.stage: true`` copies the files
    (the job's node-local disk, from :func:`labkit.data.default_stage_dir`)."""
    spec = exp.data
    if isinstance(spec, ClassPathSpec):
        cls = import_object(spec.class_path, "data.class_path")
        _concrete(cls, spec.class_path, "data.class_path", "data")
        kwargs = _fill_in(cls, {"seed": exp.seed}) | dict(spec.init_args)
        return _construct(cls, kwargs, "data.init_args", spec.class_path)  # type: ignore[no-any-return]
    assert isinstance(spec, ComponentSpec)
    cls = import_object(spec.target, "data.name")
    kind = exp.task.target_kind
    wanted = _task_class(exp).extras(exp.task)
    extras = {"extras": wanted} if wanted else {}
    options = spec.options()
    if options.get("stage") is True and stage_dir is not None:
        options["stage"] = str(stage_dir)
    return cls(**options, seed=exp.seed, target_kind=kind, **extras)  # type: ignore[no-any-return]


def data_info(dm: pl.LightningDataModule, exp: Experiment) -> DataInfo:
    """Shape and classes of the data; checks the data (raises DataError) before any training."""
    info = getattr(dm, "info", None)
    if isinstance(info, DataInfo):
        return info
    dm.prepare_data()
    dm.setup("fit")
    try:
        batch = next(iter(dm.train_dataloader()))
    except StopIteration:
        raise DataError(f"data.class_path: {type(dm).__name__}.train_dataloader() gives no batch") from None
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    num_classes = getattr(exp.task, "num_classes", None)
    names: tuple[str, ...] = ()
    if exp.task.target_kind == "values" and isinstance(batch, (tuple, list)):
        y = batch[1]
        names = tuple(f"y{i}" for i in range(y.shape[1] if y.ndim == 2 else 1))  # a user's own DataModule
    if isinstance(x, Mapping):  # named inputs (features and constituents)
        shapes = {str(k): tuple(v.shape[1:]) for k, v in x.items()}
        return DataInfo(
            in_shape=shapes.get("features", ()),
            num_classes=num_classes,
            target_names=names,
            input_shapes=shapes,
        )
    return DataInfo(in_shape=tuple(x.shape[1:]), num_classes=num_classes, target_names=names)


def _task_class(exp: Experiment) -> type[Task]:
    """The task class that ``task.kind`` names (the ``target`` of its spec)."""
    cls: type[Task] = import_object(exp.task.target, "task.kind")
    return cls


def _fill_in(cls: Any, known: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``known`` that ``cls``'s constructor takes by name."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return {}
    return {k: v for k, v in known.items() if k in params}


def build_task(exp: Experiment, info: DataInfo) -> pl.LightningModule:
    """The task (a LightningModule) with its model; a class_path LightningModule as it is."""
    spec = exp.model
    cls: Any = None
    if isinstance(spec, ClassPathSpec):
        cls = import_object(spec.class_path, "model.class_path")
        _concrete(cls, spec.class_path, "model.class_path", "model")
        if issubclass(cls, pl.LightningModule):
            return _construct(cls, dict(spec.init_args), "model.init_args", spec.class_path)  # type: ignore[no-any-return]

    _check_named_inputs(exp, info)
    task_cls = _task_class(exp)
    out_features, from_data = task_cls.model_outputs(exp.task, info)
    classes = from_data.get("num_classes")
    if isinstance(classes, int) and classes > MAX_CLASSES:
        raise ConfigError(
            f"task.num_classes: {classes} classes; labkit classifies into at most {MAX_CLASSES} "
            "(the class count sizes the model's output and the confusion matrix)"
        )
    if isinstance(spec, ClassPathSpec):
        known = task_cls.model_args(exp.task, info) | {
            "out_features": out_features,
            "num_classes": out_features,
        }
        kwargs = _fill_in(cls, known) | dict(spec.init_args)
        model = _construct(cls, kwargs, "model.init_args", spec.class_path)
        _check_trainable(model, spec.class_path)
    else:
        assert isinstance(spec, ComponentSpec)
        model_cls = import_object(spec.target, "model.name")
        try:
            model = model_cls(
                **task_cls.model_args(exp.task, info), out_features=out_features, **spec.options()
            )
        except LabkitError:  # already says what to fix (labkit errors are ValueErrors too)
            raise
        except ValueError as exc:  # e.g. a CNN given flat vectors
            raise ConfigError(f"model: {exc}") from None

    try:
        task = task_cls(model, exp.optimizer, **from_data, **exp.task.options())
    except LabkitError:
        raise
    except ValueError as exc:  # e.g. a single class
        raise ConfigError(f"task: {exc}") from None
    _check_monitors(exp, task)
    return task  # type: ignore[no-any-return]


#: the task kinds whose models may read named inputs (jet features and constituents)
_SET_TASKS = ("classification", "regression")


def _set_models() -> tuple[str, ...]:
    """The registered models that read named inputs (``reads_sets`` in their spec)."""
    return tuple(_spec_name(s) for s in MODEL_SPECS if getattr(s, "reads_sets", False))


def _spec_name(spec: type[Any]) -> str:
    return str(typing.get_args(spec.model_fields["name"].annotation)[0])


def _check_named_inputs(exp: Experiment, info: DataInfo) -> None:
    """Named inputs (``data.constituents``) need a set model and a task that feeds it; a set
    model needs them. Both before the model is built."""
    spec = exp.model
    if isinstance(spec, ClassPathSpec):
        return  # the user's own model: it takes input_shapes if it asks for them
    reads_sets = bool(getattr(type(spec), "reads_sets", False))
    name = getattr(spec, "name", "")
    if info.input_shapes and not reads_sets:
        if exp.task.kind not in _SET_TASKS:
            raise ConfigError(
                f"data.constituents: the {exp.task.kind} task cannot use constituents; they work with "
                f"task.kind {' or '.join(_SET_TASKS)} (remove data.constituents)"
            )
        raise ConfigError(
            f"model.name: {name!r} reads one array per event, but data.constituents gives named inputs "
            f"(features and constituents); choose a set model: {', '.join(_set_models())} "
            "(or remove data.constituents)"
        )
    if reads_sets and not info.input_shapes:
        raise ConfigError(
            f"model.name: {name!r} reads per-event sets, but the data give one array per event; name "
            "them in data.constituents, e.g. {tracks: {dataset: tracks, fields: [d0, z0], valid: valid, "
            "max: 40}}"
        )
    if reads_sets and exp.task.kind not in _SET_TASKS:
        raise ConfigError(
            f"model.name: {name!r} works with task.kind {' or '.join(_SET_TASKS)}, not {exp.task.kind}"
        )


def _check_trainable(model: Any, path: str) -> None:
    """A class_path model must have a parameter the optimizer can train (``torch.nn.Identity``
    has none, and the optimizer would refuse an empty parameter list once training starts)."""
    params = list(model.parameters()) if isinstance(model, nn.Module) else []
    if not any(p.requires_grad for p in params):
        frozen = f"{len(params)} parameters, all frozen (requires_grad=False)"
        what = frozen if params else "no parameters"
        raise RegistryError(
            f"model.class_path: {path} has no trainable parameters ({what}); expected a model "
            "with at least one parameter the optimizer can train"
        )


def _check_monitors(exp: Experiment, task: Any) -> None:
    """Metrics named in ``trainer``/``optimizer`` must be ones the task logs (before training)."""
    logged = getattr(task, "monitorable", None)
    if not logged:
        return
    wanted = {"trainer.checkpoint.monitor": exp.trainer.checkpoint.monitor}
    if exp.trainer.early_stopping is not None:
        wanted["trainer.early_stopping.monitor"] = exp.trainer.early_stopping.monitor
    if exp.optimizer.scheduler is not None and exp.optimizer.scheduler.name == "plateau":
        wanted["optimizer.scheduler.monitor"] = exp.optimizer.scheduler.monitor
    for field, metric in wanted.items():
        if metric not in logged:
            raise ConfigError(
                f"{field}: the {exp.task.kind} task logs no metric {metric!r}{did_you_mean(metric, logged)}; "
                f"choose one of: {', '.join(logged)}"
            )
