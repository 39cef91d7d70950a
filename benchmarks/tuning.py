"""What ``labkit tune`` saves by pruning, and what coordinating worker processes costs.

Two measurements, run side by side in one invocation:

(a) **Pruning savings.** Two studies of the same search, run in this process with
    ``StudyHandle`` and ``run_trial`` (``progress="none"``) as ``labkit tune worker`` runs them:
    the digits MLP of ``experiments/digits_mlp_search.yaml`` with ``optimizer.lr`` log-uniform
    in [1e-4, 1e-1] and ``model.hidden`` one of [16, 16], [64, 64], [128, 64]; the number of
    epochs is fixed (``--epochs``, 10 by default) instead of searched. Both use TPE with the
    same seed and the same number of trials (``--trials``, 20); one uses labkit's ``median``
    pruner, the other ``none``. Trials of the two studies alternate (one of each in turn) after
    one uncounted warm-up run, so load on the machine hits both alike. Runs are tracked in a
    temporary SQLite MLflow store; run directories go to a temporary folder.

    The epochs a trial trained are the number of validation values it reported
    (``len(trial.intermediate_values)``). The key figure is *epochs to target*: the target is
    the worse of the two studies' best values (the larger ``val_loss``), which both studies
    reached; for each study, count the epochs of all trials from the first one up to and
    including the first trial that finished COMPLETE with a value at least as good as the
    target. The ratio pruned / unpruned is the share of training the pruned study needed to get
    as good a result. Goal: at most 40 %.

(b) **Coordination overhead.** A study is created with ``StudyHandle.create`` from
    ``digits_mlp_search`` (its experiment is only stored, never trained) and
    ``ensure_slots(N)`` queues N WAITING trials (``--coord-trials``, 400). Then
    ``--coord-workers`` (8) processes (multiprocessing, spawn) open it with
    ``StudyHandle.load``, wait at a barrier, and loop: ``claim()``; stop if it returns None;
    ``study.tell(trial, random value)``. The objective does no training, so the times are the
    storage coordination alone. It reports the median and 95th percentile of claim + tell per
    trial, the trials per second over all workers, the number of *duplicate claims* (a trial
    number that two claims returned: must be 0) and whether exactly N trials ended COMPLETE with
    none WAITING or RUNNING. Goal: median claim + tell at most 50 ms, no duplicate claim. It
    runs on PostgreSQL (a throwaway cluster started with ``tests/services/pg-up.sh``, as the
    integration tests' fixture does, and stopped at the end; needs root) and, for comparison,
    with the same number of processes on a SQLite file. On each storage the same N trials are
    then run by a single worker process as a reference without contention (``--no-reference``
    skips it); the time goal applies to the ``--coord-workers`` rows on PostgreSQL (on SQLite
    only where PostgreSQL was skipped), no duplicate to every row. It also counts the claim
    transactions of each claim (``SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1`` on the head of the
    WAITING queue, then ``UPDATE`` to RUNNING; one beyond the first means every WAITING row was
    being taken by other workers at that instant) and compares the claim time of the first and
    last tenth of the trials (a claim reads one row, so it should not depend on the queue's length).

Run it from the repository root with the project's virtualenv::

    .venv/bin/python benchmarks/tuning.py                      # both parts, default sizes
    .venv/bin/python benchmarks/tuning.py --trials 30 --seed 7  # another pruning comparison
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

    from labkit.config import Experiment

REPO = Path(__file__).resolve().parents[1]
SEARCH_YAML = REPO / "experiments" / "digits_mlp_search.yaml"
SERVICES = REPO / "tests" / "services"
PRUNING_GOAL = 0.40  # epochs to target, pruned / unpruned
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


# ================================================================= (a) pruning savings
@dataclass(frozen=True)
class TrialRow:
    number: int
    state: str  #: COMPLETE, PRUNED or FAIL
    value: float | None  #: the value told to Optuna (the trial's best val_loss), COMPLETE only
    epochs: int  #: validation values reported = epochs trained
    seconds: float  #: wall time of claim + run_trial
    params: dict[str, Any]


@dataclass
class StudyRun:
    label: str
    pruner: str
    rows: list[TrialRow] = field(default_factory=list)

    @property
    def wall_seconds(self) -> float:
        return sum(r.seconds for r in self.rows)

    @property
    def epochs(self) -> int:
        return sum(r.epochs for r in self.rows)

    @property
    def best(self) -> float | None:
        values = [r.value for r in self.rows if r.value is not None]
        return min(values) if values else None

    def count(self, state: str) -> int:
        return sum(r.state == state for r in self.rows)

    def epochs_to(self, target: float) -> tuple[int, int] | None:
        """Epochs of all trials up to and including the first COMPLETE one with value <= target,
        and that trial's number; None if no trial reached it."""
        total = 0
        for row in self.rows:  # in trial order: the order they ran in
            total += row.epochs
            if row.value is not None and row.value <= target:
                return total, row.number
        return None


