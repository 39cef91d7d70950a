"""Jet tagging with constituents (experiments/jet_tagging.yaml, small): the set models train on
simulated jets with their tracks and beat the jet-level MLP; the test outputs keep the exact
likelihood ratio as a spectator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from labkit.runner import run

pytestmark = [pytest.mark.slow]

SMALL = ["data.events=4000", "trainer.max_epochs=4", "trainer.early_stopping=null", "data.batch_size=128"]


def test_deepsets_beats_the_jet_level_mlp(load: Callable[..., Any]) -> None:
    sets = run(load("jet_tagging", *SMALL), progress="none")
    mlp = run(
        load("jet_tagging", *SMALL, "model={name: mlp, hidden: [32, 32]}", "data.constituents={}"),
        progress="none",
    )
    m_sets, m_mlp = sets.metrics, mlp.metrics
    # the same test jets: the same references
    assert m_sets["np_auc"] == m_mlp["np_auc"] and m_sets["np_auc_jet_level"] == m_mlp["np_auc_jet_level"]
    assert m_sets["np_auc"] > m_sets["np_auc_jet_level"] + 0.1
    assert m_mlp["test_auc"] < m_mlp["np_auc_jet_level"] + 0.03  # nothing beats the optimum but noise
    assert m_sets["test_auc"] > m_mlp["test_auc"] + 0.08
    outputs = np.load(sets.run_dir / "test_outputs.npz")
    assert {"probs", "labels", "spectator.log_likelihood_ratio"} <= set(outputs.files)


def test_set_transformer_trains_on_the_tracks(load: Callable[..., Any]) -> None:
    exp = load(
        "jet_tagging",
        "data.events=600",
        "trainer.max_epochs=1",
        "model={name: set_transformer, dim: 16, heads: 2, layers: 1, feedforward: 32}",
    )
    result = run(exp, progress="none")
    assert np.isfinite(result.metrics["test_auc"]) and "np_auc" in result.metrics
    # predict scores the test jets from their named inputs (features, tracks, tracks_valid)
    from labkit.errors import LabkitError
    from labkit.runner import export_run, load_trained, predict

    trained = load_trained(str(result.run_dir))
    summary = predict(trained, out=result.run_dir / "scores.h5")
    assert summary.events == len(trained.datamodule.split_indices("test"))  # type: ignore[operator]
    assert {"p_light", "p_b", "truth_class"} <= set(summary.columns)
    # export writes ONNX with one input per name; the masked attention exports and checks
    done = export_run(str(result.run_dir), dynamic_batch=True, events=40, batch_size=16, log=False)
    assert done.passed and [p.name for p in done.files] == ["model.onnx", "model.json"]
    with pytest.raises(LabkitError, match=r"exported to ONNX only"):
        export_run(str(result.run_dir), format="torchscript", log=False)
