"""The regression task end to end on a file written here (real training runs). Its errors are in
tests/unit/tasks/test_regression.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from labkit.runner import run
from tests.unit.tasks.test_regression import experiment


def test_regression_logs_per_target_metrics_resolution_fit_and_figures(tmp_path: Path, store: str) -> None:
    result = run(experiment(tmp_path, store), progress="none")
    m = result.metrics
    for key in (
        "test_rmse",
        "test_rmse_energy",
        "test_bias_energy",
        "test_resolution_energy",
        "test_mae_energy",
    ):
        assert key in m
    # a linear sum is enough here: the network gets close to the 10 %/sqrt(E) it was built with
    assert 0.03 < m["test_resolution_a_energy"] < 0.2
    run_data = MlflowClient(store).get_run(result.run_id).data
    assert "val_rmse" in run_data.metrics and run_data.tags["labkit.data_sha256"]
    assert (result.run_dir / "figures" / "regression_energy.png").is_file()


@pytest.mark.parametrize("loss", ["mae", "gaussian_nll"])
def test_other_losses(tmp_path: Path, store: str, loss: str) -> None:
    result = run(
        experiment(tmp_path, store, f"task.loss={loss}", "trainer.max_epochs=2", "data.log_targets=[energy]"),
        progress="none",
    )
    assert np.isfinite(result.metrics["test_rmse_energy"])


def test_two_targets(tmp_path: Path, store: str) -> None:
    exp = experiment(
        tmp_path, store, "data.targets=[energy, angle]", "task.resolution_fit=[]", "trainer.max_epochs=1"
    )
    result = run(exp, progress="none")
    assert "test_rmse_angle" in result.metrics and "test_rmse_energy" in result.metrics
