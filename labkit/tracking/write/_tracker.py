"""The Tracker: the Lightning logger of a labkit run, on top of :class:`RunClient`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from labkit.tracking.write._client import RunClient

__all__ = ["Tracker"]


class Tracker(RunClient, Logger):
    """Logs one labkit run: Lightning calls :meth:`log_metrics` while training, which appends to
    the run's spool (one local transaction, no network); the run's lifecycle (start, resume,
    finish, fail, suspend) is :class:`RunClient`'s."""

    def __init__(self, uri: str, experiment: str, run_dir: str | Path, **options: Any) -> None:
        Logger.__init__(self)
        RunClient.__init__(self, uri, experiment, run_dir, **options)
        self._epoch_step: int | None = None

    # ------------------------------------------------------------------ Lightning Logger API
    @property
    def name(self) -> str:
        return self.experiment_name

    @property
    def version(self) -> str:
        return self.run_id or (self.run_key if self.spool else "")

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Ignored: labkit logs the whole resolved experiment as params in :meth:`start`."""

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        step = step or 0
        now = int(time.time() * 1000)
        floor = self._floor
        rows = []
        for key, value in metrics.items():
            if step <= floor.get(key, -1):  # logged before a requeue: the run already has it
                continue
            if key == "epoch":  # Lightning adds it to every call: keep one point per step
                if step == self._epoch_step:
                    continue
                self._epoch_step = step
            rows.append((key, float(value), step, now))
        self._spool().log_metric_rows(rows)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Lightning's end of fit/test: ship now; the run itself ends in finish()/fail()."""
        if self.spool is not None:
            self.flush()
