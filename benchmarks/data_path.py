"""labkit's batched data path against idiomatic plain Lightning, and ``trainer.threads: auto``
against fixed thread counts on a busy machine.

**Data path.** The same LightningModule (a 64-64 MLP, cross-entropy, Adam, validation accuracy
each epoch) is fitted on the same tabular events (``--events`` × 8 features, two classes, the
same train/val split) at batch 256, fed two ways, side by side in this process:

* ``lightning``: ``DataLoader(TensorDataset(x, y), batch_size=256, shuffle=True)`` (validation
  unshuffled), what a user writes by hand: one ``__getitem__`` per event, collated per batch;
* ``labkit``: labkit's own DataModule (an :class:`labkit.data.ArraySplitDataModule` over the same
  arrays): batches by index (a slice of a seeded permutation, one indexing operation per tensor).

Each fit runs ``--epochs`` epochs; the first epoch of every fit is a warm-up and is not counted.
``--rounds`` rounds run both variants in an alternating order, with ``--threads`` torch threads
(1 by default: the comparison is of the data path, and one thread is steadier on a busy
machine). The time of an epoch is its training part (from ``on_train_epoch_start`` to
``on_train_epoch_end``); the script prints the median per variant, the ratio labkit / lightning
(goal ≤ 0.6 on CPU) and each variant's final validation accuracy (the two must agree within
noise). With a GPU, the same again on it, labkit
with ``data.on_device: true`` (goal ≤ 0.3).

**Threads.** ``labkit.run`` of ``experiments/digits_mlp.yaml`` (``--thread-epochs`` epochs, no
early stopping, offline tracking) with ``trainer.threads`` ``auto`` and each fixed count in
{1, 2, all CPUs}, while two other CPU-bound processes run (``while True: pass``, stopped at the
end). All these fits run in one fresh process with ``OMP_WAIT_POLICY=PASSIVE`` (what the
``labkit`` command sets when the variable is unset), ``--thread-repeats`` rounds in an
alternating order (torch takes the inter-op count of the first fit only); the time is
``RunResult.fit_seconds``. It prints auto / the best fixed count (goal ≤ 1.2), and one fit of
``auto`` in a second process under OpenMP's default (active) wait policy for reference.

Run it from the repository root::

    .venv/bin/python benchmarks/data_path.py                     # ~4 minutes on 2 busy cores
    .venv/bin/python benchmarks/data_path.py --events 50000 --epochs 3 --skip-threads

Exit status 0 when every goal measured is met, 2 otherwise.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP, as labkit does

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from labkit.data import ArraySplitDataModule

ROOT = Path(__file__).resolve().parent.parent
BATCH = 256
warnings.filterwarnings("ignore", ".*does not have many workers.*")
warnings.filterwarnings("ignore", ".*LeafSpec.*")
warnings.filterwarnings("ignore", ".*srun.*")
for _name in ("lightning.pytorch", "lightning.fabric"):
    logging.getLogger(_name).setLevel(logging.WARNING)


# ----------------------------------------------------------------------------- the data path
def events(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` events of 8 standard-normal features; the class is the sign of a fixed linear
    combination plus a quadratic term and noise (about 90% separable)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    score = x @ np.linspace(1.0, -0.5, 8) + 0.5 * x[:, 0] * x[:, 1] + rng.normal(scale=0.5, size=n)
    return x, (score > 0).astype(np.int64)


class Events(ArraySplitDataModule):
    """labkit's path: its DataModule over the arrays in memory."""

    def __init__(self, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> None:
        super().__init__(batch_size=BATCH, val_fraction=0.1, test_fraction=0.1, seed=0, **kwargs)
        self.arrays = (x, y)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        return self.arrays


class Classifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
        self.correct, self.seen = 0, 0

    def training_step(self, batch: Any, index: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def on_validation_epoch_start(self) -> None:
        self.correct, self.seen = 0, 0

    def validation_step(self, batch: Any, index: int) -> None:
        x, y = batch
        self.correct += int((self.net(x).argmax(1) == y).sum())
        self.seen += len(y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class EpochTimer(pl.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.times.append(time.perf_counter() - self._start)


def fit(
    variant: str, x: np.ndarray, y: np.ndarray, epochs: int, accelerator: str
) -> tuple[list[float], float]:
    """Epoch times after the first, and the final validation accuracy."""
    pl.seed_everything(0, verbose=False)
    dm = Events(x, y, on_device=accelerator != "cpu")
    dm.setup()
    timer, module = EpochTimer(), Classifier()
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    if variant == "labkit":
        trainer.fit(module, datamodule=dm)
    else:
        train, val = (torch.from_numpy(dm.split_indices(s)) for s in ("train", "val"))
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        trainer.fit(
            module,
            DataLoader(TensorDataset(xt[train], yt[train]), batch_size=BATCH, shuffle=True),
            DataLoader(TensorDataset(xt[val], yt[val]), batch_size=BATCH),
        )
    return timer.times[1:], module.correct / max(1, module.seen)


def data_path(args: argparse.Namespace, accelerator: str, goal: float) -> bool:
    x, y = events(args.events)
    times: dict[str, list[float]] = {"lightning": [], "labkit": []}
    accuracy: dict[str, float] = {}
    for r in range(args.rounds):
        for variant in ("lightning", "labkit") if r % 2 == 0 else ("labkit", "lightning"):
            epoch_times, accuracy[variant] = fit(variant, x, y, args.epochs, accelerator)
            times[variant] += epoch_times
    median = {k: statistics.median(v) for k, v in times.items()}
    ratio = median["labkit"] / median["lightning"]
    fastest = min(times["labkit"]) / min(times["lightning"])
    print(
        f"data path on {accelerator}: {args.events} events x 8, batch {BATCH}, 64-64 MLP, "
        f"torch threads {torch.get_num_threads()}"
    )
    for variant, seconds in times.items():
        shown = " ".join(f"{t:.2f}" for t in seconds)
        print(
            f"  {variant:9s} epoch {median[variant]:.3f} s (median of {len(seconds)}: {shown}), "
            f"val acc {accuracy[variant]:.4f}"
        )
    met = ratio <= goal
    print(
        f"  labkit / lightning = {ratio:.2f} (medians; goal <= {goal}: {'met' if met else 'MISSED'}), "
        f"{fastest:.2f} (fastest epochs)"
    )
    same = abs(accuracy["labkit"] - accuracy["lightning"]) <= 0.01
    difference = accuracy["labkit"] - accuracy["lightning"]
    print(f"  val accuracy difference {difference:+.4f} ({'same within noise' if same else 'DIFFERENT'})")
    return met and same


# --------------------------------------------------------------------------------- threads
CHILD = """
import json, sys, tempfile, warnings
warnings.filterwarnings("ignore")
import torch
import labkit
from labkit.config import load_experiment
epochs, rounds, arms = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
with tempfile.TemporaryDirectory() as tmp:
    for r in range(rounds):
        for arm in arms if r % 2 == 0 else arms[::-1]:
            exp = load_experiment("experiments/digits_mlp.yaml", [
                f"trainer.max_epochs={epochs}", "trainer.early_stopping=null", f"trainer.threads={arm}",
                f"tracking.uri=sqlite:///{tmp}/mlflow.db", "tracking.mode=offline", f"runs_root={tmp}/runs"])
            result = labkit.run(exp, progress="none")
            print(json.dumps([arm, result.fit_seconds, torch.get_num_threads()]), flush=True)
"""


def child_fits(arms: list[str], epochs: int, rounds: int, policy: str) -> list[tuple[str, float, int]]:
    """Fits of digits_mlp in one fresh process (OMP_WAIT_POLICY ``policy``), ``rounds`` times
    each arm in an alternating order: (arm, fit seconds, torch threads)."""
    env = dict(os.environ, OMP_WAIT_POLICY=policy)
    env.pop("OMP_NUM_THREADS", None)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(epochs), str(rounds), *arms],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"the digits fits failed:\n{out.stderr[-2000:]}")
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("[")]
    return [(str(a), float(s), int(n)) for a, s, n in rows]


def threads(args: argparse.Namespace) -> bool:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    fixed = sorted({1, 2, cpus})
    arms = ["auto", *map(str, fixed)]
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.5)
        rows = child_fits(arms, args.thread_epochs, args.thread_repeats, "PASSIVE")
        active = child_fits(["auto"], args.thread_epochs, 1, "ACTIVE")[0]
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()
    fits = {arm: [s for a, s, _ in rows if a == arm] for arm in arms}
    resolved = next(n for a, _, n in rows if a == "auto")
    median = {a: statistics.median(v) for a, v in fits.items()}
    best = min(fixed, key=lambda n: median[str(n)])
    ratio = median["auto"] / median[str(best)]
    print(
        f"threads: digits_mlp, {args.thread_epochs} epochs, {cpus} CPUs, two CPU-bound processes "
        "running, OMP_WAIT_POLICY=PASSIVE, all fits in one process"
    )
    for arm in arms:
        label = f"auto ({resolved})" if arm == "auto" else arm
        shown = " ".join(f"{t:.2f}" for t in fits[arm])
        print(f"  threads {label:9s} fit {median[arm]:.2f} s (median of {len(fits[arm])}: {shown})")
    print(
        f"  reference: auto ({active[2]}) with OpenMP's default (active) wait policy: fit {active[1]:.2f} s"
    )
    met = ratio <= 1.2
    print(f"  auto / best fixed ({best}) = {ratio:.2f} (goal <= 1.2: {'met' if met else 'MISSED'})")
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit (the first is a warm-up)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads for the data-path fits (both alike)"
    )
    parser.add_argument("--thread-epochs", type=int, default=5)
    parser.add_argument("--thread-repeats", type=int, default=5)
    parser.add_argument("--skip-threads", action="store_true")
    args = parser.parse_args(argv)
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}"
    )
    torch.set_num_threads(args.threads)
    ok = data_path(args, "cpu", 0.6)
    if torch.cuda.is_available():
        ok &= data_path(args, "cuda", 0.3)
    else:
        print("data path on cuda: no GPU here, not measured")
    if not args.skip_threads:
        ok &= threads(args)
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