def search_experiment(pruner: str, trials: int, epochs: int, seed: int | None, workdir: Path) -> Experiment:
    """digits_mlp_search with a fixed number of epochs, the given pruner, tracked under workdir."""
    from labkit.config import load_experiment, validate_experiment

    exp = load_experiment(
        SEARCH_YAML,
        (
            f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}",
            f"runs_root={workdir / 'runs'}",
            f"trainer.max_epochs={epochs}",
            "trainer.early_stopping=null",
        ),
    )
    data = exp.model_dump(mode="json")
    assert data["search"]["direction"] == "minimize", "the figures below assume minimize"
    data["search"]["params"].pop("trainer.max_epochs")
    data["search"].update(pruner=pruner, trials=trials, sampler="tpe")
    data["name"] = f"bench_prune_{pruner}"
    data["tracking"].update(experiment=f"bench-tuning-{pruner}", run_name=f"prune-{pruner}")
    if seed is not None:
        data["seed"] = seed
    return validate_experiment(data, source=f"{SEARCH_YAML.name} (pruner {pruner})")


def warm_up(workdir: Path) -> float:
    """One uncounted 1-epoch run: imports, the MLflow store's tables, lazy initialisation."""
    import labkit
    from labkit.config import load_experiment

    start = time.perf_counter()
    exp = load_experiment(
        SEARCH_YAML,
        (
            f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}",
            f"runs_root={workdir / 'runs'}",
            "trainer.max_epochs=1",
            "tracking.experiment=bench-tuning-warmup",
            "search=null",
        ),
    )
    labkit.run(exp, progress="none")
    return time.perf_counter() - start


def run_pruning(
    trials: int, epochs: int, seed: int | None, workdir: Path
) -> tuple[StudyRun, StudyRun, float]:
    import lightning.pytorch  # noqa: F401 - its import sets its loggers' levels: quiet them after

    from labkit.tuning._objective import run_trial
    from labkit.tuning._study import StudyHandle

    quiet()
    warm = warm_up(workdir)
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    runs = {p: StudyRun(label=f"pruner {p}", pruner=p) for p in ("median", "none")}
    handles = {}
    for pruner in runs:
        exp = search_experiment(pruner, trials, epochs, seed, workdir)
        handles[pruner] = StudyHandle.create(exp, f"prune-{pruner}", storage)
        handles[pruner].ensure_slots(trials)
    active = list(runs)
    while active:
        for pruner in list(active):
            handle = handles[pruner]
            start = time.perf_counter()
            claimed = handle.claim()
            if claimed is None:
                active.remove(pruner)
                continue
            trial, trial_id = claimed
            run_trial(handle, trial, trial_id, progress="none")
            seconds = time.perf_counter() - start
            frozen = handle.storage.get_trial(trial_id)
            runs[pruner].rows.append(
                TrialRow(
                    number=frozen.number,
                    state=frozen.state.name,
                    value=frozen.value if frozen.state.name == "COMPLETE" else None,
                    epochs=len(frozen.intermediate_values),
                    seconds=seconds,
                    params=handle.values(frozen),
                )
            )
            row = runs[pruner].rows[-1]
            shown = {"COMPLETE": "best val_loss", "PRUNED": "last val_loss"}.get(row.state)
            values = list(frozen.intermediate_values.values())
            value = row.value if row.state == "COMPLETE" else (values[-1] if values else None)
            lr, hidden = row.params.get("optimizer.lr"), row.params.get("model.hidden")
            print(
                f"  {pruner:>6} trial {row.number:2d}: lr {lr:.2e} hidden {hidden!s:9s} {row.state:8s} "
                f"{row.epochs:2d} epochs {row.seconds:5.1f} s"
                + (f"  {shown} {value:.4f}" if shown and value is not None else ""),
                flush=True,
            )
    return runs["median"], runs["none"], warm


