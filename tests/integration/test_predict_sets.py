"""labkit predict on set-model runs (data.constituents): the test split's probabilities are the
run's own test outputs, and a new file in the same layout is scored one row per event."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml

from labkit.config import load_experiment
from labkit.runner import load_trained, predict, run
from tests.unit.data.test_compound import ftag_file

TRACKS = {"dataset": "tracks", "fields": ["d0", "z0", "pt_frac", "deta", "dphi"], "valid": "valid", "max": 20}


def _same_as_test_outputs(run_dir: Path, out: Path) -> None:
    trained = load_trained(str(run_dir))
    summary = predict(trained, out=out, chunk_events=50, batch_size=16)  # several chunks
    test = trained.datamodule.split_indices("test")  # type: ignore[operator]
    assert summary.events == len(test) and summary.split == "test"
    probs = np.load(run_dir / "test_outputs.npz")["probs"]
    with h5py.File(out) as f:
        event = f["event"][()]
        got = np.stack([f[f"p_{name}"][()] for name in trained.info.class_names], axis=1)
        assert set(f) >= {"truth_class", "event"}
    np.testing.assert_array_equal(event, np.sort(test))
    np.testing.assert_allclose(got[np.searchsorted(event, test)], probs, atol=1e-5)


def test_predict_a_deepsets_run_on_the_jets_simulator(load: Callable[..., Any], tmp_path: Path) -> None:
    exp = load(
        "jet_tagging",
        "data.events=600",
        "trainer.max_epochs=1",
        "model={name: deepsets, phi: [16], rho: [16]}",
    )
    result = run(exp, progress="none")
    _same_as_test_outputs(result.run_dir, tmp_path / "test.h5")


def test_predict_a_deepsets_run_on_a_compound_file(tmp_path: Path, store: str) -> None:
    ftag_file(tmp_path / "ftag.h5", n=300)
    spec = {
        "name": "jets_sets",
        "task": {"kind": "classification"},
        "model": {"name": "deepsets", "phi": [16], "rho": [16]},
        "data": {
            "name": "file",
            "path": "ftag.h5",
            "inputs": ["jets.pt", "jets.eta"],
            "targets": "jets.flavour",
            "labels": {0: "light", 1: "b"},
            "constituents": {"tracks": TRACKS},
        },
        "trainer": {"max_epochs": 1, "accelerator": "cpu"},
        "tracking": {"uri": store},
        "runs_root": str(tmp_path / "runs"),
    }
    config = tmp_path / "jets_sets.yaml"
    config.write_text(yaml.safe_dump(spec))
    result = run(load_experiment(config, cwd=tmp_path), progress="none")
    _same_as_test_outputs(result.run_dir, tmp_path / "test.h5")

    other = ftag_file(tmp_path / "other.h5", n=123, seed=5)
    trained = load_trained(str(result.run_dir))
    summary = predict(trained, out=tmp_path / "other.parquet", data=other, spectators=["jets.mass"])
    assert summary.events == 123 and summary.split == "all"
    assert {"event", "p_light", "p_b", "truth_jets_flavour", "truth_class", "jets_mass"} <= set(
        summary.columns
    )
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "other.parquet")
    assert table.num_rows == 123
    np.testing.assert_allclose(table["p_light"].to_numpy() + table["p_b"].to_numpy(), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(table["event"].to_numpy(), np.arange(123))
    with pytest.raises(Exception, match="--split test"):
        predict(trained, out=tmp_path / "x.h5", data=other, split="test")
