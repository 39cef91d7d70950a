"""What a run is given and what it gives back: the plain values :class:`RunSession` passes
between its steps and returns (no behaviour of the session itself)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from labkit.tracking import redact_uri

if TYPE_CHECKING:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import Callback

    from labkit.data import DataInfo
    from labkit.notify import Notifier
    from labkit.runner._preempt import InterruptWatch

__all__ = ["Built", "Fitted", "RunOptions", "RunResult"]


@dataclass(frozen=True)
class RunOptions:
    """What a caller such as the tuner adds to a run: plain values, no hooks into it."""

    tags: dict[str, str] = field(default_factory=dict)  #: extra tags when the run starts
    callbacks: Sequence[Callback] = ()  #: extra Lightning callbacks
    resume_from: Path | None = None  #: a checkpoint to continue training from
    parent_key: str | None = None  #: the run key of the run this one is a child of (a study's)
    failure_tags: Mapping[str, str] = field(default_factory=dict)  #: tags set when the run fails
    notifier: Notifier | None = None  #: who is told when the run ends (``notify``; built at the CLI)


@dataclass(frozen=True)
class RunResult:
    """What ``labkit run`` reports at the end."""

    run_id: str | None  #: None while the run is only in its spool (offline)
    run_key: str
    run_dir: Path
    tracking_uri: str
    experiment_id: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    fit_seconds: float = 0.0
    best_checkpoint: Path | None = None
    cost: dict[str, float] = field(default_factory=dict)  #: parameters, inference_ms...: not in metrics

    def how_to_open(self) -> list[str]:
        """Lines telling a user how to see this run in the MLflow UI."""
        if not self.run_id or not self.experiment_id:
            return [f"labkit sync {self.run_dir}  (uploads it), then open it in MLflow"]
        # the query selects the UI's "Model training" view (MLflow 3 opens on its GenAI view)
        page = f"#/experiments/{self.experiment_id}/runs/{self.run_id}?workflowType=machine_learning"
        uri = redact_uri(self.tracking_uri)
        if uri.startswith(("http://", "https://")):
            return [f"{uri.rstrip('/')}/{page}"]
        return [f"mlflow ui --backend-store-uri {uri}", f"then http://127.0.0.1:5000/{page}"]


@dataclass(frozen=True)
class Built:
    """The experiment's data and task, built and checked (:meth:`RunSession.build`)."""

    datamodule: pl.LightningDataModule
    task: pl.LightningModule
    info: DataInfo


@dataclass(frozen=True)
class Fitted:
    """A fitted task (:meth:`RunSession.fit`), ready to be tested and finished."""

    built: Built
    trainer: pl.Trainer
    watch: InterruptWatch
    fit_seconds: float
    best_checkpoint: Path | None
