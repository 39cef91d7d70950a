"""Logging throughput against one live local MLflow server, labkit's spool vs Lightning's
``MLFlowLogger``, measured side by side in one run.

1. **One process** — metric points per second from one process logging one point per call (as
   a training loop logs every step), until every point is on the server: labkit's
   ``RunClient`` (spool + background shipper) vs ``lightning.pytorch.loggers.MLFlowLogger``
   (one ``log_batch`` request per call). Goal: labkit ≥20× faster.
2. **16 writers** — 16 processes (tests/integration/spool_writer.py) × 5 000 points each,
   concurrently; aggregate points per second from the first point logged to the last writer's
   spool drained; then the server's counts are checked (0 lost, 0 duplicated). Goal ≥10 000/s.
3. **Training-step slowdown** — a small Lightning model trained for ``--steps`` steps logging
   ``train_loss`` every step, with ``logger=False`` vs labkit's ``Tracker`` (and vs
   ``MLFlowLogger`` for reference), rounds interleaved; median time per step. Goal ≤2 %.

The server is ``mlflow server --workers 2`` on 127.0.0.1 with an SQLite store in a temporary
folder (``--backend-store-uri`` for PostgreSQL). Run from the repository root::

    .venv/bin/python benchmarks/logging_throughput.py
    .venv/bin/python benchmarks/logging_throughput.py --backend-store-uri postgresql+psycopg://exp:exp-pw@127.0.0.1:5433/mlflow
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from _servers import mlflow_server  # benchmarks/_servers.py, beside this script

REPO = Path(__file__).resolve().parents[1]
WRITER = REPO / "tests" / "integration" / "spool_writer.py"


def one_process(url: str, folder: Path, points: int, lightning_points: int) -> tuple[float, float]:
    from lightning.pytorch.loggers import MLFlowLogger
    from mlflow.tracking import MlflowClient

    from labkit.tracking import RunClient

    client = RunClient(url, "bench-one", folder / "one")
    client.start("labkit", {}, {})
    start = time.perf_counter()
    for step in range(points):
        client.log_values({"x": float(step)}, step)
    report = client.finish()
    labkit_s = time.perf_counter() - start
    assert report is not None and report.pending.total == 0 and client.run_id
    assert len(MlflowClient(url).get_metric_history(client.run_id, "x")) == points

    logger = MLFlowLogger(experiment_name="bench-one", tracking_uri=url, run_name="lightning")
    logger.experiment  # noqa: B018 - create the run before the clock starts
    start = time.perf_counter()
    for step in range(lightning_points):
        logger.log_metrics({"x": float(step)}, step)
    logger.finalize("success")
    lightning_s = time.perf_counter() - start
    return points / labkit_s, lightning_points / lightning_s


def sixteen_writers(url: str, folder: Path, writers: int, points: int) -> tuple[float, int, int]:
    from mlflow.tracking import MlflowClient

    env = {**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WRITER),
                str(folder / f"w{i:02d}"),
                url,
                "--points",
                str(points),
                "--experiment",
                "bench-writers",
                "--name",
                f"w{i:02d}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(writers)
    ]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=900)
        if p.returncode != 0:
            raise SystemExit(f"a writer failed:\n{err[-2000:]}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    span = max(r["t_end"] for r in reports) - min(r["t0"] for r in reports)
    client = MlflowClient(url)
    found = dupes = 0
    for r in reports:
        steps = [m.step for m in client.get_metric_history(r["run_id"], "x")]
        found += len(set(steps))
        dupes += len(steps) - len(set(steps))
    return writers * points / span, writers * points - found, dupes


def training_slowdown(url: str, folder: Path, steps: int, rounds: int) -> dict[str, float]:
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import MLFlowLogger
    from torch.utils.data import DataLoader, TensorDataset

    from labkit.tracking import Tracker

    torch.set_num_threads(1)
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # "GPU available", tips

    class Net(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)
            )

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), 1e-3)

    g = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.randn(steps * 32, 64, generator=g), torch.randint(0, 10, (steps * 32,), generator=g)
    )

    def fit(kind: str, i: int, steps: int) -> float:
        logger: object = False
        tracker = None
        if kind == "labkit":
            tracker = Tracker(url, "bench-train", folder / f"train-{i}")
            tracker.start(f"labkit-{i}", {}, {})
            logger = tracker
        elif kind == "mlflowlogger":
            logger = MLFlowLogger(experiment_name="bench-train", tracking_uri=url)
        trainer = pl.Trainer(
            max_epochs=1, limit_train_batches=steps, logger=logger, log_every_n_steps=1,  # type: ignore[arg-type]
            enable_progress_bar=False,
            enable_model_summary=False, enable_checkpointing=False, accelerator="cpu",
        )  # fmt: skip
        start = time.perf_counter()
        trainer.fit(Net(), DataLoader(data, batch_size=32))
        elapsed = time.perf_counter() - start
        if tracker is not None:
            tracker.finish()
        return elapsed / steps

    kinds = ["none", "labkit"]
    for kind in kinds:  # warm-up
        fit(kind, -1, steps)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(rounds):
        for kind in kinds[r % 2 :] + kinds[: r % 2]:
            times[kind].append(fit(kind, r, steps))
    # MLFlowLogger sends a request per step (≈50 ms each here): once, on a tenth of the steps
    times["mlflowlogger"] = [fit("mlflowlogger", 0, max(steps // 10, 50))]
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend-store-uri", default=None)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--points", type=int, default=20_000, help="points from one process (labkit)")
    parser.add_argument("--lightning-points", type=int, default=1_000, help="points through MLFlowLogger")
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--writer-points", type=int, default=5_000)
    parser.add_argument("--steps", type=int, default=2_000, help="training steps per fit")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with (
        tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp,
        mlflow_server(Path(tmp), args.backend_store_uri, args.workers, timeout=120) as url,
    ):
        folder = Path(tmp)
        labkit_rate, lightning_rate = one_process(url, folder, args.points, args.lightning_points)
        print(f"one process: labkit {labkit_rate:,.0f} points/s (to the server)")
        print(f"             MLFlowLogger {lightning_rate:,.0f} points/s")
        print(f"  ratio labkit / MLFlowLogger: {labkit_rate / lightning_rate:.1f}x (goal >= 20x)")
        rate, lost, dupes = sixteen_writers(url, folder, args.writers, args.writer_points)
        n = f"{args.writers} writers x {args.writer_points}"
        print(f"{n}: {rate:,.0f} points/s aggregate (goal >= 10,000/s)")
        print(f"  {lost} lost, {dupes} duplicated (goal 0)")
        per_step = training_slowdown(url, folder, args.steps, args.rounds)
        base = per_step["none"]
        for kind, t in per_step.items():
            print(f"  training step, logger {kind:<13} {t * 1e3:.3f} ms  ({(t / base - 1) * 100:+.1f} %)")
        slowdown = (per_step["labkit"] / base - 1) * 100
        print(f"training-step slowdown with labkit: {slowdown:+.1f} % (goal <= 2 %)")


if __name__ == "__main__":
    main()
