"""Streaming events larger than ``data.memory_limit``: peak memory, and metrics against in-memory.

Two measurements, each in a fresh child process (so that one does not inherit the other's
memory):

* ``memory``: an HDF5 file of ``--events`` events x 32 float32 features (2 150 000 events:
  264 MiB with the labels, 4.1x the default ``--limit`` of 64 MiB) is trained on for one epoch (validation
  included) through the streaming path of a FileDataModule (``memory_limit`` = the limit,
  the default ``shuffle_buffer`` of 100 000 events, batch 1024) with a small MLP (32-16-2).
  The child reports its resident memory after the imports and the model are built (VmRSS) and
  its peak at the end (VmHWM); the growth is peak minus that baseline, and must stay below the
  limit (the model's own memory is a few kB).
  A control fit of the same model on 20 000 events loaded in memory shows how much of that
  growth is Lightning's and torch's own (allocator arenas, threads, the first optimiser step).
* ``accuracy``: a smaller file that fits (``--small`` events x 16 features, three classes from
  a non-linear rule) is trained on for ``--epochs`` epochs with the same seed, once loaded into
  memory and once streamed (``memory_limit`` 1 KiB, ``shuffle_buffer`` 10 000); it prints both
  runs' validation and test accuracy, and their accuracy on a hold-out file of 100 000 other
  events of the same rule. The two paths draw different (equally sized) splits — per event in
  memory, per block of rows when streaming — so their val/test figures differ by the noise of
  a 6 000-event split (about 0.005); the hold-out file judges both models on the same events.

Run it from the repository root::

    .venv/bin/python benchmarks/streaming.py                   # about 2 minutes on 2 cores
    .venv/bin/python benchmarks/streaming.py --events 500000   # quicker, same 4x ratio at --limit 16MB

Exit status: 0 when the growth stays below the limit and the hold-out accuracies agree within
``--tolerance`` (0.02), 2 otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MB = 1024 * 1024


def _write(path: Path, events: int, features: int, seed: int, rule: str) -> None:
    import h5py

    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        x = f.create_dataset("x", (events, features), dtype="f4")
        y = f.create_dataset("y", (events,), dtype="i1")
        for start in range(0, events, 100_000):
            n = min(100_000, events - start)
            xs = rng.normal(size=(n, features)).astype(np.float32)
            if rule == "xor":
                ys = (xs[:, 0] * xs[:, 1] + 0.3 * xs[:, 2] > 0).astype(np.int8)
            else:  # three classes from a ring and a half-plane, with label noise
                r = np.hypot(xs[:, 0], xs[:, 1])
                ys = np.where(r < 1.0, 0, np.where(xs[:, 2] + 0.5 * xs[:, 3] > 0, 1, 2)).astype(np.int8)
                flip = rng.random(n) < 0.05
                ys[flip] = rng.integers(0, 3, int(flip.sum()))
            x[start : start + n], y[start : start + n] = xs, ys


def _status(field: str) -> int:
    """A field of /proc/self/status (VmRSS, VmHWM) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _module(path: Path, memory_limit: int, shuffle_buffer: int, batch_size: int) -> Any:
    """A FileDataModule that streams above ``memory_limit``: labkit's own when it already
    streams, else the same dispatch added here (``stream_source`` as docs/large-data.md's
    integration notes give it: load_part over blocks of rows)."""
    from labkit.data._arrays import FileDataModule, keys_of
    from labkit.data._base import Arrays
    from labkit.data._blocks import Part, StreamSource, files_reader
    from labkit.data._read_events import input_keys, load_part
    from labkit.data._stream import StreamingDataModule

    module: Any = FileDataModule
    if not issubclass(FileDataModule, StreamingDataModule):

        class Files(StreamingDataModule, FileDataModule):  # type: ignore[misc]
            def stream_source(self) -> StreamSource:
                source = self.event_source()
                parts = source.parts()
                inputs = input_keys(source, parts[0])
                keys = tuple(keys_of(inputs, self.targets, self.weights))
                _, layout = files_reader(self.format, self.tree, self.fields())

                def rows(i: int, start: int, stop: int) -> Arrays:
                    return Arrays(
                        **load_part(source, parts[i], rows=slice(start, stop), inputs=inputs).fields()
                    )

                return StreamSource(
                    tuple(Part(p.path, p.group or "") for p in parts), keys, layout=layout, rows=rows
                )

        module = Files
    return module(
        path=str(path),
        inputs="x",
        targets="y",
        memory_limit=memory_limit,
        shuffle_buffer=shuffle_buffer,
        batch_size=batch_size,
        seed=0,
        standardize=True,
    )


def _accuracy(model: Any, loader: Any) -> float:
    import torch

    right = total = 0
    with torch.no_grad():
        for x, y, *_ in loader:
            right += int((model(x).argmax(dim=1) == y).sum())
            total += len(y)
    return right / total


