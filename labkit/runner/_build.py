"""Turn the validated experiment into objects: datamodule, model, task."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import lightning.pytorch as pl
from torch import nn

from labkit.config import Experiment
from labkit.config._base import ClassPathSpec, ComponentSpec
from labkit.data._base import DataInfo
from labkit.errors import ConfigError, RegistryError, did_you_mean

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


def _construct(cls: Any, kwargs: dict[str, Any], field: str) -> Any:
    """``cls(**kwargs)``, after checking the arguments against its signature."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # no signature available (builtins): let the call decide
        return cls(**kwargs)
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        accepted = ", ".join(n for n in signature.parameters if n not in ("self", "args", "kwargs"))
        raise RegistryError(f"{field}: {cls.__name__}: {exc}; it accepts: {accepted or 'nothing'}") from None
    return cls(**kwargs)


def build_datamodule(exp: Experiment) -> pl.LightningDataModule:
    spec = exp.data
    if isinstance(spec, ClassPathSpec):
        cls = import_object(spec.class_path, "data.class_path")
        if not (isinstance(cls, type) and issubclass(cls, pl.LightningDataModule)):
            raise RegistryError(f"data.class_path: {spec.class_path} is not a LightningDataModule class")
        kwargs = _fill_in(cls, {"seed": exp.seed}) | dict(spec.init_args)
        return _construct(cls, kwargs, "data.init_args")  # type: ignore[no-any-return]
    assert isinstance(spec, ComponentSpec)
    cls = import_object(spec.target, "data.name")
    kind = getattr(type(exp.task), "target_kind", "labels")
    extras = {"extras": exp.task.extras()} if exp.task.extras() else {}
    return cls(**spec.options(), seed=exp.seed, target_kind=kind, **extras)  # type: ignore[no-any-return]


def data_info(dm: pl.LightningDataModule, exp: Experiment) -> DataInfo:
    """Shape and classes of the data; checks the data (raises DataError) before any training."""
    info = getattr(dm, "info", None)
    if isinstance(info, DataInfo):
        return info
    dm.prepare_data()
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    num_classes = getattr(exp.task, "num_classes", None)
    names: tuple[str, ...] = ()
    if getattr(type(exp.task), "target_kind", "labels") == "values" and isinstance(batch, (tuple, list)):
        y = batch[1]
        names = tuple(f"y{i}" for i in range(y.shape[1] if y.ndim == 2 else 1))  # a user's own DataModule
    return DataInfo(in_shape=tuple(x.shape[1:]), num_classes=num_classes, target_names=names)


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
    cls = import_object(spec.class_path, "model.class_path") if isinstance(spec, ClassPathSpec) else None
    if isinstance(spec, ClassPathSpec) and isinstance(cls, type) and issubclass(cls, pl.LightningModule):
        return _construct(cls, dict(spec.init_args), "model.init_args")  # type: ignore[no-any-return]

    out_features, from_data = exp.task.model_outputs(info)
    if isinstance(spec, ClassPathSpec):
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise RegistryError(
                f"model.class_path: {spec.class_path} is neither a torch.nn.Module nor a LightningModule"
            )
        known = exp.task.model_args(info) | {"out_features": out_features, "num_classes": out_features}
        model = _construct(cls, _fill_in(cls, known) | dict(spec.init_args), "model.init_args")
    else:
        assert isinstance(spec, ComponentSpec)
        model_cls = import_object(spec.target, "model.name")
        try:
            model = model_cls(**exp.task.model_args(info), out_features=out_features, **spec.options())
        except ValueError as exc:  # e.g. a CNN given flat vectors
            raise ConfigError(f"model: {exc}") from None

    task_cls = import_object(exp.task.target, "task.kind")
    task = task_cls(model, exp.optimizer, **from_data, **exp.task.options())
    _check_monitors(exp, task)
    return task  # type: ignore[no-any-return]


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
