"""``labkit predict`` on runs trained for one epoch (calo_pid, calo_energy, dijet_anomaly,
tracks_seg, tiny): one row per event, named columns, scores equal to the model's own (the test
step's inputs, the same normalisation), read back with h5py, uproot and pyarrow; a 2 000 000-event
file in chunks with bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import typer
import uproot
from typer.testing import CliRunner

from labkit import sim
from labkit.cli._predict import predict as predict_command
from labkit.config import load_experiment
from labkit.errors import LabkitError
from labkit.runner import RunResult, TrainedRun, load_trained, predict, run
from tests.conftest import EXPERIMENTS, REPO

pytestmark = [pytest.mark.slow]

Train = Callable[..., RunResult]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("predict")


@pytest.fixture(scope="module")
def train(root: Path) -> Train:
    def _train(name: str, *overrides: str, path: Path | None = None) -> RunResult:
        base = [
            "trainer.max_epochs=1",
            "trainer.early_stopping=null",
            *([f"data.cache_dir={root / 'cache'}"] if path is None and name != "digits_mlp" else []),
            f"tracking.uri=sqlite:///{root / 'mlflow.db'}",
            f"runs_root={root / 'runs'}",
        ]
        exp = load_experiment(path or EXPERIMENTS / f"{name}.yaml", [*base, *overrides], cwd=root)
        return run(exp, progress="none")

    return _train


def cli(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    app.command()(predict_command)
    app.command("other")(lambda: None)  # two commands: typer keeps the command's name
    result = CliRunner().invoke(app, ["predict", *args])
    return result.exit_code, result.output


def read(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".h5":
        with h5py.File(path, "r") as f:
            return {k: f[k][()] for k in f}
    if path.suffix == ".root":
        with uproot.open(path) as f:
            return dict(f["predictions"].arrays(library="np"))
    table = pq.read_table(path)
    return {k: table.column(k).to_numpy() for k in table.column_names}


def loader_outputs(trained: TrainedRun, fn: Callable[[torch.Tensor], torch.Tensor]) -> np.ndarray:
    """What the model gives on the test loader (the test step's inputs), in file order."""
    dm = trained.datamodule
    with torch.no_grad():
        out = torch.cat([fn(batch[0]) for batch in dm.test_dataloader()]).double().numpy()
    return out[np.argsort(dm.split_indices("test"))]  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def calo_pid(train: Train) -> RunResult:
    return train("calo_pid", "data.events=400", "model.hidden=[16]")


@pytest.mark.parametrize("suffix", [".h5", ".root", ".parquet"])
def test_calo_pid_on_a_new_showers_file(calo_pid: RunResult, root: Path, tmp_path: Path, suffix: str) -> None:
    showers = sim.simulate("calo", 120, seed=11, particle="mixed", energy_range=(1.0, 100.0), layers=6)
    data = showers.write(tmp_path / "showers.h5")
    out = tmp_path / f"s{suffix}"
    code, output = cli(str(calo_pid.run_id), "--data", str(data), "--spectators", "incident_energy",
                       "-o", str(out), "--runs-root", str(root / "runs"))  # fmt: skip
    assert code == 0, output
    assert f"labkit: wrote 120 events (all of {data}) to {out}" in output
    found = read(out)
    assert list(found) == [
        "event", "p_electron", "p_pion", "truth_particle", "truth_class", "incident_energy"
    ]  # fmt: skip
    trained = load_trained(str(calo_pid.run_dir))
    x = torch.from_numpy(trained.standardise(showers.showers))
    with torch.no_grad():
        p = torch.softmax(trained.task.model(x), dim=1).numpy()  # type: ignore[operator]
    np.testing.assert_allclose(found["p_electron"], p[:, 0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(found["p_pion"], p[:, 1], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(found["event"], np.arange(120))
    np.testing.assert_array_equal(found["truth_particle"], showers.particle)
    np.testing.assert_array_equal(found["truth_class"], (showers.particle == 211).astype(int))
    np.testing.assert_array_equal(found["incident_energy"], showers.incident_energy)


def test_calo_pid_test_split_equals_the_test_step(calo_pid: RunResult, tmp_path: Path) -> None:
    trained = load_trained(str(calo_pid.run_dir))
    done = predict(trained, out=tmp_path / "own.h5")
    found = read(done.path)
    test = np.sort(trained.datamodule.split_indices("test"))  # type: ignore[attr-defined]
    assert done.split == "test" and done.events == len(test) == 60
    np.testing.assert_array_equal(found["event"], test)
    p = loader_outputs(trained, lambda x: torch.softmax(trained.task.model(x), dim=1))  # type: ignore[operator]
    np.testing.assert_allclose(found["p_pion"], p[:, 1], rtol=1e-5, atol=1e-7)
    every = predict(trained, out=tmp_path / "all.parquet", split="all")
    assert every.events == 400 and every.split == "all"
    with h5py.File(done.path) as f:
        assert f.attrs["labkit_run_id"] == calo_pid.run_id
        assert f.attrs["labkit_run_key"] == calo_pid.run_key


def test_cli_refusals_are_one_line(calo_pid: RunResult, root: Path, tmp_path: Path) -> None:
    runs = str(root / "runs")
    code, output = cli(
        str(calo_pid.run_id), "-o", str(tmp_path / "s.h5"), "--spectators", "pt", "--runs-root", runs
    )
    assert code == 2 and output.count("\n") == 1, output
    assert "no 'pt' (--spectators); the file holds:" in output and "incident_energy" in output
    code, output = cli("nope", "-o", str(tmp_path / "s.h5"), "--runs-root", runs)
    assert code == 2 and "no run 'nope'" in output
    code, output = cli(str(calo_pid.run_id), "--runs-root", runs)
    assert code == 2 and "-o OUT.h5 (or .root, .parquet) is required" in output


def test_calo_energy_in_physical_units(train: Train, tmp_path: Path) -> None:
    result = train("calo_energy", "data.events=300", "model.hidden=[16]")
    trained = load_trained(str(result.run_dir))
    done = predict(trained, out=tmp_path / "e.parquet")
    found = read(done.path)
    assert list(found) == ["event", "pred_incident_energy", "truth_incident_energy"]
    task = trained.task
    pred = loader_outputs(trained, lambda x: task.physical(task.model(x)))  # type: ignore[operator]
    np.testing.assert_allclose(found["pred_incident_energy"], pred[:, 0], rtol=1e-5)
    truth = [batch[1] for batch in trained.datamodule.test_dataloader()]
    order = np.argsort(trained.datamodule.split_indices("test"))  # type: ignore[attr-defined]
    physical = task.physical(torch.cat(truth).reshape(-1, 1)).double().numpy()[order, 0]  # type: ignore[operator]
    np.testing.assert_allclose(found["truth_incident_energy"], physical, rtol=1e-5)


def test_dijet_anomaly_score_to_root(train: Train, tmp_path: Path) -> None:
    result = train("dijet_anomaly", "data.events=1500", "model.hidden=[8]", "data.batch_size=256")
    trained = load_trained(str(result.run_dir))
    done = predict(trained, out=tmp_path / "a.root")
    found = read(done.path)
    assert list(found) == ["event", "anomaly_score", "signal_region", "truth_is_signal"]
    score = loader_outputs(trained, trained.task)
    np.testing.assert_allclose(found["anomaly_score"], score, rtol=1e-5, atol=1e-7)


def test_tracks_segmentation_masks_as_a_dataset(train: Train, tmp_path: Path) -> None:
    result = train("tracks_seg", "data.events=40", "data.parameters.size=16", "model.channels=[4,8]",
                   "data.batch_size=8")  # fmt: skip
    trained = load_trained(str(result.run_dir))
    done = predict(trained, out=tmp_path / "m.h5")
    found = read(done.path)
    assert list(found) == ["event", "mask", "truth_labels"]
    mask = loader_outputs(trained, lambda x: trained.task.model(x).argmax(dim=1))  # type: ignore[operator]
    assert found["mask"].shape == (6, 16, 16) and found["mask"].dtype == np.uint8
    np.testing.assert_array_equal(found["mask"], mask)
    with pytest.raises(
        LabkitError, match=r"a segmentation run writes one mask per event, .* use an \.h5 output"
    ):
        predict(trained, out=tmp_path / "m.root")


TINY = """\
name: tiny
task: {kind: classification}
model: {name: mlp, hidden: [8]}
data: {name: file, path: small.h5, inputs: features, targets: label, batch_size: 64}
trainer: {accelerator: cpu}
"""
BIG_EVENTS, FEATURES = 2_000_000, 64


def test_two_million_events_in_chunks_with_bounded_memory(train: Train, root: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(root / "small.h5", "w") as f:
        f["features"] = rng.normal(size=(300, FEATURES)).astype(np.float32)
        f["label"] = rng.integers(0, 2, 300)
    (root / "tiny.yaml").write_text(TINY)
    result = train("tiny", path=root / "tiny.yaml")
    big = tmp_path / "big.h5"
    with h5py.File(big, "w") as f:
        features = f.create_dataset("features", (BIG_EVENTS, FEATURES), dtype=np.float32)
        label = f.create_dataset("label", (BIG_EVENTS,), dtype=np.int64)
        pt = f.create_dataset("pt", (BIG_EVENTS,), dtype=np.float64)
        for lo in range(0, BIG_EVENTS, 250_000):
            features[lo : lo + 250_000] = rng.random((250_000, FEATURES), dtype=np.float32)
            label[lo : lo + 250_000] = rng.integers(0, 2, 250_000)
            pt[lo : lo + 250_000] = rng.uniform(20, 200, 250_000)
    # peak RSS during predict over the RSS before it: the kernel's high-water mark, reset first
    # (/proc/self/clear_refs), and a thread sampling the RSS as a cross-check
    script = textwrap.dedent(f"""
        import gc, json, threading, time
        from pathlib import Path
        from labkit.runner import load_trained, predict

        def status(key):
            for line in open("/proc/self/status"):
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024  # MiB
        trained = load_trained({str(result.run_dir)!r})
        gc.collect()
        before = status("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        sampled, done_flag = [before], threading.Event()
        def sample():
            while not done_flag.is_set():
                sampled.append(status("VmRSS"))
                time.sleep(0.005)
        thread = threading.Thread(target=sample)
        thread.start()
        done = predict(trained, data=Path({str(big)!r}), out=Path({str(tmp_path / "big_scores.h5")!r}),
                       spectators=["pt"], batch_size=4096)
        done_flag.set()
        thread.join()
        peak = max(status("VmHWM"), max(sampled))
        print(json.dumps({{"events": done.events, "rss_before_mb": before, "growth_mb": peak - before,
                          "sampled_growth_mb": max(sampled) - before, "seconds": done.seconds}}))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"2 000 000 events x {FEATURES} features ({big.stat().st_size / 2**20:.0f} MiB): {measured}")
    assert measured["events"] == BIG_EVENTS
    assert measured["growth_mb"] < 1024  # the bound
    assert measured["growth_mb"] < big.stat().st_size / 2**20 / 2  # well under the input: streamed
    with h5py.File(tmp_path / "big_scores.h5") as f:
        assert f["p_1"].shape == (BIG_EVENTS,)
        np.testing.assert_array_equal(f["event"][-3:], np.arange(BIG_EVENTS - 3, BIG_EVENTS))


OWN = """
import torch
from torch import nn
import lightning.pytorch as pl


class OwnScorer(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_acc", (self.net(x).argmax(1) == y).float().mean())

    def predict_step(self, x, batch_idx):
        p = torch.softmax(self.net(x), dim=1)
        return {"p_seven": p[:, 7], "top": p.argmax(dim=1)}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)
"""


def test_a_users_own_lightning_module_through_predict_step(
    train: Train, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "own_predict_models.py").write_text(OWN)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = train("digits_mlp", "model={class_path: own_predict_models.OwnScorer}", "seed=2")
    trained = load_trained(str(result.run_dir))
    done = predict(trained, out=tmp_path / "own.parquet")
    found = read(done.path)
    assert list(found) == ["event", "p_seven", "top", "truth_y", "truth_class"]
    module = trained.task
    p = loader_outputs(trained, lambda x: module.predict_step(x, 0)["p_seven"])  # type: ignore[operator]
    np.testing.assert_allclose(found["p_seven"], p, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(found["truth_y"], found["truth_class"])  # digits: labels 0..9
    sys.modules.pop("own_predict_models", None)