def child(args: argparse.Namespace) -> None:
    """Train once and print a JSON line: memory (baseline, peak) and accuracies."""
    import lightning.pytorch as pl
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    pl.seed_everything(0, verbose=False)
    dm = _module(Path(args.file), args.memory_limit, args.shuffle_buffer, args.batch_size)
    features = 32 if args.child == "memory" else 16
    classes = 2 if args.child == "memory" else 3
    hidden = 16 if args.child == "memory" else 64
    net = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
    net.append(nn.Linear(hidden, classes))

    class Task(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            return nn.functional.cross_entropy(self.net(batch[0]), batch[1])

        def validation_step(self, batch: Any, _: int) -> None:
            self.log("val_loss", nn.functional.cross_entropy(self.net(batch[0]), batch[1]))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=3e-3 if args.child == "memory" else 1e-2)

    trainer = pl.Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    baseline = _status("VmRSS")
    start = time.perf_counter()
    trainer.fit(Task(), datamodule=dm)
    seconds = time.perf_counter() - start
    out = {
        "streamed": dm.streaming() is not None,
        "baseline": baseline,
        "peak": _status("VmHWM"),
        "seconds": seconds,
        "sizes": dm.info.sizes,
    }
    if args.child == "accuracy":
        net.eval()
        out |= {"val": _accuracy(net, dm.val_dataloader()), "test": _accuracy(net, dm.test_dataloader())}
        import h5py

        with h5py.File(Path(args.file).with_name("holdout.h5")) as f:  # the same rule, other events
            x, y = f["x"][()], torch.from_numpy(f["y"][()].astype(np.int64))
        mean, divisor = dm.input_scaling
        with torch.no_grad():
            guess = net(torch.from_numpy(((x - mean) / divisor).astype(np.float32))).argmax(dim=1)
        out["holdout"] = float((guess == y).float().mean())
    print(json.dumps(out))


def _run(kind: str, file: Path, args: argparse.Namespace, **options: Any) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", kind, "--file", str(file), "--threads", str(args.threads)]
    for key, value in options.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"the {kind} child failed ({done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=int, default=2_150_000, help="events in the large file (x 32 floats)"
    )
    parser.add_argument("--limit", type=int, default=64, help="data.memory_limit in MiB")
    parser.add_argument("--small", type=int, default=40_000, help="events in the file that fits")
    parser.add_argument("--epochs", type=int, default=8, help="epochs of the accuracy comparison")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=0.02)
    # the child's options
    parser.add_argument("--child", choices=("memory", "accuracy"), help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--memory-limit", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--shuffle-buffer", type=int, default=100_000, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=1024, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    with tempfile.TemporaryDirectory(prefix="labkit-stream-bench-") as tmp:
        big, small = Path(tmp) / "big.h5", Path(tmp) / "small.h5"
        _write(big, args.events, 32, seed=1, rule="xor")
        limit = args.limit * MB
        size = big.stat().st_size
        print(
            f"large file: {args.events} events x 32 float32 = {size / MB:.0f} MiB, "
            f"memory_limit {args.limit} MiB"
        )
        mem = _run("memory", big, args, memory_limit=limit, epochs=1)
        growth = mem["peak"] - mem["baseline"]
        print(
            f"  streamed={mem['streamed']}  1 epoch (with validation) {mem['seconds']:.1f} s  "
            f"RSS after imports {mem['baseline'] / MB:.0f} MiB, peak {mem['peak'] / MB:.0f} MiB, "
            f"growth {growth / MB:.1f} MiB = {growth / limit:.2f} x the limit"
        )
        tiny = Path(tmp) / "tiny.h5"
        _write(tiny, 20_000, 32, seed=1, rule="xor")
        control = _run("memory", tiny, args, memory_limit=1 << 40, epochs=1)
        machinery = control["peak"] - control["baseline"]
        print(
            f"  control: the same fit on 20 000 events in memory grows by {machinery / MB:.1f} MiB "
            "(Lightning's and torch's own first-fit allocations, 2.4 MiB of data)"
        )
        _write(small, args.small, 16, seed=2, rule="ring")
        _write(Path(tmp) / "holdout.h5", 100_000, 16, seed=3, rule="ring")
        print(f"small file: {args.small} events x 16 float32, {args.epochs} epochs, seed 0, batch 256")
        runs = {}
        for name, memory_limit, buffer in (("in-memory", 1 << 40, 100_000), ("streamed", 1024, 10_000)):
            runs[name] = _run(
                "accuracy",
                small,
                args,
                memory_limit=memory_limit,
                shuffle_buffer=buffer,
                batch_size=256,
                epochs=args.epochs,
            )
            r = runs[name]
            print(
                f"  {name:9s} streamed={r['streamed']}  val acc {r['val']:.4f}  test acc {r['test']:.4f}  "
                f"hold-out acc {r['holdout']:.4f}  sizes {r['sizes']}  fit {r['seconds']:.1f} s"
            )
    print("  (the best possible accuracy on this rule, 5 % of labels redrawn at random: 0.967)")
    gap = abs(runs["in-memory"]["holdout"] - runs["streamed"]["holdout"])
    ok = growth < limit and mem["streamed"] and runs["streamed"]["streamed"] and gap <= args.tolerance
    print(f"hold-out accuracy gap {gap:.4f} (tolerance {args.tolerance}); {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
