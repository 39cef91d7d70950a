"""What ``labkit tune`` saves by pruning, and what coordinating worker processes costs.

Two measurements, run side by side in one invocation:

(a) **Pruning savings** on a physics search, described in ``benchmarks/tuning_pruning.py``:
    calo_pid with a search where bad configurations are common, 60 trials of 30 epochs, an
    unpruned study and one per pruner for each of 3 seeds, run as ``labkit tune worker`` runs
    them; the figure is the epochs a study needed to reach the unpruned study's best
    ``val_loss`` within 1 %, pruned / unpruned, median over the seeds (goal: at most 40 %). A
    replay of the unpruned studies' recorded curves through Optuna's pruners, over their
    settings, shows how labkit's defaults were chosen. It takes about an hour of CPU on two
    cores; ``--save DIR`` keeps every study (a rerun with the same DIR trains only what is
    missing) and ``--load DIR`` reports saved studies without training.

(b) **Coordination overhead.** A study is created with ``StudyHandle.create`` from
    ``digits_mlp_search`` (its experiment is only stored, never trained) and ``ensure_slots(N)``
    queues N WAITING trials (``--coord-trials``, 400). Then ``--coord-workers`` (8) processes
    (multiprocessing, spawn) open it with ``StudyHandle.load``, wait at a barrier, and loop:
    ``claim()``; stop if it returns None; ``handle.tell(trial, random value)`` (``study.tell``
    without its closing re-read). The objective does no training, so the times are the storage
    coordination alone. It reports the median and 95th percentile of claim + tell per trial, the
    trials per second over all workers, the number of *duplicate claims* (a trial number that
    two claims returned: must be 0) and whether exactly N trials ended COMPLETE with none
    WAITING or RUNNING. Goal: median claim + tell at most 50 ms, no duplicate claim. It runs on
    PostgreSQL (a throwaway cluster started with ``tests/services/pg-up.sh``, as the integration
    tests' fixture does, and stopped at the end; needs root) and, for comparison, with the same
    number of processes on a SQLite file. On each storage the same N trials are then run by a
    single worker process as a reference without contention (``--no-reference`` skips it); the
    time goal applies to the ``--coord-workers`` rows on PostgreSQL (on SQLite only where
    PostgreSQL was skipped), no duplicate to every row. It also counts the claim transactions of
    each claim (``SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1`` on the head of the WAITING queue,
    then ``UPDATE`` to RUNNING; one beyond the first means every WAITING row was being taken by
    other workers at that instant) and compares the claim time of the first and last tenth of
    the trials (a claim reads one row, so it should not depend on the queue's length).

Run it from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/tuning.py --save /tmp/prune    # both parts, default sizes
    .venv/bin/python benchmarks/tuning.py --skip-coordination --load /tmp/prune  # report again
    .venv/bin/python benchmarks/tuning.py --skip-pruning        # coordination only
    .venv/bin/python benchmarks/tuning.py --skip-postgres       # where PostgreSQL cannot run

Exit status: 0 when every goal is met; 1 when coordination went wrong (a duplicate claim, an
error, or not exactly N COMPLETE trials); 2 when a time or savings goal is missed.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the worker processes import only what coordination needs
    from multiprocessing.synchronize import Barrier


REPO = Path(__file__).resolve().parents[1]
SEARCH_YAML = REPO / "experiments" / "digits_mlp_search.yaml"  # (b) stores it, never trains it
SERVICES = REPO / "tests" / "services"
COORD_GOAL_S = 0.050  # median claim + tell per trial

_QUIET = (
    r".*does not have many workers.*",
    r".*The number of training batches .* is smaller than the logging interval.*",
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
)


def quiet() -> None:
    """Silence Lightning's and MLflow's chatter, as ``labkit tune`` workers' logs do not need it."""
    for pattern in _QUIET:
        warnings.filterwarnings("ignore", message=pattern)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric", "mlflow", "alembic", "optuna"):
        logging.getLogger(name).setLevel(logging.ERROR)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), interpolated between the closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


