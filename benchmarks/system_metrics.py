"""What the system-metrics sampler (``tracking.system_every``) costs a training step.

1. **End to end** — a small Lightning model (64-256-10 MLP, batch 32, one torch thread: about a
   millisecond a step, so a fixed per-step cost weighs as much as it can) trains ``--steps``
   steps logging ``train_loss`` to labkit's ``Tracker`` (offline: into its spool, as on a node
   without network), three ways in the same process: without the sampler, with it every 15 s
   (the default) and every 0.1 s (stressful). Rounds interleave the three in a rotated order; the
   time per step is the fit's wall time over its steps; the cost is the median over rounds of
   the paired ratio with/without, minus 1.
2. **In one fit** — the same three, switched every ``--segment`` steps inside one long fit (a
   fresh sampler per segment, its start and stop counted against it): load from other
   processes, which changes over seconds, hits neighbouring segments alike.
3. **By parts** — what the sampler adds, timed directly (steadier than (1) on a shared machine):
   the two hooks per training batch (data-wait bookkeeping), one sample of every probe (psutil,
   NVML when there is a GPU; in the sampler's thread, so a cost to the step only as much as it
   holds the GIL), and one log of a sample into the spool (in the training thread). The cost
   per step is ``hooks + (sample + log) x step / every``.

Run from the repository root (about a minute of CPU on a 2-core machine)::

    .venv/bin/python benchmarks/system_metrics.py
    .venv/bin/python benchmarks/system_metrics.py --steps 3000 --rounds 9

Exit status 0 when the by-parts cost at both intervals is below ``--target`` (1 %), else 2.
The end-to-end ratios are printed beside it: on a quiet machine they agree within their noise;
on a shared one the noise (other processes) is larger than the cost and says little.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: no spinning threads on a shared machine

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset

from labkit.runner._system import GpuProbe, ProcessProbe, SystemMetrics, SystemSampler
from labkit.tracking import Tracker

VARIANTS = ("off", "15s", "0.1s")
EVERY = {"15s": 15.0, "0.1s": 0.1}


class Net(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), 1e-3)


def tracker(folder: Path) -> Tracker:
    t = Tracker("http://127.0.0.1:1", "bench-system", folder, mode="offline", notify=lambda line: None)
    t.start(folder.name, {}, {})
    return t


def fit(variant: str, folder: Path, data: TensorDataset, steps: int) -> tuple[float, float]:
    """Seconds per training step of one fit: wall time, and CPU time of the process (all its
    threads: the sampler's included)."""
    logger = tracker(folder)
    callbacks: list[Callback] = [SystemMetrics(EVERY[variant])] if variant in EVERY else []
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=steps, logger=logger, log_every_n_steps=1, callbacks=callbacks,
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        accelerator="cpu", num_sanity_val_steps=0,
    )  # fmt: skip
    start, cpu = time.perf_counter(), time.process_time()
    trainer.fit(Net(), DataLoader(data, batch_size=32))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    logger.finish()
    return elapsed / steps, cpu / steps


#: what the end-to-end part measures: each variant's per-round seconds per step
Rounds = dict[str, list[float]]


def end_to_end(folder: Path, steps: int, rounds: int) -> tuple[Rounds, Rounds]:
    """Every round's wall and CPU seconds per step of each variant."""
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randn(steps * 32, 64, generator=g), torch.randint(0, 10, (steps * 32,), generator=g)
    )
    for v in VARIANTS:  # warm-up: imports, first allocations, the spool's tables
        fit(v, folder / f"warm-{v}", data, min(steps, 200))
    wall: Rounds = {v: [] for v in VARIANTS}
    cpu: Rounds = {v: [] for v in VARIANTS}
    for r in range(rounds):
        order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
        for v in order:
            w, c = fit(v, folder / f"r{r}-{v}", data, steps)
            wall[v].append(w)
            cpu[v].append(c)
    return wall, cpu


def paired(times: Rounds, variant: str) -> float:
    """The median over rounds of the ratio ``variant`` / ``off``."""
    return statistics.median(a / b for a, b in zip(times[variant], times["off"], strict=True))


class Segments(Callback):
    """Inside one fit, switches between the variants every ``segment`` steps (off, 15 s, 0.1 s,
    off, ...; a fresh sampler each time: its start and stop count against it) and records each
    segment's wall seconds per step. Background load that changes over seconds hits neighbouring
    segments alike, so their ratios are steadier than those of whole fits."""

    def __init__(self, segment: int) -> None:
        self.segment = segment
        self.times: Rounds = {v: [] for v in VARIANTS}
        self.active: SystemMetrics | None = None
        self.variant = ""
        self.start = 0.0
        self.index = 0

    def _switch(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.active is not None:  # its stop (a last sample, a log) counts against it
            self.active.on_fit_end(trainer, pl_module)
        now = time.perf_counter()
        if self.variant:
            self.times[self.variant].append((now - self.start) / self.segment)
        self.variant = VARIANTS[self.index % len(VARIANTS)]
        self.index += 1
        self.start = now
        self.active = SystemMetrics(EVERY[self.variant]) if self.variant in EVERY else None
        if self.active is not None:  # and so does its start
            self.active.on_fit_start(trainer, pl_module)
            self.active.on_train_epoch_start(trainer, pl_module)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, i: int
    ) -> None:
        if i % self.segment == 0:
            self._switch(trainer, pl_module)
        if self.active is not None:
            self.active.on_train_batch_start(trainer, pl_module, batch, i)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        if self.active is not None:
            self.active.on_train_batch_end(trainer, pl_module, outputs, batch, i)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.active is not None:
            self.active.on_fit_end(trainer, pl_module)
            self.active = None
        self.variant = ""  # the last, possibly short, segment is not counted


