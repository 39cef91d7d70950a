"""A weighted run end to end: a file with a weights column (``data.weights``), one epoch of a tiny
classifier; the logged test metrics are the weighted functional twins on the run's own test
predictions (and differ from the unweighted ones)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from labkit.config import load_experiment
from labkit.runner import load_trained, run
from labkit.tasks._functional import accuracy, rejection_at_efficiency, roc_auc
from tests.conftest import REPO

pytestmark = [pytest.mark.slow]

CONFIG = """\
name: weighted
seed: 2
task: {kind: classification}
model: {name: mlp, hidden: [8]}
data:
  name: file
  path: events.h5
  inputs: features
  targets: label
  weights: weight
  labels: {0: background, 1: signal}
  batch_size: 64
trainer: {max_epochs: 1, accelerator: cpu}
"""


def test_weighted_run_logs_the_weighted_twins(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    label = (rng.random(400) < 0.5).astype(np.int64)
    features = rng.normal(0.0, 1.0, (400, 4)) + 0.7 * label[:, None]
    # weights that matter: heavy events where the classes overlap least on the second feature
    weight = np.where(features[:, 1] > 0.5, 4.0, 0.25)
    with h5py.File(tmp_path / "events.h5", "w") as f:
        f["features"] = features.astype(np.float32)
        f["label"] = label
        f["weight"] = weight
    (tmp_path / "weighted.yaml").write_text(CONFIG)
    exp = load_experiment(
        tmp_path / "weighted.yaml",
        [f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", f"runs_root={tmp_path / 'runs'}"],
        cwd=tmp_path,
    )
    result = run(exp, progress="none", source=REPO / "experiments" / "digits_mlp.yaml")
    loaded = load_trained(str(result.run_dir))
    scores, truth, weights = [], [], []
    with torch.no_grad():
        for x, y, w in loaded.datamodule.test_dataloader():
            scores.append(torch.softmax(loaded.task(x), dim=1)[:, 1].double().numpy())
            truth.append(y.numpy())
            weights.append(w.double().numpy())
    score, y_true, w_test = np.concatenate(scores), np.concatenate(truth), np.concatenate(weights)
    signal = y_true == 1
    auc = roc_auc(score, signal, weights=w_test)
    assert result.metrics["test_auc"] == pytest.approx(auc, rel=1e-5)
    assert abs(auc - roc_auc(score, signal)) > 1e-4  # the weights change the answer
    predicted = (score > 0.5).astype(np.int64)
    assert result.metrics["test_acc"] == pytest.approx(accuracy(predicted, y_true, weights=w_test), rel=1e-5)
    assert result.metrics["test_rejection_at_eff90"] == pytest.approx(
        rejection_at_efficiency(score, signal, 0.9, weights=w_test), rel=1e-5
    )
    assert (result.run_dir / "figures" / "confusion_matrix.png").is_file()
