"""``labkit check --data`` and ``labkit run`` check the data files before torch loads: a NaN at
event 1234 exits 2 naming the field, the file and the event, without importing torch or
Lightning, quickly, and ``labkit run`` leaves no run directory behind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import yaml

N = 5000

#: runs the command in-process and says what Python loaded
WRAPPER = """
import json, sys, time
start = time.perf_counter()
from typer.testing import CliRunner
from labkit.cli import app
result = CliRunner().invoke(app, sys.argv[1:])
print(json.dumps({
    "code": result.exit_code,
    "output": result.output,
    "seconds": time.perf_counter() - start,
    "loaded": sorted(m for m in ("torch", "lightning", "mlflow") if m in sys.modules),
}))
"""


def experiment(tmp_path: Path, nan_at: int | None) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 6)).astype(np.float32)
    if nan_at is not None:
        x[nan_at, 3] = np.nan
    with h5py.File(tmp_path / "events.h5", "w") as f:
        f["features"], f["label"] = x, (x[:, 0] > 0).astype(np.int64)
    exp = {
        "name": "nan_check",
        "task": {"kind": "classification"},
        "model": {"name": "mlp", "hidden": [8]},
        "data": {"name": "file", "path": "events.h5", "inputs": "features", "targets": "label"},
        "trainer": {"max_epochs": 1, "accelerator": "cpu"},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


def in_process(tmp_path: Path, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_a_nan_at_event_1234_is_found_before_torch_loads(tmp_path: Path) -> None:
    exp = experiment(tmp_path, nan_at=1234)
    result = in_process(tmp_path, "check", str(exp), "--data")
    assert result["code"] == 2, result
    assert "events.h5: 'features' (data.inputs) holds 1 NaN/inf values (first in event 1234)" in str(
        result["output"]
    )
    assert result["loaded"] == [], result["loaded"]

    start = time.perf_counter()  # the whole command, as a user runs it
    out = subprocess.run(
        [sys.executable, "-m", "labkit", "check", str(exp), "--data"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.perf_counter() - start
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "(first in event 1234)" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    print(f"labkit check --data on a NaN file: {seconds:.2f} s (in-process {result['seconds']:.2f} s)")
    assert seconds < 10


def test_labkit_run_stops_before_making_a_run_directory(tmp_path: Path) -> None:
    exp = experiment(tmp_path, nan_at=1234)
    result = in_process(tmp_path, "run", str(exp))
    assert result["code"] == 2, result
    assert "(first in event 1234)" in str(result["output"])
    assert result["loaded"] == [], result["loaded"]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_good_file_prints_a_summary(tmp_path: Path) -> None:
    exp = experiment(tmp_path, nan_at=None)
    result = in_process(tmp_path, "check", str(exp), "--data")
    assert result["code"] == 0, result
    output = str(result["output"])
    assert "# splits: train 3500, val 750, test 750 (seeded random split)" in output
    assert "# classes: 2 (0, 1)" in output
    yaml.safe_load(output)  # still the resolved experiment, the summary in comments
    assert result["loaded"] == []