# ================================================================= (b) coordination overhead
def coord_worker(url: str, study: str, index: int, barrier: Barrier, out: str) -> None:
    """One worker process: claim and tell until no WAITING trial is left; results to ``out``."""
    quiet()
    from labkit.tuning import _study
    from labkit.tuning._study import StudyHandle

    handle = StudyHandle.load(study, url)
    # count claim()'s transactions on the head of the WAITING queue (WAITING -> RUNNING)
    attempts = [0]
    lock_head = _study._lock_head

    def counted(*args: Any, **kwargs: Any) -> tuple[int, int] | None:
        attempts[0] += 1
        return lock_head(*args, **kwargs)

    _study._lock_head = counted
    rng = random.Random(index)
    records: list[dict[str, Any]] = []
    errors: list[str] = []
    last_claim = 0.0
    barrier.wait()
    start = time.time()  # wall clock: comparable across processes
    while len(errors) < 20:
        before = attempts[0]
        t0 = time.perf_counter()
        try:
            claimed = handle.claim()
        except Exception as exc:  # noqa: BLE001 - recorded and reported, the loop goes on
            errors.append(f"claim: {type(exc).__name__}: {exc}"[:300])
            continue
        t1 = time.perf_counter()
        tries = attempts[0] - before
        if claimed is None:
            last_claim = t1 - t0
            break
        trial, trial_id = claimed
        error = None
        try:
            handle.tell(trial, rng.random())
        except Exception as exc:  # noqa: BLE001
            error = f"tell trial {trial.number}: {type(exc).__name__}: {exc}"[:300]
            errors.append(error)
        t2 = time.perf_counter()
        records.append(
            {
                "number": trial.number,
                "id": trial_id,
                "claim": t1 - t0,
                "tell": t2 - t1,
                "attempts": tries,
                "error": error,
            }
        )
    end = time.time()
    Path(out).write_text(
        json.dumps(
            {
                "worker": index,
                "pid": os.getpid(),
                "start": start,
                "end": end,
                "records": records,
                "errors": errors,
                "last_claim": last_claim,
            }
        )
    )


@dataclass
class CoordResult:
    label: str
    trials: int
    workers: int
    enqueue_seconds: float = 0.0
    wall_seconds: float = 0.0
    per_trial: list[float] = field(default_factory=list)  #: claim + tell
    claims: list[float] = field(default_factory=list)
    claims_by_number: dict[int, float] = field(default_factory=dict)  #: trial number -> claim s
    attempts: list[int] = field(default_factory=list)  #: claim transactions per claim
    tells: list[float] = field(default_factory=list)
    per_worker: list[int] = field(default_factory=list)
    duplicates: dict[int, int] = field(default_factory=dict)  #: trial number -> times claimed
    errors: list[str] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    crashed: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return (
            self.states.get("COMPLETE", 0) == self.trials
            and sum(self.states.values()) == self.trials
            and not self.states.get("WAITING")
            and not self.states.get("RUNNING")
        )

    @property
    def correct(self) -> bool:
        return self.exact and not self.duplicates and not self.errors and not self.crashed

    @property
    def median(self) -> float:
        return statistics.median(self.per_trial) if self.per_trial else float("nan")


def run_coordination(label: str, url: str, trials: int, workers: int, workdir: Path) -> CoordResult:
    from labkit.config import load_experiment
    from labkit.tuning._study import StudyHandle

    result = CoordResult(label=label, trials=trials, workers=workers)
    exp = load_experiment(
        SEARCH_YAML, (f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}", f"runs_root={workdir / 'runs'}")
    )
    study = f"coord-{label.split(maxsplit=1)[0].lower()}-{workers}w-{os.getpid()}"
    handle = StudyHandle.create(exp, study, url)
    start = time.perf_counter()
    handle.ensure_slots(trials)
    result.enqueue_seconds = time.perf_counter() - start

    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(workers)
    outs = [workdir / f"{study}-worker{i}.json" for i in range(workers)]
    procs = [
        ctx.Process(target=coord_worker, args=(url, study, i, barrier, str(out)), name=f"coord-{i}")
        for i, out in enumerate(outs)
    ]
    for p in procs:
        p.start()
    deadline = time.monotonic() + 600
    for p in procs:
        p.join(timeout=max(1.0, deadline - time.monotonic()))
        if p.is_alive():
            p.terminate()
            p.join()
            result.crashed.append(f"{p.name}: still running after 600 s, terminated")
        elif p.exitcode != 0:
            result.crashed.append(f"{p.name}: exit status {p.exitcode}")

    claimed: Counter[int] = Counter()
    starts, ends = [], []
    for out in outs:
        if not out.is_file():
            continue
        data = json.loads(out.read_text())
        starts.append(data["start"])
        ends.append(data["end"])
        result.per_worker.append(len(data["records"]))
        result.errors += data["errors"]
        for rec in data["records"]:
            claimed[rec["number"]] += 1
            result.claims.append(rec["claim"])
            result.claims_by_number[rec["number"]] = rec["claim"]
            result.attempts.append(rec["attempts"])
            result.tells.append(rec["tell"])
            result.per_trial.append(rec["claim"] + rec["tell"])
    result.duplicates = {n: c for n, c in sorted(claimed.items()) if c > 1}
    result.wall_seconds = (max(ends) - min(starts)) if starts else float("nan")
    result.states = dict(Counter(t.state.name for t in handle.study.get_trials(deepcopy=False)))
    return result