def segments(folder: Path, cycles: int, segment: int) -> Rounds:
    """Wall seconds per step of each variant's segments in one fit of ``cycles`` x 3 segments
    (the first cycle left out)."""
    steps = cycles * len(VARIANTS) * segment + 1
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(
        torch.randn(steps * 32, 64, generator=g), torch.randint(0, 10, (steps * 32,), generator=g)
    )
    meter = Segments(segment)
    logger = tracker(folder / "segments")
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=steps, logger=logger, log_every_n_steps=1, callbacks=[meter],
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        accelerator="cpu", num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(Net(), DataLoader(data, batch_size=32))
    logger.finish()
    return {v: t[1:] for v, t in meter.times.items()}  # the first cycle warms up


def by_parts(folder: Path, n: int = 2000) -> dict[str, float]:
    """Seconds per call: the batch hooks, one sample of every probe, one log of a sample."""
    cb = SystemMetrics(3600.0)
    fake: Any = type("T", (), {"world_size": 1, "global_step": 0, "logger": None})()  # logs nothing
    start = time.perf_counter()
    for i in range(n):
        cb.on_train_batch_start(fake, None, None, i)  # type: ignore[arg-type]
        cb.on_train_batch_end(fake, None, None, None, i)  # type: ignore[arg-type]
    hooks = (time.perf_counter() - start) / n
    starts = 20
    start = time.perf_counter()
    for _ in range(starts):  # the thread's start and stop (its probes, its last sample) per fit
        cb = SystemMetrics(3600.0)
        cb.on_fit_start(fake, None)  # type: ignore[arg-type]
        cb.on_fit_end(fake, None)  # type: ignore[arg-type]
    start_stop = (time.perf_counter() - start) / starts

    process, gpus = ProcessProbe(), GpuProbe(None)
    probes: list[Any] = [process, *([gpus] if gpus.devices else [])]
    sampler = SystemSampler(1.0, lambda: probes)
    samples = 200
    start = time.perf_counter()
    for _ in range(samples):
        sampler.sample_now(probes)
    sample = (time.perf_counter() - start) / samples
    one = sampler.take() | {"data_wait_fraction": 0.1}
    gpus.close()

    logger = tracker(folder / "parts")
    metrics = {f"system/{k}": v for k, v in one.items()}
    logs = 200
    start = time.perf_counter()
    for step in range(logs):
        logger.log_metrics(metrics, step=step)
    log = (time.perf_counter() - start) / logs
    logger.finish()
    return {
        "hooks": hooks,
        "start_stop": start_stop,
        "sample": sample,
        "log": log,
        "keys": float(len(metrics)),
        "gpus": float(gpus.devices),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=2000, help="training steps per fit")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the three variants")
    parser.add_argument("--cycles", type=int, default=20, help="off/15 s/0.1 s cycles in the one-fit part")
    parser.add_argument("--segment", type=int, default=200, help="steps per segment in the one-fit part")
    parser.add_argument("--target", type=float, default=0.01, help="the most the sampler may cost (fraction)")
    args = parser.parse_args()

    torch.set_num_threads(1)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*The `srun` command is available.*")
    warnings.filterwarnings("ignore", ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
    with tempfile.TemporaryDirectory(prefix="labkit-bench-system-") as tmp:
        folder = Path(tmp)
        parts = by_parts(folder)
        wall, cpu = end_to_end(folder, args.steps, args.rounds)
        segs = segments(folder, args.cycles, args.segment)

    step = statistics.median(wall["off"])
    print(f"end to end: {args.steps} steps per fit, {args.rounds} interleaved rounds, torch threads 1")
    for v in VARIANTS:
        extra = ""
        if v in EVERY:
            w, c = paired(wall, v), paired(cpu, v)
            extra = f"  paired ratio to off: wall {w:.4f} ({100 * (w - 1):+.2f} %)"
            extra += f", CPU {c:.4f} ({100 * (c - 1):+.2f} %)"
        print(f"  sampler {v:>4}  {1000 * statistics.median(wall[v]):.4f} ms/step{extra}")
        print("    wall per round: " + " ".join(f"{1000 * t:.3f}" for t in wall[v]))
    spread = [a / b for v in EVERY for a, b in zip(wall[v], wall["off"], strict=True)]
    print(f"  wall ratios of single rounds range {min(spread):.3f}-{max(spread):.3f} (the machine's noise)")
    print(f"one fit, {args.cycles} cycles of {args.segment}-step segments (off, 15 s, 0.1 s):")
    for v in VARIANTS:
        extra = ""
        if v in EVERY:
            r = paired(segs, v)
            extra = f"  paired ratio to the off segment before it: {r:.4f} ({100 * (r - 1):+.2f} %)"
        print(f"  sampler {v:>4}  {1000 * statistics.median(segs[v]):.4f} ms/step{extra}")
    print(
        f"by parts: hooks {1e6 * parts['hooks']:.2f} us/step; "
        f"start+stop {1e3 * parts['start_stop']:.2f} ms/fit; "
        f"one sample {1e3 * parts['sample']:.3f} ms ({int(parts['gpus'])} GPUs); "
        f"one log of {int(parts['keys'])} keys {1e3 * parts['log']:.3f} ms"
    )
    worst = 0.0
    for every in EVERY.values():
        cost = (parts["hooks"] + (parts["sample"] + parts["log"]) * step / every) / step
        worst = max(worst, cost)
        print(f"  every {every:>4g} s: {100 * cost:.3f} % of a {1000 * step:.3f} ms step")
    met = worst < args.target
    print(f"goal < {100 * args.target:g} % of a step at both intervals: {'met' if met else 'MISSED'}")
    return 0 if met else 2


if __name__ == "__main__":
    raise SystemExit(main())
