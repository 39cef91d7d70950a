"""``labkit compare`` at the scale of a group's server, against a naive ``mlflow.search_runs``.

Seeds an MLflow server on PostgreSQL with RUNS runs × 20 params × 10 metrics (one experiment,
written straight into the database through MLflow's own SQLAlchemy store: seeding is not what is
measured), then times, side by side in one run, in fresh processes as a user would call them:

- naive: ``python -c "import mlflow; mlflow.search_runs(experiment_names=[...])"`` (the whole
  process, and the ``search_runs`` call alone);
- labkit cold: ``labkit compare -e scale --format csv`` with an empty cache;
- labkit warm: the same again (the cache is refreshed incrementally: one request for runs
  started since the last refresh).

Goal: warm ≤ 1 s and ≤ ⅕ of the naive time. Needs root for the throwaway PostgreSQL (as the
integration tests; tests/services/pg-up.sh). Run from the repository root::

    .venv/bin/python benchmarks/compare_scale.py              # 10 000 runs
    .venv/bin/python benchmarks/compare_scale.py --runs 2000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _servers import free_port, mlflow_server  # benchmarks/_servers.py, beside this script

REPO = Path(__file__).resolve().parents[1]
SERVICES = REPO / "tests" / "services"
PY = sys.executable


@contextmanager
def postgres() -> Iterator[str]:
    state = Path(tempfile.mkdtemp(prefix="labkit-bench-pg-"))
    state.chmod(0o755)
    port = free_port()
    env = {**os.environ, "LABKIT_SERVICES_DIR": str(state), "LABKIT_PG_PORT": str(port)}
    subprocess.run(
        ["bash", str(SERVICES / "pg-up.sh")], env=env, check=True, capture_output=True, timeout=600
    )
    try:
        yield f"postgresql+psycopg://exp:exp-pw@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run(
            ["bash", str(SERVICES / "pg-down.sh")], check=False, env=env, capture_output=True, timeout=120
        )
        shutil.rmtree(state, ignore_errors=True)


def seed(backend: str, folder: Path, runs: int) -> None:
    """RUNS finished runs with 20 params, 10 metrics and labkit's tags, straight into the store."""
    import random

    from mlflow.entities import Metric, Param, RunStatus, RunTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(backend, str(folder / "artifacts"))
    exp = store.create_experiment("scale")
    rng = random.Random(1)
    span = 60 * 86_400_000  # the runs started over the last 60 days, the newest an hour ago
    first = int(time.time() * 1000) - span
    users = ["ana", "bo", "chen", "dara", "eli"]
    for i in range(runs):
        start = first + (span - 3_600_000) * i // runs
        tags = [RunTag("mlflow.user", users[i % 5]), RunTag("labkit.task", "classification")]
        run = store.create_run(exp, users[i % 5], start, tags, f"run{i}")
        params = [Param(f"p{j:02d}", str(rng.choice([1, 2, 4, 8]) if j < 4 else j)) for j in range(19)]
        params.append(Param("seed", str(i % 3)))
        metrics = [
            Metric("test_acc", rng.random(), start + 500, 0),
            Metric("test_auc", rng.random(), start, 0),
        ]
        metrics += [Metric(f"m{j}", rng.random(), start, 0) for j in range(8)]
        store.log_batch(run.info.run_id, metrics=metrics, params=params, tags=[])
        store.update_run_info(run.info.run_id, RunStatus.FINISHED, start + 900, None)
        if (i + 1) % 1000 == 0:
            print(f"  seeded {i + 1} runs", flush=True)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=1800)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return elapsed, out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5, help="warm and naive timings (median)")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"compare_scale: {args.runs} runs x 20 params x 10 metrics, {os.cpu_count()} CPUs, "
          f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="labkit-bench-") as tmp, postgres() as backend:
        folder = Path(tmp)
        t0 = time.perf_counter()
        seed(backend, folder, args.runs)
        print(f"  seeding took {time.perf_counter() - t0:.0f} s")
        with mlflow_server(folder, backend) as url:
            env = {**os.environ, "LABKIT_CACHE_DIR": str(folder / "cache"), "PYTHONWARNINGS": "ignore"}
            naive_code = (
                "import time; t = time.perf_counter(); import mlflow; t1 = time.perf_counter(); "
                "df = mlflow.search_runs(experiment_names=['scale']); "
                "print(len(df), time.perf_counter() - t1, t1 - t)"
            )
            labkit = [PY, "-m", "labkit", "compare", "-e", "scale", "--format", "csv", "--tracking-uri", url]
            naive, calls = [], []
            cold, stdout = timed(labkit, env)
            rows = len(stdout.splitlines()) - 1
            warm = []
            for _ in range(args.repeat):  # interleaved: the machine's load hits both alike
                elapsed, out = timed([PY, "-c", naive_code], {**env, "MLFLOW_TRACKING_URI": url})
                n, call, _ = out.split()
                assert int(n) == args.runs, (n, args.runs)
                naive.append(elapsed)
                calls.append(float(call))
                warm.append(timed(labkit, env)[0])
    naive_s, warm_s = statistics.median(naive), statistics.median(warm)
    print(f"  naive mlflow.search_runs: {naive_s:.2f} s per process (median of {args.repeat}); "
          f"the call alone {statistics.median(calls):.2f} s")  # fmt: skip
    print(f"  labkit compare cold (empty cache): {cold:.2f} s ({rows} rows, seeds grouped)")
    print(f"  labkit compare warm: {warm_s:.2f} s (median of {args.repeat}; min {min(warm):.2f} s)")
    print(
        f"  warm / naive: {warm_s / naive_s:.3f} (goal <= 0.2); warm <= 1 s: {'yes' if warm_s <= 1 else 'NO'}"
    )
    print(f"  cold / naive: {cold / naive_s:.2f}")


if __name__ == "__main__":
    main()
