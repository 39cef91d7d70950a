"""Start-up time of the ``labkit`` command, next to the cost of importing Lightning.

``labkit --help`` must answer at once on a login node, so the CLI imports no heavy library
(torch, Lightning, MLflow) until a command needs it. This script measures, in one run and
interleaved so that machine noise hits every command alike, the wall time of three
subprocesses:

* ``python -c "pass"``: the interpreter alone (the floor no command can beat);
* ``labkit --help``: the console script installed next to this interpreter;
* ``labkit submit ... --dry-run``: what a login node pays to validate an experiment and a site
  profile and render the sbatch script (everything ``labkit submit`` does but calling sbatch);
* ``python -c "import lightning"``: what every command would pay if the CLI imported Lightning.

It prints the median and the minimum of each, the ratio Lightning / ``labkit --help``, and
checks the targets (medians of ``labkit --help`` at most ``--target`` seconds, 0.25 by default,
and of ``labkit submit --dry-run`` at most ``--submit-target``, 1.0 by default). It then runs
both under ``python -X importtime`` and lists any of torch, lightning, pytorch_lightning and
mlflow among the imported modules.

Run it from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/cli_startup.py              # 15 interleaved repetitions
    .venv/bin/python benchmarks/cli_startup.py --repeat 30

Exit status: 0 when all checks pass, 1 when a command imports a heavy library, 2 when none
does but a median exceeds its target.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HEAVY = ("torch", "lightning", "pytorch_lightning", "mlflow")
REPO = Path(__file__).resolve().parents[1]
SUBMIT = [
    "submit",
    str(REPO / "experiments" / "digits_mlp.yaml"),
    "--cluster",
    str(REPO / "cluster" / "slurm-local.yaml"),
    "--dry-run",
]


def commands(python: str, labkit: str) -> dict[str, list[str]]:
    """The commands to time, by label, in the order they run within each repetition."""
    return {
        'python -c "pass"': [python, "-c", "pass"],
        "labkit --help": [labkit, "--help"],
        "labkit submit --dry-run": [labkit, *SUBMIT],
        'python -c "import lightning"': [python, "-c", "import lightning"],
    }


def wall_time(argv: Sequence[str]) -> float:
    """Seconds from starting ``argv`` to its exit; output discarded; a failure is an error."""
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def measure(cmds: dict[str, list[str]], repeat: int) -> dict[str, list[float]]:
    """Time every command ``repeat`` times, interleaved (A, B, C, A, B, C, ...).

    One uncounted round first loads the files into the page cache and writes ``.pyc`` files.
    """
    for argv in cmds.values():
        wall_time(argv)
    times: dict[str, list[float]] = {label: [] for label in cmds}
    for _ in range(repeat):
        for label, argv in cmds.items():
            times[label].append(wall_time(argv))
    return times


def heavy_imports(argv: Sequence[str]) -> tuple[list[str], int, float]:
    """Run ``argv`` (a ``python -X importtime ...`` command); return the heavy top-level packages
    it imported, the number of modules it imported and their cumulative import time (seconds)."""
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    modules: list[str] = []
    total_us = 0
    for line in out.stderr.splitlines():
        # "import time: <self us> | <cumulative us> | <indented module name>"
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|", 2)
        if not cumulative.strip().isdigit():  # the header line
            continue
        modules.append(name.strip())
        if not name.startswith("  "):  # top level: its cumulative time includes its children
            total_us += int(cumulative)
    found = sorted({m.split(".")[0] for m in modules} & set(HEAVY))
    return found, len(modules), total_us / 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("``", "`"))
    parser.add_argument("--repeat", type=int, default=15, help="interleaved repetitions (default 15)")
    parser.add_argument(
        "--target", type=float, default=0.25, help="limit for the median of `labkit --help` in s (0.25)"
    )
    parser.add_argument(
        "--submit-target", type=float, default=1.0, help="limit for `labkit submit --dry-run` in s (1.0)"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    python = sys.executable
    labkit = Path(python).parent / "labkit"
    if not labkit.is_file():
        print(f"error: no labkit console script next to {python} (pip install -e . first)", file=sys.stderr)
        return 1
    cmds = commands(python, str(labkit))

    print(f"python: {python}")
    print(f"labkit: {labkit}")
    print(f"{args.repeat} interleaved repetitions after one uncounted warm-up round\n")
    times = measure(cmds, args.repeat)

    width = max(len(label) for label in cmds)
    print(f"{'command':<{width}}  {'median s':>9}  {'min s':>7}  {'max s':>7}")
    for label, values in times.items():
        print(f"{label:<{width}}  {statistics.median(values):9.3f}  {min(values):7.3f}  {max(values):7.3f}")

    help_label, lightning_label, base_label = (
        "labkit --help",
        'python -c "import lightning"',
        'python -c "pass"',
    )
    help_median = statistics.median(times[help_label])
    ratio = statistics.median(times[lightning_label]) / help_median
    print(f"\nimport lightning / labkit --help (medians): {ratio:.1f}x")
    print(
        f"labkit --help above the bare interpreter (medians): "
        f"{help_median - statistics.median(times[base_label]):.3f} s"
    )
    target_ok = help_median <= args.target
    print(
        f"target: labkit --help median {help_median:.3f} s <= {args.target:.2f} s: "
        f"{'PASS' if target_ok else 'FAIL'}"
    )
    submit_median = statistics.median(times["labkit submit --dry-run"])
    submit_ok = submit_median <= args.submit_target
    print(
        f"target: labkit submit --dry-run median {submit_median:.3f} s <= {args.submit_target:.2f} s: "
        f"{'PASS' if submit_ok else 'FAIL'}"
    )

    heavy = False
    for label, cmd in (("labkit --help", ["--help"]), ("labkit submit --dry-run", SUBMIT)):
        found, n_modules, import_s = heavy_imports([python, "-X", "importtime", "-m", "labkit", *cmd])
        print(f"\n{label} under -X importtime: {n_modules} modules, {import_s:.3f} s of imports")
        if found:
            print(f"heavy imports: FAIL, it imports {', '.join(found)}")
            heavy = True
        else:
            print(f"heavy imports: PASS, none of {', '.join(HEAVY)}")
    if heavy:
        return 1
    return 0 if target_ok and submit_ok else 2


if __name__ == "__main__":
    sys.exit(main())
