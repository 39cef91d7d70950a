"""labkit export on set-model runs (data.constituents): ONNX with one input per name (features,
tracks, tracks_valid), the run's per-name standardisation folded in, checked against PyTorch
and labkit's test step."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from labkit.errors import LabkitError
from labkit.runner import export_run, run


def test_export_a_deepsets_run_to_onnx(load: Callable[..., Any]) -> None:
    exp = load(
        "jet_tagging",
        "data.events=600",
        "trainer.max_epochs=1",
        "data.standardize=true",
        "model={name: deepsets, phi: [16], rho: [16]}",
    )
    result = run(exp, progress="none")
    done = export_run(str(result.run_dir), dynamic_batch=True, events=50, batch_size=16, log=False)
    assert done.passed, [c.line() for c in done.checks]
    assert [p.name for p in done.files] == ["model.onnx", "model.json"]
    assert any("test step" in c.what for c in done.checks) and any(c.batch == 16 for c in done.checks)
    card = json.loads((done.out_dir / "model.json").read_text())
    inputs = {i["name"]: i for i in card["inputs"]}
    assert list(inputs) == ["features", "tracks", "tracks_valid"]
    assert inputs["tracks"]["shape"] == ["batch", 40, 5] and inputs["tracks_valid"]["dtype"] == "bool"
    assert set(card["normalisation"]["per_input"]) == {"features", "tracks"}
    assert len(card["normalisation"]["per_input"]["tracks"]["mean"]) == 5

    import onnxruntime as ort

    session = ort.InferenceSession(str(done.out_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["features", "tracks", "tracks_valid"]
    feed = {
        "features": np.zeros((3, 4), np.float32),
        "tracks": np.zeros((3, 40, 5), np.float32),
        "tracks_valid": np.zeros((3, 40), bool),
    }
    (probs,) = session.run(None, feed)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(LabkitError, match="ONNX only; use --format onnx"):
        export_run(str(result.run_dir), format="torchscript", log=False)
