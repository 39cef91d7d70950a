"""A file shaped like an ATLAS flavour-tagging dump (compound ``jets`` and ``tracks`` with a
``valid`` flag, written here) trains with the jet features alone (from the file's own /train and
/test groups) and with the constituents (from a glob over 3 such files)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.unit.data.test_compound import ftag_file

TRACKS = {"dataset": "tracks", "fields": ["d0", "z0", "pt_frac", "deta", "dphi"], "valid": "valid", "max": 20}


def run(tmp_path: Path, name: str, model: dict[str, Any], data: dict[str, Any]) -> str:
    exp = {
        "name": name,
        "task": {"kind": "classification"},
        "model": model,
        "data": {"name": "file", "targets": "jets.flavour", "labels": {0: "light", 1: "b"}, **data},
        "trainer": {"max_epochs": 1, "accelerator": "cpu"},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(exp))
    out = subprocess.run(
        [sys.executable, "-m", "labkit", "run", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "test_auc" in out.stdout, out.stdout
    return out.stdout + out.stderr


def test_jet_features_from_the_files_own_split(tmp_path: Path) -> None:
    path = ftag_file(tmp_path / "ftag.h5", n=400, group="train")
    ftag_file(path, n=100, seed=1, group="test")
    given = {"path": "ftag.h5", "splits": {"train": "train", "test": "test"}, "inputs": "jets"}
    run(tmp_path, "jets_mlp", {"name": "mlp", "hidden": [16]}, given)


def test_constituents_from_a_glob_over_three_files(tmp_path: Path) -> None:
    for i in range(3):
        ftag_file(tmp_path / f"run_{i}.h5", n=200, seed=i)
    data = {"path": "run_*.h5", "inputs": ["jets.pt", "jets.eta"], "constituents": {"tracks": TRACKS}}
    run(tmp_path, "jets_sets", {"name": "deepsets", "phi": [16], "rho": [16]}, data)


def test_staged_files_are_read_from_local_disk_and_removed_at_the_end(tmp_path: Path) -> None:
    for i in range(2):
        ftag_file(tmp_path / f"run_{i}.h5", n=200, seed=i)
    stage = tmp_path / "node-local"
    data = {"path": "run_*.h5", "inputs": "jets", "stage": "node-local"}
    said = run(tmp_path, "jets_staged", {"name": "mlp", "hidden": [16]}, data)
    assert "staged run_0.h5" in said and "staged run_1.h5" in said, said
    assert stage.is_dir() and not any(stage.iterdir())  # the copies went when the run ended
