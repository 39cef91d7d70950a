"""Every shipped experiment runs (smoke settings), and a user's own files work by changing only
the experiment file; bad files end with exit 2 and a message, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from labkit.config import load_experiment
from labkit.runner import run
from tests.conftest import EXPERIMENTS, SMOKE, SMOKE_SIM

pytestmark = [pytest.mark.slow]

SHIPPED = sorted(EXPERIMENTS.glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_experiment_runs_with_smoke_settings(path: Path, tmp_path: Path, store: str) -> None:
    raw = yaml.safe_load(path.read_text())
    smoke = [*SMOKE, f"tracking.uri={store}", f"runs_root={tmp_path / 'runs'}"]
    if raw["data"]["name"] == "simulated":
        smoke += SMOKE_SIM
    if path.stem == "calo_surrogate":  # its judgement: 1000 showers a sample, not 20 000
        smoke += ["task.evaluation_showers=1000", "task.timing_repeats=1"]
    result = run(load_experiment(path, smoke, cwd=tmp_path), progress="none")
    assert result.metrics, "no test metrics"
    expected = {
        "grf_cosmo": {"test_rmse_amplitude", "crb_amplitude", "test_rmse_tilt", "crb_tilt"},
        "calo_pid": {"test_auc", "test_rejection_at_eff90"},
        "calo_energy": {"test_resolution_a_incident_energy", "test_resolution_b_incident_energy"},
        "tracks_seg": {"test_iou_track", "test_miou", "baseline_iou_track", "test_dice_track"},
        "dijet_anomaly": {"test_auc", "test_max_sic", "test_rejection_at_eff30", "np_max_sic"},
        "jet_tagging": {"test_auc", "test_rejection_at_eff90", "np_auc", "np_auc_jet_level"},
        "calo_surrogate": {
            "test_sep_power_etot_over_einc",
            "test_hl_classifier_auc",
            "test_ll_classifier_auc",
            "reference_hl_classifier_auc",
            "reference_ll_classifier_auc",
            "test_hl_gap",
            "test_ll_gap",
            "test_fpd",
            "test_kpd",
            "gen_ms_per_shower_b1",
            "gen_ms_per_shower_b10000",
            "sim_ms_per_shower",
        },
    }.get(path.stem, set())
    assert expected <= set(result.metrics)


def labkit(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def own_file_experiment(tmp_path: Path, data: dict[str, object], target: str = "energy") -> Path:
    exp = {
        "name": "my_showers",
        "task": {"kind": "regression", "resolution_fit": [target]},
        "model": {"name": "mlp", "hidden": [32]},
        "data": {
            "name": "file",
            "targets": [target],
            "log_targets": [target],
            "standardize": False,
            **data,
        },
        "trainer": {"max_epochs": 2, "accelerator": "cpu"},
    }
    path = tmp_path / "my_showers.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


@pytest.fixture(scope="module")
def showers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    from labkit import sim

    sample = sim.simulate("calo", 800, seed=2)
    arrays = sim.as_arrays(sample)
    return {"cells": arrays["showers"].reshape(800, -1), "energy": arrays["incident_energy"]}


def test_own_hdf5_and_root_files_need_only_the_experiment_file(
    tmp_path: Path, showers: dict[str, np.ndarray]
) -> None:
    import uproot

    with h5py.File(tmp_path / "mine.h5", "w") as f:
        f["calo/cells"] = showers["cells"]
        f["truth/energy"] = showers["energy"]
    h5_exp = own_file_experiment(tmp_path, {"path": "mine.h5", "inputs": "calo/cells"}, target="truth/energy")
    out = labkit(tmp_path, "run", str(h5_exp))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "test_resolution_a_truth/energy" in out.stdout

    with uproot.recreate(tmp_path / "mine.root") as f:
        f.mktree("showers", {"cells": ("f4", (showers["cells"].shape[1],)), "energy": "f8"})
        f["showers"].extend({"cells": showers["cells"], "energy": showers["energy"]})
    root_exp = own_file_experiment(tmp_path, {"path": "mine.root", "tree": "showers", "inputs": "cells"})
    out = labkit(tmp_path, "run", str(root_exp))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "test_rmse_energy" in out.stdout


def test_truncated_file_and_nan_exit_2_naming_file_and_key(
    tmp_path: Path, showers: dict[str, np.ndarray]
) -> None:
    with h5py.File(tmp_path / "full.h5", "w") as f:
        f["cells"] = showers["cells"]
        f["energy"] = showers["energy"]
    data = (tmp_path / "full.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 3])
    out = labkit(tmp_path, "run", str(own_file_experiment(tmp_path, {"path": "cut.h5", "inputs": "cells"})))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "cut.h5: not a readable HDF5 file" in out.stderr

    energy = showers["energy"].copy()
    energy[5] = np.nan
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f["cells"] = showers["cells"]
        f["energy"] = energy
    out = labkit(tmp_path, "run", str(own_file_experiment(tmp_path, {"path": "nan.h5", "inputs": "cells"})))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "nan.h5: 'energy' (data.targets) holds 1 NaN/inf values (first in event 5)" in out.stderr