def pruning_floor(epochs: int, number: int) -> tuple[int, int, int] | None:
    """Fewest epochs in which a study with labkit's median pruner can have finished trial
    ``number`` (all trials before it pruned as early as the pruner allows, the startup trials
    and trial ``number`` itself trained in full): (epochs, startup trials, least epochs of a
    pruned trial). None if the pruner's settings cannot be read."""
    from labkit.config import load_experiment
    from labkit.tuning._optuna import make_pruner

    exp = load_experiment(SEARCH_YAML, ("search.pruner=median",))
    assert exp.search is not None
    pruner = make_pruner(exp.search)
    startup = getattr(pruner, "_n_startup_trials", None)
    warmup = getattr(pruner, "_n_warmup_steps", None)
    if not isinstance(startup, int) or not isinstance(warmup, int):
        return None
    least = min(epochs, warmup + 1)  # steps are 0-based epochs; pruning starts after step `warmup`
    before = range(number)
    total = sum(epochs if i < startup else least for i in before) + epochs
    return total, startup, least


def report_pruning(pruned: StudyRun, unpruned: StudyRun, epochs: int, warm: float) -> bool | None:
    """Print the comparison; return whether the goal is met (None if it cannot be computed)."""
    print()
    print(f"(a) pruning savings: {len(pruned.rows)} trials each, {epochs} epochs a trial at most")
    print(f"    (warm-up run, not counted: {warm:.1f} s)")
    print(
        f"{'study':16s} {'best val_loss':>13s} {'complete':>8s} {'pruned':>6s} {'failed':>6s} "
        f"{'epochs':>6s} {'wall s':>7s}"
    )
    for s in (pruned, unpruned):
        best = "-" if s.best is None else f"{s.best:.4f}"
        print(
            f"{s.label:16s} {best:>13s} {s.count('COMPLETE'):8d} {s.count('PRUNED'):6d} "
            f"{s.count('FAIL'):6d} {s.epochs:6d} {s.wall_seconds:7.1f}"
        )
    for s in (pruned, unpruned):
        print(f"  epochs per trial, {s.label}: {' '.join(str(r.epochs) for r in s.rows)}")
    if unpruned.epochs and unpruned.wall_seconds:
        print(
            f"total epochs, pruned / unpruned: {pruned.epochs / unpruned.epochs:.0%}; "
            f"wall time: {pruned.wall_seconds / unpruned.wall_seconds:.0%}"
        )
    if pruned.best is None or unpruned.best is None:
        print("epochs to target: cannot compute, a study has no COMPLETE trial")
        return None
    target = max(pruned.best, unpruned.best)
    reached_p, reached_u = pruned.epochs_to(target), unpruned.epochs_to(target)
    assert reached_p is not None and reached_u is not None  # each study's best is <= target
    ratio = reached_p[0] / reached_u[0]
    print(
        f"target = the worse of the two best val_loss values = {target:.4f} (both studies reached it).\n"
        f"epochs to target = epochs of all trials up to and including the first COMPLETE trial\n"
        f"  whose val_loss <= target, in the order the trials ran:\n"
        f"  pruned: {reached_p[0]} epochs (trial {reached_p[1]}); "
        f"unpruned: {reached_u[0]} epochs (trial {reached_u[1]})"
    )
    floor = pruning_floor(epochs, reached_p[1])
    if floor is not None:
        print(
            f"  the least the pruned study could have spent to reach trial {reached_p[1]} with labkit's "
            f"median pruner\n  ({floor[1]} startup trials never pruned, a pruned trial trains >= "
            f"{floor[2]} epochs): {floor[0]} epochs = {floor[0] / reached_u[0]:.0%} of the unpruned figure"
        )
    met = ratio <= PRUNING_GOAL
    print(
        f"epochs to target, pruned / unpruned: {ratio:.0%} "
        f"(goal <= {PRUNING_GOAL:.0%}): {'PASS' if met else 'MISS'}"
    )
    return met


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
            handle.study.tell(trial, rng.random())
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
    parser.add_argument("--trials", type=int, default=20, help="trials per pruning study (20)")
    parser.add_argument("--epochs", type=int, default=10, help="trainer.max_epochs of every trial (10)")
    parser.add_argument("--seed", type=int, default=None, help="experiment and TPE seed (the file's: 42)")
    parser.add_argument(
        "--coord-trials", type=int, default=400, help="trials of the coordination study (400)"
    )
    parser.add_argument("--coord-workers", type=int, default=8, help="worker processes for (b) (8)")
    parser.add_argument("--no-reference", action="store_true", help="skip the 1-worker reference rows of (b)")
    parser.add_argument("--skip-pruning", action="store_true", help="skip (a), the training part")
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
            print("(a) running both pruning studies, one trial of each in turn ...", flush=True)
            pruned, unpruned, warm = run_pruning(args.trials, args.epochs, args.seed, workdir)
            met = report_pruning(pruned, unpruned, args.epochs, warm)
            if met is not True:
                status = 2

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