def report_coordination(results: list[CoordResult], goal_workers: int) -> tuple[bool, bool]:
    """Print the table; return (everything correct, time goal met by the ``goal_workers`` rows)."""
    print()
    print("(b) coordination overhead: dummy objective (claim, then tell a random value), no training")
    head = (
        f"{'storage':22s} {'workers':>7s} {'claims':>6s} {'median ms':>9s} {'p95 ms':>7s} "
        f"{'claim ms':>8s} {'tell ms':>7s} {'trials/s':>8s} {'dup.':>4s} final states"
    )
    print(head)
    for r in results:
        states = ", ".join(f"{k} {v}" for k, v in sorted(r.states.items()))
        if r.per_trial:
            print(
                f"{r.label:22s} {r.workers:7d} {len(r.per_trial):6d} {1000 * r.median:9.1f} "
                f"{1000 * percentile(r.per_trial, 95):7.1f} {1000 * statistics.median(r.claims):8.1f} "
                f"{1000 * statistics.median(r.tells):7.1f} {len(r.per_trial) / r.wall_seconds:8.1f} "
                f"{len(r.duplicates):4d} {states}"
            )
        else:
            print(f"{r.label:22s} {r.workers:7d} {0:6d} {'-':>9s} (no trial claimed) {states}")
    for r in results:
        print(
            f"  {r.label}: enqueue {r.trials} trials {r.enqueue_seconds:.2f} s; "
            f"measured {r.wall_seconds:.2f} s from the first worker's start to the last one's end; "
            f"trials per worker {sorted(r.per_worker)}"
        )
        if r.attempts:
            print(
                f"    claim transactions per claim: mean {statistics.mean(r.attempts):.2f}, "
                f"max {max(r.attempts)} (one beyond the first: every WAITING row was being taken)"
            )
        if len(r.claims_by_number) >= 20:
            ordered = [r.claims_by_number[n] for n in sorted(r.claims_by_number)]
            tenth = len(ordered) // 10
            print(
                f"    median claim of the first tenth of the trials (most still WAITING) "
                f"{1000 * statistics.median(ordered[:tenth]):.1f} ms, of the last tenth "
                f"{1000 * statistics.median(ordered[-tenth:]):.1f} ms"
            )
        print(
            f"    exactly {r.trials} COMPLETE, none WAITING/RUNNING: {'yes' if r.exact else 'NO'}; "
            f"duplicate claims: {len(r.duplicates)}"
            + (
                f" (trial: times claimed, the first 20: {dict(list(r.duplicates.items())[:20])})"
                if r.duplicates
                else ""
            )
        )
        for line in r.crashed + r.errors[:10]:
            print(f"    ! {line}")
        if len(r.errors) > 10:
            print(f"    ! ... {len(r.errors) - 10} more errors")
    correct = all(r.correct for r in results)
    measured = [r for r in results if r.workers == goal_workers]
    if any(not r.label.startswith("SQLite") for r in measured):  # the goal is PostgreSQL's
        measured = [r for r in measured if not r.label.startswith("SQLite")]
    fast = all(r.per_trial and r.median <= COORD_GOAL_S for r in measured)
    for r in measured:
        verdict_t = "PASS" if r.per_trial and r.median <= COORD_GOAL_S else "MISS"
        verdict_c = "PASS" if r.correct else "FAIL"
        print(
            f"  {r.label}: median claim + tell {1000 * r.median:.1f} ms "
            f"(goal <= {1000 * COORD_GOAL_S:.0f} ms): {verdict_t}; "
            f"no duplicate claim, exactly {r.trials} COMPLETE: {verdict_c}"
        )
    return correct, fast


