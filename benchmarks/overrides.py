"""Many command-line overrides: labkit's load (all set on one copy, merged once) next to the
naive way (one OmegaConf merge per override, what labkit did before), in one run.

A site profile's ``overrides:`` list, a study's trial and a user's command line all arrive as
``KEY=VALUE`` overrides; merging each into the whole config costs time that grows with the
config, so N overrides cost O(N²). This script times, interleaved, for each N:

* ``labkit``: :func:`labkit.config.load_experiment` with N overrides (``tracking.tags.kI=vI``);
* ``naive``: the same file, one ``OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))`` per
  override, then the same validation.

Run it from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/overrides.py                  # N = 100, 600, 2000; 3 repeats
    .venv/bin/python benchmarks/overrides.py --n 600 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "experiments" / "digits_mlp.yaml"


def labkit_load(overrides: list[str]) -> Any:
    from labkit.config import load_experiment

    return load_experiment(EXPERIMENT, overrides)


def naive_load(overrides: list[str]) -> Any:
    from omegaconf import OmegaConf

    from labkit.config import validate_experiment

    cfg: Any = OmegaConf.load(EXPERIMENT)
    OmegaConf.update(cfg, "task", {"kind": cfg.task.kind}, merge=False)
    for item in overrides:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([item]))
    return validate_experiment(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 600, 2000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    labkit_load([])  # imports and first-use costs out of the way
    naive_load([])
    for n in args.n:
        overrides = [f"tracking.tags.k{i}=v{i}" for i in range(n)]
        times: dict[str, list[float]] = {"labkit": [], "naive": []}
        for _ in range(args.repeat):  # interleaved: machine noise hits both alike
            for name, load in (("labkit", labkit_load), ("naive", naive_load)):
                start = time.perf_counter()
                exp = load(overrides)
                times[name].append(time.perf_counter() - start)
                assert len(exp.tracking.tags) == n
        ours, naive = statistics.median(times["labkit"]), statistics.median(times["naive"])
        print(
            f"{n:>5} overrides: labkit {ours:7.3f} s, naive {naive:7.3f} s "
            f"(medians of {args.repeat}); naive / labkit {naive / ours:5.1f}x"
        )


if __name__ == "__main__":
    main()
