"""``labkit.runner.predict`` on a hand-built (untrained) run: the columns, the chunking, the three
output formats read back with h5py, uproot and pyarrow, and every refusal as one clear line."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import h5py
import lightning.pytorch as pl
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import uproot

from labkit.config import load_experiment
from labkit.data import DataInfo
from labkit.errors import DataError, LabkitError
from labkit.runner import TrainedRun, predict
from labkit.runner._build import build_task

N = 50
CONFIG = """\
name: tiny
seed: 1
task: {kind: %s}
model: {name: mlp, hidden: [4]}
data: {name: file, path: train.h5, inputs: [a, b, c], targets: %s, weights: w%s}
"""


def _trained(tmp_path: Path, kind: str = "classification", task: Any = None) -> TrainedRun:
    extra = ", labels: {11: e, 211: pi}" if kind == "classification" else ", log_targets: [energy]"
    targets = "label" if kind == "classification" else "energy"
    (tmp_path / "tiny.yaml").write_text(CONFIG % (kind, targets, extra))
    exp = load_experiment(tmp_path / "tiny.yaml", cwd=tmp_path)
    if kind == "classification":
        info = DataInfo(in_shape=(3,), num_classes=2, class_names=("e", "pi"), input_names=("a", "b", "c"))
    else:
        info = DataInfo(in_shape=(3,), target_names=("energy",), target_scaling=((1.5, 0.5, True),))
    torch.manual_seed(0)
    task = task if task is not None else build_task(exp, info)
    return TrainedRun(
        run_dir=tmp_path,
        experiment=exp,
        task=task.eval(),
        info=info,
        datamodule=None,  # type: ignore[arg-type]  # never used with --data
        checkpoint=tmp_path / "best.ckpt",
        state={"run_key": "key1", "mlflow_run_id": "run1", "git_commit": "c0ffee"},
        input_mean=np.array([1.0, 2.0, 3.0], np.float32),
        input_std=np.array([2.0, 1.0, 0.5], np.float32),
    )


def _columns() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "a": rng.normal(size=N),
        "b": rng.normal(size=N).astype(np.float32),
        "c": rng.normal(size=N),
        "label": np.where(rng.random(N) < 0.5, 11, 211),
        "energy": rng.uniform(1, 10, N),
        "w": rng.uniform(0.5, 2, N),
        "pt": rng.uniform(20, 200, N),
    }


def _write(path: Path, columns: dict[str, np.ndarray]) -> Path:
    if path.suffix == ".h5":
        with h5py.File(path, "w") as f:
            for k, v in columns.items():
                f[k] = v
    elif path.suffix == ".root":
        with uproot.recreate(path) as f:
            f["events"] = columns
    else:
        pq.write_table(pa.table(columns), path, row_group_size=16)
    return path


def _read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    if path.suffix == ".h5":
        with h5py.File(path, "r") as f:
            return {k: f[k][()] for k in f}, {k: str(v) for k, v in f.attrs.items()}
    if path.suffix == ".root":
        with uproot.open(path) as f:
            return f["predictions"].arrays(library="np"), json.loads(str(f["labkit_metadata"]))
    table = pq.read_table(path)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return {k: table.column(k).to_numpy() for k in table.column_names}, meta


def _expected(trained: TrainedRun, columns: dict[str, np.ndarray]) -> np.ndarray:
    x = np.stack([columns["a"], columns["b"].astype(np.float64), columns["c"]], axis=1).astype(np.float32)
    z = (x - trained.input_mean) / trained.input_std
    with torch.no_grad():
        return torch.softmax(trained.task.model(torch.from_numpy(z)), dim=1).numpy()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("source", "out"), [(".h5", ".h5"), (".root", ".root"), (".parquet", ".parquet"), (".h5", ".root")]
)
def test_one_row_per_event_with_named_outputs_truth_weights_and_spectators(
    tmp_path: Path, source: str, out: str
) -> None:
    trained = _trained(tmp_path)
    columns = _columns()
    data = _write(tmp_path / f"new{source}", columns)
    done = predict(trained, out=tmp_path / f"scores{out}", data=data, spectators=["pt"], chunk_events=7)
    assert done.events == N and done.split == "all"
    found, meta = _read(done.path)
    assert list(found) == ["event", "p_e", "p_pi", "truth_label", "truth_class", "weight", "pt"]
    np.testing.assert_array_equal(found["event"], np.arange(N))
    p = _expected(trained, columns)
    np.testing.assert_allclose(found["p_e"], p[:, 0], rtol=1e-6)
    np.testing.assert_allclose(found["p_pi"], p[:, 1], rtol=1e-6)
    np.testing.assert_array_equal(found["truth_label"], columns["label"])
    np.testing.assert_array_equal(found["truth_class"], (columns["label"] == 211).astype(int))
    np.testing.assert_array_equal(found["weight"], columns["w"])
    np.testing.assert_array_equal(found["pt"], columns["pt"])
    assert meta["labkit_run_id"] == "run1" and meta["labkit_run_key"] == "key1"
    assert meta["labkit_git_commit"] == "c0ffee" and meta["labkit_version"]
    assert json.loads(meta["labkit_input_names"]) == ["a", "b", "c"]
    assert not list(tmp_path.glob(".scores*"))  # no temporary file left


def test_chunks_do_not_change_the_rows(tmp_path: Path) -> None:
    trained = _trained(tmp_path)
    data = _write(tmp_path / "new.h5", _columns())
    one = predict(trained, out=tmp_path / "one.h5", data=data, batch_size=3)
    many = predict(trained, out=tmp_path / "many.h5", data=data, chunk_events=4, batch_size=64)
    a, _ = _read(one.path)
    b, _ = _read(many.path)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-6)


def test_regression_targets_come_back_in_physical_units(tmp_path: Path) -> None:
    trained = _trained(tmp_path, "regression")
    columns = _columns()
    columns.pop("label")
    done = predict(trained, out=tmp_path / "e.parquet", data=_write(tmp_path / "new.h5", columns))
    found, _ = _read(done.path)
    assert list(found) == ["event", "pred_energy", "truth_energy", "weight"]
    x = np.stack([columns["a"], columns["b"].astype(np.float64), columns["c"]], axis=1).astype(np.float32)
    with torch.no_grad():
        z = trained.task.model(torch.from_numpy(trained.standardise(x)))[:, 0].double().numpy()  # type: ignore[operator]
    np.testing.assert_allclose(found["pred_energy"], np.exp(z * 0.5 + 1.5), rtol=1e-5)
    np.testing.assert_array_equal(found["truth_energy"], columns["energy"])


class Named(pl.LightningModule):
    """A user's own module: predict_step gives a dict of named tensors."""

    def __init__(self, bad: bool = False) -> None:
        super().__init__()
        self.net = torch.nn.Linear(3, 2)
        self.bad = bad

    def predict_step(self, x: torch.Tensor, batch_idx: int) -> dict[str, torch.Tensor]:
        out = self.net(x)
        return {"score": out[:1, 0] if self.bad else out[:, 0], "pair": out}