# ================================================================= PostgreSQL, as the fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (tests/services/pg-up.sh); yields the optuna DB's URL.
    Raises RuntimeError with the reason when it cannot start."""
    if os.geteuid() != 0:
        raise RuntimeError("pg-up.sh needs root (it runs the server as user postgres)")
    # not under a 0700 temporary folder: the server runs as user postgres and must reach it
    state = Path(tempfile.mkdtemp(prefix="labkit-bench-pg-"))
    state.chmod(0o755)
    port = free_port()
    env = {**os.environ, "LABKIT_SERVICES_DIR": str(state), "LABKIT_PG_PORT": str(port)}
    try:
        up = subprocess.run(
            ["bash", str(SERVICES / "pg-up.sh")],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if up.returncode != 0:
            raise RuntimeError(f"pg-up.sh failed: {(up.stderr or up.stdout).strip()[-800:]}")
        yield f"postgresql+psycopg://exp:exp-pw@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run(
            ["bash", str(SERVICES / "pg-down.sh")], env=env, capture_output=True, timeout=120, check=False
        )
        shutil.rmtree(state, ignore_errors=True)


# ================================================================= main
def code_state() -> str:
    """The commit, and a digest of labkit/tuning as it is on disk (worker processes import it
    afresh: if it changes during the run, parent and workers may run different code)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((REPO / "labkit" / "tuning").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "labkit"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        head, dirty = "", ""
    changes = "with uncommitted changes in labkit/" if dirty else "clean"
    return f"commit {head or '?'} ({changes}), labkit/tuning sha256 {digest.hexdigest()[:12]}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0].replace("``", "`"))
    parser.add_argument("--trials", type=int, default=60, help="trials per pruning study (60)")
    parser.add_argument("--epochs", type=int, default=30, help="trainer.max_epochs of every trial (30)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="experiment seeds (1 2 3)")
    parser.add_argument(
        "--pruners",
        nargs="*",
        default=["asha"],
        choices=["asha", "median", "hyperband"],
        help="labkit pruners trained for real beside the unpruned study (asha; none: the unpruned only)",
    )
    parser.add_argument(
        "--cap", type=float, default=1.0, help="a pruned study's epochs at most, x the unpruned study's (1.0)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="studies trained at once, a process each (2)")
    parser.add_argument(
        "--save", type=Path, default=None, help="keep the studies' JSON here (and reuse them)"
    )
    parser.add_argument("--load", type=Path, default=None, help="report the studies saved here; train none")
    parser.add_argument(
        "--coord-trials", type=int, default=400, help="trials of the coordination study (400)"
    )
    parser.add_argument("--coord-workers", type=int, default=8, help="worker processes for (b) (8)")
    parser.add_argument("--no-reference", action="store_true", help="skip the 1-worker reference rows of (b)")
    parser.add_argument("--skip-pruning", action="store_true", help="skip (a), the training part")
    parser.add_argument("--skip-coordination", action="store_true", help="skip (b)")
    parser.add_argument("--skip-postgres", action="store_true", help="skip (b) on PostgreSQL")
    parser.add_argument("--skip-sqlite", action="store_true", help="skip (b) on SQLite")
    args = parser.parse_args(argv)
    quiet()

    load = os.getloadavg()
    print(
        f"labkit tuning benchmark: {os.cpu_count()} CPUs, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        flush=True,
    )
    state = code_state()
    print(f"labkit at {state}", flush=True)
    status = 0
    with tempfile.TemporaryDirectory(prefix="labkit-bench-tuning-") as tmp:
        workdir = Path(tmp)
        if not args.skip_pruning:
            import tuning_pruning

            if args.load is not None:
                studies = tuning_pruning.load_studies(args.load)
            else:
                save = args.save or workdir / "studies"
                count = len(args.seeds) * (1 + len(args.pruners))
                print(f"(a) training {count} studies, {args.jobs} at a time ...")
                studies = tuning_pruning.run_studies(
                    args.seeds, args.pruners, args.trials, args.epochs, args.jobs, workdir, save, args.cap
                )
            met = tuning_pruning.report(studies, args.epochs, args.pruners)
            if met is not True:
                status = 2
        if args.skip_coordination:
            return status

        results: list[CoordResult] = []
        counts = [args.coord_workers]
        if not args.no_reference and args.coord_workers != 1:
            counts.append(1)  # the same work without contention, for reference
        trials = args.coord_trials
        if args.skip_postgres:
            print("\n(b) PostgreSQL skipped: --skip-postgres")
        else:
            with ExitStack() as stack:
                try:
                    url = stack.enter_context(postgres())
                except RuntimeError as exc:
                    print(f"\n(b) PostgreSQL skipped: {exc}")
                else:
                    for n in counts:
                        print(f"\n(b) PostgreSQL: {n} worker(s) on {trials} trials ...", flush=True)
                        results.append(run_coordination("PostgreSQL 15", url, trials, n, workdir))
        if not args.skip_sqlite:
            url = f"sqlite:///{workdir / 'coord.db'}"
            for n in counts:
                print(f"(b) SQLite: {n} worker(s) on {trials} trials ...", flush=True)
                results.append(run_coordination("SQLite (comparison)", url, trials, n, workdir))
        if results:
            correct, fast = report_coordination(results, args.coord_workers)
            if not correct:
                status = 1
            elif not fast and status == 0:
                status = 2
    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if code_state() != state:
        print(f"WARNING: labkit changed during the run (now {code_state()}): the figures mix two versions")
    return status


if __name__ == "__main__":
    sys.exit(main())
