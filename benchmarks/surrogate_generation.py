"""Generation time of a trained surrogate against the simulator it learnt, side by side.

    .venv/bin/python benchmarks/surrogate_generation.py RUN_DIR [--batch 10000] [--repeat 5]

Times, interleaved in one process (the machine is shared: only the ratio means much), the
surrogate's ``generate`` (cells in GeV included, CPU, torch's default threads unless --threads)
and ``labkit.sim.simulate`` with the run's options, on the same log-uniform incident energies,
and prints the median milliseconds per shower of each and their ratio. Exit 0 when the surrogate
is faster (ratio < 1), 2 when not.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import torch

    from labkit import sim
    from labkit.runner import load_surrogate

    if args.threads:
        torch.set_num_threads(args.threads)
    task = load_surrogate(args.run_dir).task
    options = dict(task.simulator_options)
    low, high = (float(v) for v in options.pop("energy_range"))
    rng = np.random.default_rng(0)
    energy = np.exp(rng.uniform(math.log(low), math.log(high), args.batch))
    task.generate(energy[:100], seed=0)  # warm-up
    sim.simulate(task.simulator, 100, seed=0, energy_range=(low, high), **options)
    gen, simulated = [], []
    for i in range(args.repeat):
        start = time.perf_counter()
        task.generate(energy, seed=i)
        gen.append(time.perf_counter() - start)
        start = time.perf_counter()
        sim.simulate(task.simulator, args.batch, seed=i, energy_range=(low, high), **options)
        simulated.append(time.perf_counter() - start)
    g = 1e3 * statistics.median(gen) / args.batch
    s = 1e3 * statistics.median(simulated) / args.batch
    print(f"batch {args.batch}, {args.repeat} interleaved rounds, torch threads {torch.get_num_threads()}")
    print(f"  surrogate  {g:.4f} ms/shower  (min {1e3 * min(gen) / args.batch:.4f})")
    print(f"  simulator  {s:.4f} ms/shower  (min {1e3 * min(simulated) / args.batch:.4f})")
    print(f"  ratio surrogate/simulator {g / s:.2f}  (goal < 1: {'met' if g < s else 'MISSED'})")
    return 0 if g < s else 2


if __name__ == "__main__":
    sys.exit(main())
