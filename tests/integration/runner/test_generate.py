"""``labkit generate``: a trained surrogate's showers in the simulator's file layout, usable
wherever a ``labkit sim calo`` file is; clear errors for runs it cannot use."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from labkit import sim
from labkit.config import load_experiment
from labkit.data._files import read_arrays
from labkit.errors import LabkitError
from labkit.runner import RunResult, run
from labkit.runner._generate import find_run_dir, generate_showers, load_surrogate
from tests.conftest import EXPERIMENTS, SMOKE

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunResult, Path]:
    """A surrogate trained for one epoch on 400 showers (small, to keep the test fast)."""
    root = tmp_path_factory.mktemp("surrogate")
    overrides = [
        *SMOKE,
        "trainer.max_epochs=1",
        "data.events=400",
        "model.flow_transforms=2",
        "model.flow_hidden=[16]",
        "model.shape_hidden=[32]",
        "task.timing_repeats=1",
        "task.reference=false",
        "task.evaluation_showers=200",
        "task.low_level=false",
        f"data.cache_dir={root / 'cache'}",
        f"tracking.uri=sqlite:///{root / 'mlflow.db'}",
        f"runs_root={root / 'runs'}",
    ]
    result = run(load_experiment(EXPERIMENTS / "calo_surrogate.yaml", overrides, cwd=root), progress="none")
    return result, root


def labkit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_generated_file_has_the_datasets_and_attributes_of_a_simulator_file(
    trained: tuple[RunResult, Path], tmp_path: Path
) -> None:
    result, root = trained
    assert result.run_id
    out = labkit(
        "generate", result.run_id, "-n", "40", "-o", "gen.h5", "--seed", "3", "--runs-root", str(root / "runs"),
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "wrote 40 showers (1-100 GeV, seed 3)" in out.stdout
    simulated = sim.simulate("calo", 40, seed=3, particle="electron", energy_range=(1.0, 100.0)).write(
        tmp_path / "sim.h5"
    )
    with h5py.File(tmp_path / "gen.h5", "r") as g, h5py.File(simulated, "r") as s:
        assert list(g) == list(s) == ["incident_energy", "particle", "showers"]
        for key in s:
            assert g[key].shape == s[key].shape and g[key].dtype == s[key].dtype, key
        assert g["showers"].compression == s["showers"].compression == "gzip"
        for key, value in s.attrs.items():  # every attribute of the simulator's file, same grid and medium
            assert key in g.attrs, key
            if key not in ("labkit_version",):
                np.testing.assert_array_equal(g.attrs[key], value, err_msg=key)
        assert g.attrs["surrogate"] and g.attrs["surrogate_run_id"] == result.run_id
        assert g.attrs["surrogate_run_dir"] == str(result.run_dir.resolve())
        assert (
            g.attrs["surrogate_model"] == "two_stage" and g.attrs["surrogate_experiment"] == "calo_surrogate"
        )
    arrays = read_arrays(tmp_path / "gen.h5", ["showers", "incident_energy", "particle"])
    showers, energy = arrays["showers"], arrays["incident_energy"]
    assert np.all((energy >= 1.0) & (energy <= 100.0)) and np.all(arrays["particle"] == 11)
    threshold = 0.003  # the simulator's default: cells are 0 or at least the threshold, as simulated
    assert np.all((showers == 0) | (showers >= threshold * (1 - 1e-6))) and np.all(np.isfinite(showers))
    assert (showers > 0).any()


def test_runs_are_found_by_id_key_prefix_or_directory_and_seeds_reproduce(
    trained: tuple[RunResult, Path], tmp_path: Path
) -> None:
    result, root = trained
    runs = root / "runs"
    assert result.run_id
    for ref in (result.run_id, result.run_key, result.run_key[:8], str(result.run_dir)):
        assert find_run_dir(ref, runs) == result.run_dir
    loaded = load_surrogate(result.run_dir)
    a = generate_showers(loaded, 30, tmp_path / "a.h5", energy_range=(10.0, 10.0), seed=5)
    generate_showers(loaded, 30, tmp_path / "b.h5", energy_range=(10.0, 10.0), seed=5)
    assert not a.extrapolated and a.energy_range == (10.0, 10.0)
    with h5py.File(tmp_path / "a.h5") as fa, h5py.File(tmp_path / "b.h5") as fb:
        assert np.all(fa["incident_energy"][()] == 10.0)
        np.testing.assert_array_equal(fa["showers"][()], fb["showers"][()])
    assert generate_showers(loaded, 5, tmp_path / "c.h5", energy_range=(50.0, 200.0)).extrapolated


def test_an_experiment_trains_on_the_generated_file_and_bad_runs_exit_2(
    trained: tuple[RunResult, Path], tmp_path: Path
) -> None:
    result, _ = trained
    generate_showers(load_surrogate(result.run_dir), 300, tmp_path / "gen.h5", seed=1)
    experiment = {
        "name": "energy_from_copies",
        "task": {"kind": "regression"},
        "model": {"name": "mlp", "hidden": [16]},
        "data": {
            "name": "file",
            "path": "gen.h5",
            "inputs": "showers",
            "targets": ["incident_energy"],
            "log_targets": ["incident_energy"],
            "standardize": False,
        },
        "trainer": {"max_epochs": 1, "accelerator": "cpu"},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        "runs_root": str(tmp_path / "runs"),
    }
    path = tmp_path / "copies.yaml"
    path.write_text(yaml.safe_dump(experiment))
    regression = run(load_experiment(path, cwd=tmp_path), progress="none")
    assert np.isfinite(regression.metrics["test_rmse_incident_energy"])

    runs = str(tmp_path / "runs")
    out = labkit("generate", str(regression.run_dir), "-n", "5", "-o", "x.h5", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "trained a regression task, not a surrogate" in out.stderr
    out = labkit("generate", "0123456789abcdef", "-n", "5", "-o", "x.h5", "--runs-root", runs, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "no run '0123456789abcdef' under" in out.stderr
    out = labkit("generate", "x", "-o", "y.h5", "--energy", "5", "--energy-range", "1", "2", cwd=tmp_path)
    assert out.returncode == 2 and "give --energy E or --energy-range LO HI, not both" in out.stderr
    assert not (tmp_path / "x.h5").exists()
    shutil.copytree(regression.run_dir, tmp_path / "copied" / regression.run_dir.name)
    with pytest.raises(LabkitError, match="names 2 runs"):
        find_run_dir(regression.run_key[:8], tmp_path)
