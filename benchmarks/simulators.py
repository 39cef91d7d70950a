"""Throughput of the labkit.sim simulators: calorimeter showers per second and GRF fields per second.

Cases: ``calo`` with each particle setting (electron, pion, mixed; default options: 1–100 GeV
log-uniform, 12 × 9 × 8 voxels, 100 spots per GeV) at a few sample counts, and ``grf`` (32 × 32
fields) at a few sample counts. Each case is run once as an uncounted warm-up; then ``--repeat``
rounds each run every case once, in an order rotated from round to round so that machine noise
hits all cases alike. It prints the median time and the median rate (samples per second) of
each case, and the spread (min–max) of the rates. Generation only: no file is written.

Run it from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/simulators.py                 # --repeat 5
    .venv/bin/python benchmarks/simulators.py --repeat 11     # steadier on a busy machine
    .venv/bin/python benchmarks/simulators.py --calo-n 100 1000 --grf-n 10000

Exit status 0 (it measures; there is no target to miss).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from labkit.sim import simulate_calo, simulate_grf


@dataclass(frozen=True)
class Case:
    label: str
    unit: str
    n: int
    run: Callable[[], object]


def _cases(calo_n: Sequence[int], grf_n: Sequence[int], seed: int) -> list[Case]:
    cases: list[Case] = []
    for particle in ("electron", "pion", "mixed"):
        for n in calo_n:
            cases.append(
                Case(
                    f"calo {particle}",
                    "showers/s",
                    n,
                    lambda n=n, p=particle: simulate_calo(n, seed=seed, particle=p),
                )
            )
    for n in grf_n:
        cases.append(Case("grf 32x32", "fields/s", n, lambda n=n: simulate_grf(n, seed=seed)))
    return cases


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--calo-n", type=int, nargs="+", default=[100, 1000, 5000], help="showers per call")
    parser.add_argument("--grf-n", type=int, nargs="+", default=[1000, 10000, 50000], help="fields per call")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    cases = _cases(args.calo_n, args.grf_n, args.seed)
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}; {args.repeat} rounds after one warm-up"
    )
    for case in cases:  # warm-up: imports, first-touch allocation, FFT plans
        case.run()
    times: dict[int, list[float]] = {i: [] for i in range(len(cases))}
    for round_ in range(args.repeat):
        order = list(range(len(cases)))
        shift = round_ % len(order)
        for i in order[shift:] + order[:shift]:
            start = time.perf_counter()
            cases[i].run()
            times[i].append(time.perf_counter() - start)

    print(f"{'case':<15} {'n':>7} {'median s':>10} {'median rate':>13}  {'rate min-max':<19} unit")
    for i, case in enumerate(cases):
        rates = [case.n / t for t in times[i]]
        print(
            f"{case.label:<15} {case.n:>7} {statistics.median(times[i]):>10.4f} "
            f"{statistics.median(rates):>13,.0f}  {min(rates):>8,.0f}-{max(rates):<10,.0f} {case.unit}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
