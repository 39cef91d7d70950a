"""What labkit adds to the time of ``Trainer.fit``, against plain Lightning and raw PyTorch.

Three variants train the same model on the same data for the same number of epochs, with the
same seed, split, batch size, optimiser and thread count, and validate after every epoch:

* ``labkit``: ``labkit.run(exp, progress="none")`` on the experiment file (default
  ``experiments/digits_mlp.yaml`` with early stopping off); the time is ``RunResult.fit_seconds``
  (``trainer.fit`` only). It tracks into a temporary SQLite MLflow store and run directory.
* ``lightning``: the script a user would write without labkit: a small LightningModule with
  the same MLP and cross-entropy, logging ``train_loss`` per step and ``val_loss``/``val_acc``
  (torchmetrics ``MulticlassAccuracy``) per epoch; a Trainer with ``deterministic=True``, no
  progress bar, no model summary, no sanity validation, a ``ModelCheckpoint`` on ``val_loss``
  (best and last, as labkit keeps) and a ``CSVLogger`` (Lightning's own default when
  TensorBoard is not installed; ``--lightning-logger none`` for ``logger=False``). The time is
  ``trainer.fit`` only.
* ``raw``: a hand-written PyTorch loop: train, validate (loss and accuracy) every epoch and
  ``torch.save`` the best and the last weights and optimiser state.

All variants run in this process. One uncounted warm-up run of each comes first (imports,
the MLflow store's tables, lazy initialisation); then ``--repeat`` rounds, each running every
variant once, in an order rotated from round to round, so machine noise hits all alike.

It prints the median fit time per variant, the ratio labkit / plain Lightning (target at most
``--target``, 1.05 by default) and plain Lightning / raw PyTorch, and each variant's final
validation accuracy and loss as a check that all three trained the same thing.

Run it from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/fit_overhead.py                  # 20 epochs, 3 rounds
    .venv/bin/python benchmarks/fit_overhead.py --repeat 15        # steadier on a noisy machine
    .venv/bin/python benchmarks/fit_overhead.py --profile /tmp/prof  # also cProfile one fit each

Exit status: 0 when the target is met, 2 when labkit's overhead exceeds it, 1 when the
variants disagree on the final validation accuracy (the comparison is then not like for like).
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger
from mlflow.tracking import MlflowClient
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

import labkit
from labkit.config import load_experiment
from labkit.data._specs import DigitsSpec
from labkit.models._specs import MLPSpec
from labkit.tracking import Tracker

REPO = Path(__file__).resolve().parents[1]
DEFAULT_EXPERIMENT = REPO / "experiments" / "digits_mlp.yaml"
VARIANTS = ("labkit", "lightning", "raw")
LABELS = {"labkit": "labkit.run", "lightning": "plain Lightning", "raw": "raw PyTorch"}

# Lightning's advice about in-memory datasets; labkit silences the same in labkit.run.
_QUIET = (
    r".*does not have many workers.*",
    r".*The number of training batches .* is smaller than the logging interval.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
)


@dataclass(frozen=True)
class Setup:
    """What every variant trains: read from the labkit experiment, so all three agree."""

    experiment: Path
    overrides: tuple[str, ...]
    epochs: int
    seed: int
    batch_size: int
    val_fraction: float
    test_fraction: float
    hidden: tuple[int, ...]
    lr: float
    log_every_n_steps: int
    lightning_logger: str
    workdir: Path


@dataclass(frozen=True)
class Outcome:
    """One training run of one variant."""

    fit_seconds: float
    fit_cpu_seconds: float  #: CPU time of this process (all its threads) during the fit
    logger_seconds: float  #: time inside the logger's methods during the fit
    val_acc: float
    val_loss: float
    epochs: int
    total_seconds: float | None = None  #: labkit.run from start to end (set-up, test, upload)


#: What Lightning calls on a logger; the meter times these (during ``Trainer.fit`` only).
LOGGER_METHODS = ("log_metrics", "log_hyperparams", "log_graph", "save", "finalize", "after_save_checkpoint")


_MISSING = object()


@dataclass
class Meter:
    """Filled in by :func:`metered` for one fit."""

    in_fit: bool = False
    fit_cpu_seconds: float = 0.0
    logger_seconds: float = 0.0


@contextmanager
def metered(logger_cls: type | None) -> Iterator[Meter]:
    """While active, ``Trainer.fit`` records its process CPU time and the methods of
    ``logger_cls`` add the time they take inside ``fit`` (not ``test``) to the meter.

    It wraps the classes in this process only (labkit is not modified) and costs about a
    microsecond per call: a few hundred calls per fit here.
    """
    meter = Meter()
    originals: dict[tuple[type, str], object] = {}

    def patch(cls: type, name: str, wrapper: Callable[..., object]) -> None:
        originals[(cls, name)] = cls.__dict__.get(name, _MISSING)
        setattr(cls, name, wrapper)

    fit = pl.Trainer.fit

    def timed_fit(self: pl.Trainer, *args: object, **kwargs: object) -> None:
        meter.in_fit = True
        start = time.process_time()
        try:
            fit(self, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            meter.fit_cpu_seconds = time.process_time() - start
            meter.in_fit = False

    def timed(method: Callable[..., object]) -> Callable[..., object]:
        def wrapper(*args: object, **kwargs: object) -> object:
            if not meter.in_fit:
                return method(*args, **kwargs)
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                meter.logger_seconds += time.perf_counter() - start

        return wrapper

    patch(pl.Trainer, "fit", timed_fit)
    if logger_cls is not None:
        for name in LOGGER_METHODS:
            if callable(method := getattr(logger_cls, name, None)):
                patch(logger_cls, name, timed(method))
    try:
        yield meter
    finally:
        for (cls, name), original in originals.items():
            if original is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, original)


# --------------------------------------------------------------------------------- the setup
def make_setup(experiment: Path, epochs: int, lightning_logger: str, workdir: Path) -> Setup:
    overrides = (
        f"trainer.max_epochs={epochs}",
        "trainer.early_stopping=null",  # every variant trains exactly `epochs` epochs
        f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}",
        f"runs_root={workdir / 'runs'}",
    )
    exp = load_experiment(experiment, overrides)
    model, data, opt, task, trainer = exp.model, exp.data, exp.optimizer, exp.task, exp.trainer
    if not (
        isinstance(model, MLPSpec)
        and model.activation == "relu"
        and model.dropout == 0.0
        and not model.batch_norm
        and isinstance(data, DigitsSpec)
        and opt.name == "adam"
        and opt.weight_decay == 0.0
        and opt.scheduler is None
        and task.kind == "classification"
        and task.label_smoothing == 0.0
        and trainer.gradient_clip_val is None
        and trainer.accumulate_grad_batches == 1
        and trainer.check_val_every_n_epoch == 1
    ):
        raise SystemExit(
            f"error: {experiment}: the plain variants only reproduce a digits + ReLU MLP + Adam "
            "classification experiment without dropout, batch norm, schedulers or clipping"
        )
    return Setup(
        experiment=experiment,
        overrides=overrides,
        epochs=epochs,
        seed=exp.seed,
        batch_size=data.batch_size,
        val_fraction=data.val_fraction,
        test_fraction=data.test_fraction,
        hidden=tuple(model.hidden),
        lr=opt.lr,
        log_every_n_steps=trainer.log_every_n_steps,
        lightning_logger=lightning_logger,
        workdir=workdir,
    )


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def digits_splits(setup: Setup) -> dict[str, TensorDataset]:
    """The split labkit's digits data module makes: a seeded permutation, test first, then val."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images[:, None, :, :] / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(setup.seed).permutation(len(x))
    n_test = max(1, round(setup.test_fraction * len(x)))
    n_val = max(1, round(setup.val_fraction * len(x)))
    parts = {"val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    return {name: TensorDataset(xt[idx], yt[idx]) for name, idx in parts.items()}


Loader = DataLoader[tuple[torch.Tensor, ...]]


def loaders(setup: Setup) -> tuple[Loader, Loader]:
    splits = digits_splits(setup)
    train = DataLoader(
        splits["train"],
        batch_size=setup.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(setup.seed),
    )
    return train, DataLoader(splits["val"], batch_size=setup.batch_size)


def mlp(hidden: Sequence[int], in_features: int = 64, out_features: int = 10) -> nn.Sequential:
    """The same layers, in the same order, as ``labkit.models.MLP`` (so the same initial weights)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


# ------------------------------------------------------------------------------ the variants
def run_labkit(setup: Setup, profiler: cProfile.Profile | None = None) -> Outcome:
    exp = load_experiment(setup.experiment, setup.overrides)
    start = time.perf_counter()
    with metered(Tracker) as meter, _profiling(profiler):
        result = labkit.run(exp, progress="none")
    total = time.perf_counter() - start
    metrics = MlflowClient(result.tracking_uri).get_run(result.run_id).data.metrics  # latest values
    return Outcome(
        fit_seconds=result.fit_seconds,
        fit_cpu_seconds=meter.fit_cpu_seconds,
        logger_seconds=meter.logger_seconds,
        val_acc=metrics["val_acc"],
        val_loss=metrics["val_loss"],
        epochs=int(metrics["epochs_trained"]),
        total_seconds=total,
    )


class Classifier(pl.LightningModule):
    """The plain Lightning script's module: cross-entropy, ``val_loss`` and ``val_acc`` per epoch."""

    def __init__(self, model: nn.Module, lr: float) -> None:
        super().__init__()
        self.model = model
        self.lr = lr
        self.val_acc = MulticlassAccuracy(num_classes=10, average="micro")

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self.model(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self.model(x)
        self.val_acc.update(logits, y)
        self.log("val_loss", F.cross_entropy(logits, y), on_epoch=True)
        self.log("val_acc", self.val_acc, on_epoch=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def run_lightning(setup: Setup, profiler: cProfile.Profile | None = None) -> Outcome:
    root = Path(tempfile.mkdtemp(prefix="lightning-", dir=setup.workdir))
    pl.seed_everything(setup.seed, workers=True, verbose=False)
    train, val = loaders(setup)
    module = Classifier(mlp(setup.hidden), setup.lr)
    logger: Logger | bool = CSVLogger(root) if setup.lightning_logger == "csv" else False
    trainer = pl.Trainer(
        max_epochs=setup.epochs,
        accelerator="cpu",
        devices=1,
        deterministic=True,
        logger=logger,
        callbacks=[
            ModelCheckpoint(dirpath=root / "checkpoints", monitor="val_loss", save_top_k=1, save_last=True)
        ],
        default_root_dir=root,
        log_every_n_steps=setup.log_every_n_steps,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    with warnings.catch_warnings():
        for pattern in _QUIET:
            warnings.filterwarnings("ignore", message=pattern)
        with metered(type(logger) if isinstance(logger, Logger) else None) as meter:
            start = time.perf_counter()
            with _profiling(profiler):
                trainer.fit(module, train, val)
            fit_seconds = time.perf_counter() - start
    return Outcome(
        fit_seconds=fit_seconds,
        fit_cpu_seconds=meter.fit_cpu_seconds,
        logger_seconds=meter.logger_seconds,
        val_acc=float(trainer.callback_metrics["val_acc"]),
        val_loss=float(trainer.callback_metrics["val_loss"]),
        epochs=trainer.current_epoch,
    )


def run_raw(setup: Setup, profiler: cProfile.Profile | None = None) -> Outcome:
    root = Path(tempfile.mkdtemp(prefix="raw-", dir=setup.workdir))
    seed_all(setup.seed)
    torch.use_deterministic_algorithms(True)  # as Lightning's deterministic=True does
    train, val = loaders(setup)
    model = mlp(setup.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=setup.lr)
    best = float("inf")
    val_loss = val_acc = float("nan")
    start, start_cpu = time.perf_counter(), time.process_time()
    with _profiling(profiler):
        for _ in range(setup.epochs):
            model.train()
            for x, y in train:
                opt.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
            model.eval()
            total_loss, correct, seen = 0.0, 0, 0
            with torch.inference_mode():
                for x, y in val:
                    logits = model(x)
                    total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
                    correct += int((logits.argmax(dim=1) == y).sum())
                    seen += len(y)
            val_loss, val_acc = total_loss / seen, correct / seen
            state = {"model": model.state_dict(), "optimizer": opt.state_dict()}
            if val_loss < best:
                best = val_loss
                torch.save(state, root / "best.pt")
            torch.save(state, root / "last.pt")
    fit_seconds, fit_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return Outcome(
        fit_seconds=fit_seconds,
        fit_cpu_seconds=fit_cpu,
        logger_seconds=0.0,
        val_acc=val_acc,
        val_loss=val_loss,
        epochs=setup.epochs,
    )


RUNNERS: dict[str, Callable[..., Outcome]] = {
    "labkit": run_labkit,
    "lightning": run_lightning,
    "raw": run_raw,
}


@contextmanager
def _profiling(profiler: cProfile.Profile | None) -> Iterator[None]:
    if profiler is None:
        yield
        return
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()


# ----------------------------------------------------------------------------------- report
def report(setup: Setup, outcomes: dict[str, list[Outcome]], target: float) -> int:
    def med(name: str, field: str) -> float:
        return float(statistics.median(getattr(o, field) for o in outcomes[name]))

    width = max(len(label) for label in LABELS.values())
    print(
        f"\n{'variant':<{width}}  {'median fit s':>12}  {'min':>6}  {'max':>6}  {'CPU s':>6}  "
        f"{'logger s':>8}  {'val_acc':>7}  {'val_loss':>8}  {'epochs':>6}"
    )
    for name in VARIANTS:
        fits = [o.fit_seconds for o in outcomes[name]]
        last = outcomes[name][-1]
        print(
            f"{LABELS[name]:<{width}}  {med(name, 'fit_seconds'):12.3f}  {min(fits):6.3f}  {max(fits):6.3f}  "
            f"{med(name, 'fit_cpu_seconds'):6.3f}  {med(name, 'logger_seconds'):8.4f}  "
            f"{last.val_acc:7.4f}  {last.val_loss:8.4f}  {last.epochs:6d}"
        )
    print(
        "(medians over the rounds; CPU s: process CPU time during the fit; logger s: time inside the "
        "logger's methods during the fit: labkit's MLflow Tracker, the plain script's logger)"
    )
    print("\nfit seconds per round (labkit / plain Lightning / raw):")
    for i, round_ in enumerate(zip(*(outcomes[name] for name in VARIANTS), strict=True)):
        print(f"  round {i + 1}: " + " / ".join(f"{o.fit_seconds:.3f}" for o in round_))
    totals = [o.total_seconds for o in outcomes["labkit"] if o.total_seconds is not None]
    if totals:
        print(f"labkit.run end to end (set-up, fit, test, upload), median: {statistics.median(totals):.3f} s")

    lab, plain = med("labkit", "fit_seconds"), med("lightning", "fit_seconds")
    ratio = lab / plain
    per_round = [
        a.fit_seconds / b.fit_seconds for a, b in zip(outcomes["labkit"], outcomes["lightning"], strict=True)
    ]
    paired = statistics.median(per_round)
    best = min(o.fit_seconds for o in outcomes["labkit"]) / min(o.fit_seconds for o in outcomes["lightning"])
    cpu = med("labkit", "fit_cpu_seconds") / med("lightning", "fit_cpu_seconds")
    print(
        f"\nlabkit / plain Lightning: {ratio:.3f}x (median wall times); target <= {target:.2f}: "
        f"{'PASS' if ratio <= target else 'FAIL'}"
    )
    print(
        f"  to judge the noise: {paired:.3f}x (median of per-round ratios), {best:.3f}x (minimums), "
        f"{cpu:.3f}x (median CPU times)"
    )
    if len(per_round) >= 4:
        q1, _, q3 = statistics.quantiles(per_round, n=4)
        verdict = "unreliable, rerun with a larger --repeat" if q1 <= target <= q3 else "clear"
        print(f"  per-round ratios, middle half: {q1:.3f}x .. {q3:.3f}x; against the target: {verdict}")
    print(f"plain Lightning / raw PyTorch: {plain / med('raw', 'fit_seconds'):.3f}x (median wall times)")
    per_epoch_ms = (lab - plain) / setup.epochs * 1000
    print(f"labkit - plain Lightning: {lab - plain:+.3f} s per fit, {per_epoch_ms:+.1f} ms per epoch")
    tracker, other = med("labkit", "logger_seconds"), med("lightning", "logger_seconds")
    print(
        f"logger time inside fit: labkit's Tracker {tracker * 1000:.1f} ms ({tracker / lab:.1%} of its fit), "
        f"plain script's logger {other * 1000:.1f} ms"
    )

    accs = [outcomes[name][-1].val_acc for name in VARIANTS]
    same = max(accs) - min(accs) <= 0.01
    print(f"sanity: final val_acc of the three variants agree within 0.01: {'yes' if same else 'NO'}")
    if not same:
        return 1
    return 0 if ratio <= target else 2


def profile(setup: Setup, out: Path, top: int) -> None:
    """cProfile one labkit run (all of labkit.run) and one plain Lightning fit; write the
    statistics to ``out``; print the functions with the most cumulative time, then the
    tracking, logging and checkpoint functions (where the two variants differ)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in ("labkit", "lightning"):
        profiler = cProfile.Profile()
        RUNNERS[name](setup, profiler)
        path = out / f"{name}.prof"
        profiler.dump_stats(path)
        stats = pstats.Stats(str(path)).sort_stats("cumulative")
        print(f"\n--- cProfile of {LABELS[name]} ({path}; python -m pstats {path}), top {top} by cumtime")
        stats.print_stats(top)
        print(f"--- {LABELS[name]}: tracking, logging and checkpointing")
        stats.print_stats(
            r"trainer\.py:\d+\(fit\)|labkit/tracking|csv_logs|logger_connector\.py:\d+\(log_metrics|"
            r"model_checkpoint\.py:\d+\(_save_checkpoint|sqlalchemy_store\.py:\d+\(log_batch"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("``", "`"))
    parser.add_argument(
        "--experiment", type=Path, default=DEFAULT_EXPERIMENT, help="the labkit experiment file"
    )
    parser.add_argument("--epochs", type=int, default=20, help="epochs per fit (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="counted rounds of all variants (default 3)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra- and inter-op threads (default 1)"
    )
    parser.add_argument(
        "--target", type=float, default=1.05, help="limit for labkit / plain Lightning (1.05)"
    )
    parser.add_argument(
        "--lightning-logger", choices=("csv", "none"), default="csv", help="the plain script's logger (csv)"
    )
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="also cProfile one fit of each; stats to DIR"
    )
    parser.add_argument("--profile-top", type=int, default=40, help="functions to print per profile (40)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.repeat < 1 or args.threads < 1:
        parser.error("--epochs, --repeat and --threads must be at least 1")

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(args.threads)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)  # the same quiet for every variant

    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp:
        setup = make_setup(args.experiment, args.epochs, args.lightning_logger, Path(tmp))
        logger_text = "CSVLogger" if setup.lightning_logger == "csv" else "logger=False"
        print(f"experiment: {setup.experiment} with {' '.join(setup.overrides[:2])}")
        print(
            f"{setup.epochs} epochs, seed {setup.seed}, batch size {setup.batch_size}, MLP hidden "
            f"{list(setup.hidden)}, Adam lr {setup.lr:g}, torch threads {torch.get_num_threads()}"
        )
        print(f"labkit: MLflow tracking into {setup.overrides[2].split('=', 1)[1]} (temporary)")
        print(
            f"plain Lightning: {logger_text}, ModelCheckpoint(monitor=val_loss, save_top_k=1, "
            f"save_last=True), log_every_n_steps={setup.log_every_n_steps}"
        )
        print("raw PyTorch: train loop, validation and torch.save of best/last each epoch")
        print(f"1 uncounted warm-up run of each variant, then {args.repeat} interleaved round(s)", flush=True)

        for name in VARIANTS:
            warm = RUNNERS[name](setup)
            print(f"  warm-up {LABELS[name]}: {warm.fit_seconds:.3f} s", flush=True)
        outcomes: dict[str, list[Outcome]] = {name: [] for name in VARIANTS}
        for i in range(args.repeat):
            order = VARIANTS[i % len(VARIANTS) :] + VARIANTS[: i % len(VARIANTS)]
            for name in order:
                outcomes[name].append(RUNNERS[name](setup))
            print(f"  round {i + 1}/{args.repeat} done ({', '.join(LABELS[n] for n in order)})", flush=True)
            if torch.get_num_threads() != args.threads:
                raise SystemExit(
                    f"error: torch now uses {torch.get_num_threads()} threads, not {args.threads}"
                )
        status = report(setup, outcomes, args.target)
        if args.profile is not None:
            profile(setup, args.profile, args.profile_top)
    return status


if __name__ == "__main__":
    sys.exit(main())