def test_a_user_module_writes_what_predict_step_names(tmp_path: Path) -> None:
    trained = _trained(tmp_path, task=Named())
    columns = _columns()
    done = predict(trained, out=tmp_path / "u.h5", data=_write(tmp_path / "new.h5", columns))
    found, _ = _read(done.path)
    assert list(found)[:4] == ["event", "score", "pair_0", "pair_1"]
    x = trained.standardise(np.stack([columns["a"], columns["b"].astype(np.float64), columns["c"]], axis=1))
    with torch.no_grad():
        expected = trained.task.net(torch.from_numpy(x)).numpy()  # type: ignore[operator]
    np.testing.assert_allclose(found["score"], expected[:, 0], rtol=1e-6)
    np.testing.assert_allclose(found["pair_1"], expected[:, 1], rtol=1e-6)
    from tests.user_models import OwnTask

    with pytest.raises(
        LabkitError, match=r"OwnTask defines neither predict_step nor forward: labkit predict"
    ):
        predict(_trained(tmp_path, task=OwnTask()), out=tmp_path / "v.h5", data=tmp_path / "new.h5")
    bad = _trained(tmp_path, task=Named(bad=True))
    with pytest.raises(LabkitError, match=r"Named\.predict_step gave 'score' of shape \(1,\) for 50 events"):
        predict(bad, out=tmp_path / "v.h5", data=tmp_path / "new.h5")


def test_refusals_are_one_line(tmp_path: Path) -> None:
    trained = _trained(tmp_path)
    data = _write(tmp_path / "new.h5", _columns())
    with pytest.raises(
        DataError, match=r"new\.h5: no 'eta' \(--spectators\); the file holds: a, b, c, energy"
    ):
        predict(trained, out=tmp_path / "o.h5", data=data, spectators=["eta"])
    with pytest.raises(DataError, match=r"'p_e' would overwrite the output column"):
        _write(tmp_path / "clash.h5", _columns() | {"p_e": np.zeros(N)})
        predict(trained, out=tmp_path / "o.h5", data=tmp_path / "clash.h5", spectators=["p_e"])
    with pytest.raises(LabkitError, match=r"-o .*o\.csv: write predictions to \.h5 \(HDF5\), \.root"):
        predict(trained, out=tmp_path / "o.csv", data=data)
    with pytest.raises(LabkitError, match=r"--split test picks the run's own test events; a --data file"):
        predict(trained, out=tmp_path / "o.h5", data=data, split="test")
    with pytest.raises(LabkitError, match=r"--split: no split 'val'; choose one of: test, all"):
        predict(trained, out=tmp_path / "o.h5", data=data, split="val")
    columns = _columns()
    columns.pop("b")
    with pytest.raises(DataError, match=r"no 'b' \(data.inputs\); the file holds: a, c, energy, label"):
        predict(trained, out=tmp_path / "o.h5", data=_write(tmp_path / "nob.h5", columns))
    surrogate = SimpleNamespace(
        experiment=SimpleNamespace(task=SimpleNamespace(kind="surrogate")), run_dir=tmp_path
    )
    with pytest.raises(LabkitError, match=r"trained a surrogate, .* use labkit generate RUN"):
        predict(surrogate, out=tmp_path / "o.h5")  # type: ignore[arg-type]
    assert not (tmp_path / "o.h5").exists()
