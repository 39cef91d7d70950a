"""``labkit evaluate`` end to end, in a subprocess: three small calo files (one generated with a
distorted energy scale), the printed table and gaps, the files written with -o, the one-line
errors, and that no torch, Lightning or MLflow is loaded."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from labkit import sim
from tests.conftest import REPO

HEAVY = ("torch", "lightning", "pytorch_lightning", "mlflow", "torchmetrics", "onnx")

# Runs ``labkit evaluate ARGS`` and prints the heavy modules it loaded. Until ``evaluate`` is
# registered in labkit.cli (and its names exported by labkit.tasks) it runs the command through a
# one-command typer app of its own.
RUNNER = f"""
import atexit, sys
atexit.register(lambda: print("HEAVY=" + ",".join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr))
import labkit.tasks as tasks
if "evaluate_showers" not in tasks.__all__:
    from labkit.tasks import _shower_io, _showers
    for module in (_showers, _shower_io):
        for name in module.__all__:
            setattr(tasks, name, getattr(module, name))
from labkit.cli import app
if any(getattr(c.callback, "__name__", "") == "evaluate" for c in app.registered_commands):
    app(args=["evaluate", *sys.argv[1:]], prog_name="labkit")
else:
    import typer
    from labkit.cli._evaluate import evaluate
    one = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    one.command()(evaluate)
    one(args=sys.argv[1:], prog_name="labkit evaluate")
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    out = {}
    options = {"particle": "electron", "energy_range": (1.0, 100.0)}
    for name, seed in (("sim1", 101), ("sim2", 102), ("gen", 103)):
        sample = sim.simulate("calo", 600, seed=seed, **options)
        if name == "gen":  # a generator whose energy scale is 15 % off
            sample = dataclasses.replace(sample, showers=sample.showers * 1.15)
        out[name] = sim.write_h5(sample, root / f"{name}.h5")
    return out


def _evaluate(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUNNER, *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _heavy(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if line.startswith("HEAVY=")).removeprefix("HEAVY=")


def test_evaluate_prints_the_gaps_and_writes_its_files(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "eval"
    done = _evaluate(files["gen"], "--reference", files["sim1"], "--reference-2", files["sim2"], "-o", out)
    assert done.returncode == 0, done.stderr
    assert _heavy(done.stderr) == ""
    lines = {line.split("  ")[1].strip(): line.split() for line in done.stdout.splitlines()[2:-1]}
    hl = lines["high-level classifier AUC"]
    ll = lines["low-level classifier AUC"]
    assert float(hl[-3]) > 0.9 and abs(float(hl[-2]) - 0.5) < 0.1 and float(hl[-1]) > 0.35
    assert len(ll) == 6  # AUC, floor and gap (600 showers are too few for the cell classifier)
    assert "worst features (separation power): etot_over_einc" in done.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_generated"] == 600 and metrics["hl_gap"] == pytest.approx(float(hl[-1]), abs=1e-4)
    assert {"ll_gap", "fpd", "kpd", "reference_kpd", "sep_power_mean", "sep_power_eratio"} <= set(metrics)
    header = (out / "separation.csv").read_text().splitlines()[0]
    assert header.startswith("feature,separation_power,floor,sep_1-3GeV,")
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "separation_power.png" in pngs and "surrogate_hottest_cell.png" in pngs and len(pngs) == 9


def test_evaluate_without_low_level_or_floor(files: dict[str, Path]) -> None:
    done = _evaluate(files["sim2"], "--reference", files["sim1"], "--no-low-level", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert "low-level" not in done.stdout and "high-level classifier AUC" in done.stdout
    assert "matplotlib" not in _heavy(done.stderr)


def test_evaluate_errors_are_one_line(files: dict[str, Path], tmp_path: Path) -> None:
    done = _evaluate(tmp_path / "missing.h5", "--reference", files["sim1"])
    assert done.returncode == 2
    assert (
        done.stderr.splitlines()[0]
        == f"labkit: error: {tmp_path / 'missing.h5'}: no such file (give an HDF5 file in the calo layout)"
    )
    wrong = tmp_path / "wrong.h5"
    with h5py.File(wrong, "w") as f:
        f["images"] = [[1.0]]
    done = _evaluate(wrong, "--reference", files["sim1"])
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{wrong}: no dataset 'showers' (datasets: images)" in done.stderr.splitlines()[0]
    other = tmp_path / "other_grid.h5"
    sample = sim.simulate("calo", 20, seed=1, radial_edges=(0.0, 0.5, 1.0, 2.0))
    sim.write_h5(sample, other)
    done = _evaluate(other, "--reference", files["sim1"])
    assert done.returncode == 2 and "showers of shape" in done.stderr and str(other) in done.stderr


def test_an_output_that_cannot_be_made_fails_before_the_evaluation(
    files: dict[str, Path], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    done = _evaluate(files["gen"], "--reference", files["sim1"], "-o", blocker / "out")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (
        done.stderr.splitlines()[0]
        == f"labkit: error: -o {blocker / 'out'}: cannot make the directory (Not a directory)"
    )
    assert done.stdout == ""
