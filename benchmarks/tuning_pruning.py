"""Part (a) of ``benchmarks/tuning.py``: what pruning saves on a physics search (imported by it).

**The search.** ``experiments/calo_pid.yaml`` (electron/pion identification from calorimeter
showers, the MLP) as shipped, except: 10 000 simulated events instead of 20 000 (the benchmark
trains some 10 000 epochs), ``trainer.max_epochs`` fixed (``--epochs``, 30), early stopping off
(the pruner is what is measured), and the search below, where bad configurations are common, as
in a first sweep: SGD or Adam, a learning rate over five decades, weight decay over five decades,
three widths, dropout up to 0.6 and two batch sizes.
The sampler is labkit's default (TPE, multivariate, constant liar, 10 random start-up trials),
seeded with the experiment's seed.

**The studies.** For each seed (``--seeds``) an unpruned study (``pruner: none``) of
``--trials`` trials (60) and one study per pruner (``--pruners``) are run exactly as ``labkit tune
worker`` runs them (``StudyHandle`` + ``run_trial``, one worker, trials one after another), each
study in its own process with one torch thread, ``--jobs`` processes at a time. The seed sets the
simulated data, the initial weights and TPE. A pruned study runs the same 60 trials and, if it
has not reached the target (below) by then, goes on a trial at a time until it does or its trials
have trained ``--cap`` (1.0) times the unpruned study's epochs: what pruning is for is trying
more configurations with the same training. The epochs a trial trained are the number of
validation values it reported; every trial's curve is kept (``--save DIR`` writes them as JSON,
``--load DIR`` reports saved studies again without training).

**The figure.** The target is the unpruned study's best ``val_loss`` within 1 % (best x 1.01).
For each study, *epochs to target* counts the epochs of all its trials, in the order they ran, up
to and including the first COMPLETE trial whose value reaches the target. The ratio pruned /
unpruned is the share of training a pruned study needed to do as well; a pruned study that never
reaches the target within the cap has no ratio and counts as a miss. Goal: median over the
seeds <= 40 % (so a cap of 0.4 or more decides a miss as well as 1.0, sooner).

**Replay (how the defaults were chosen).** With the pruned study's sampler seeing pruned trials,
a real pruned study runs other configurations than the unpruned one, so one comparison mixes the
pruner's saving with the sampler's luck. The replay isolates the pruner: it feeds each unpruned
study's recorded curves, in order, to a fresh Optuna study with a candidate pruner (Optuna's own
pruner classes; ``report`` then ``should_prune`` each epoch, as labkit's callback does) and stops a
trial where that pruner would have. Candidates: the median pruner, successive halving (labkit's
``asha``) and Hyperband, over their main settings. It costs no training, so it can try many.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "experiments" / "calo_pid.yaml"
GOAL = 0.40  # epochs to target, pruned / unpruned, median over seeds
WITHIN = 0.01  # the target: the unpruned best within 1 %
EVENTS = 10_000  # simulated events (calo_pid ships 20 000): half the CPU-hours, the same physics

SEARCH: dict[str, Any] = {
    "metric": "val_loss",
    "direction": "minimize",
    "sampler": "tpe",
    "params": {
        "optimizer.name": {"type": "categorical", "choices": ["adam", "sgd"]},
        "optimizer.lr": {"type": "float", "low": 1.0e-5, "high": 1.0, "log": True},
        "optimizer.weight_decay": {"type": "float", "low": 1.0e-6, "high": 1.0e-1, "log": True},
        "model.hidden": {"type": "categorical", "choices": [[32], [64, 64], [128, 64]]},
        "model.dropout": {"type": "float", "low": 0.0, "high": 0.6},
        "data.batch_size": {"type": "categorical", "choices": [128, 512]},
    },
}


@dataclass
class Trial:
    number: int
    state: str  #: COMPLETE, PRUNED or FAIL
    value: float | None  #: the value told to Optuna (best val_loss), COMPLETE only
    curve: list[float]  #: val_loss after each epoch trained, in epoch order
    seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return len(self.curve)


@dataclass
class Study:
    seed: int
    pruner: str
    trials: list[Trial] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        return sum(t.epochs for t in self.trials)

    @property
    def best(self) -> float | None:
        values = [t.value for t in self.trials if t.value is not None]
        return min(values) if values else None

    def count(self, state: str) -> int:
        return sum(t.state == state for t in self.trials)

    def epochs_to(self, target: float) -> tuple[int, int] | None:
        """Epochs of all trials up to and including the first COMPLETE one with value <= target,
        and that trial's number; None if none reached it."""
        total = 0
        for t in self.trials:
            total += t.epochs
            if t.value is not None and t.value <= target:
                return total, t.number
        return None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Study:
        trials = [Trial(**t) for t in data.pop("trials")]
        return cls(trials=trials, **data)


def experiment(seed: int, pruner: str, trials: int, epochs: int, workdir: Path) -> Any:
    """calo_pid with the benchmark's search, a fixed number of epochs, tracked under workdir."""
    from labkit.config import load_experiment, validate_experiment

    exp = load_experiment(
        EXPERIMENT,
        (
            f"tracking.uri=sqlite:///{workdir / 'mlflow.db'}",
            f"runs_root={workdir / 'runs'}",
            f"trainer.max_epochs={epochs}",
            "trainer.early_stopping=null",
            f"data.events={EVENTS}",
            f"seed={seed}",
        ),
    )
    data = exp.model_dump(mode="json")
    data["search"] = {**SEARCH, "pruner": pruner, "trials": trials}
    data["name"] = f"bench_prune_{pruner}_s{seed}"
    data["tracking"].update(experiment=f"bench-pruning-{pruner}-s{seed}")
    return validate_experiment(data, source=f"{EXPERIMENT.name} (pruner {pruner}, seed {seed})")


def run_study(
    seed: int,
    pruner: str,
    trials: int,
    epochs: int,
    workdir: str,
    out: str,
    target: float | None = None,
    cap: int | None = None,
) -> None:
    """One study, in this (child) process: every trial as ``labkit tune worker`` runs it.

    A pruned study (``target`` and ``cap`` from its seed's unpruned study) runs ``trials``
    trials and then goes on, a trial at a time, until a COMPLETE trial reaches ``target`` or its
    trials have trained ``cap`` epochs: pruning's point is to try more configurations for the
    same training, so it may."""
    import torch

    torch.set_num_threads(1)
    import lightning.pytorch  # noqa: F401 - its import sets its loggers' levels: quiet them after
    from tuning import quiet  # the benchmark's warning filters

    from labkit.tuning._objective import run_trial
    from labkit.tuning._study import StudyHandle

    quiet()
    where = Path(workdir)
    where.mkdir(parents=True, exist_ok=True)
    exp = experiment(seed, pruner, trials, epochs, where)
    handle = StudyHandle.create(exp, f"prune-{pruner}-s{seed}", f"sqlite:///{where / 'optuna.db'}")
    handle.ensure_slots(trials)
    study = Study(seed=seed, pruner=pruner)
    begin = time.perf_counter()
    while True:
        start = time.perf_counter()
        if cap is not None and study.epochs >= cap:
            break
        claimed = handle.claim()
        if claimed is None:
            reached = target is not None and study.epochs_to(target) is not None
            if target is None or reached or cap is None:
                break
            handle.ensure_slots(len(study.trials) + 1)  # not there yet: one more trial
            continue
        trial, trial_id = claimed
        run_trial(handle, trial, trial_id, progress="none")
        frozen = handle.storage.get_trial(trial_id)
        study.trials.append(
            Trial(
                number=frozen.number,
                state=frozen.state.name,
                value=frozen.value if frozen.state.name == "COMPLETE" else None,
                curve=[v for _, v in sorted(frozen.intermediate_values.items())],
                seconds=time.perf_counter() - start,
                params={k: v for k, v in handle.values(frozen).items()},
            )
        )
        t = study.trials[-1]
        print(
            f"  seed {seed} {pruner:>9} trial {t.number:2d}: {t.state:8s} {t.epochs:2d} epochs "
            f"{t.seconds:5.1f} s" + (f"  val_loss {t.value:.4f}" if t.value is not None else ""),
            flush=True,
        )
    study.seconds = time.perf_counter() - begin
    Path(out).write_text(json.dumps(asdict(study)))


def run_studies(
    seeds: Sequence[int],
    pruners: Sequence[str],
    trials: int,
    epochs: int,
    jobs: int,
    workdir: Path,
    save: Path,
    cap: float,
) -> list[Study]:
    """Every (seed, pruner) study, ``jobs`` processes at a time (spawned: a fresh interpreter
    each, one torch thread): the unpruned ones first, then each pruned one with its seed's target
    and an epoch cap of ``cap`` x the unpruned study's epochs. Studies saved in ``save`` are
    not run again."""
    save.mkdir(parents=True, exist_ok=True)
    os.environ.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    ctx = mp.get_context("spawn")

    def path(seed: int, pruner: str) -> Path:
        return save / f"{pruner}-s{seed}.json"

    def start(pool: Any, seed: int, pruner: str, target: float | None, limit: int | None) -> Any:
        if path(seed, pruner).exists():
            print(f"  seed {seed} {pruner}: saved in {save}, not rerun", flush=True)
            return None
        where = str(workdir / f"{pruner}-s{seed}")
        return pool.apply_async(
            run_study, (seed, pruner, trials, epochs, where, str(path(seed, pruner)), target, limit)
        )

    with ctx.Pool(jobs, maxtasksperchild=1) as pool:
        unpruned = {s: start(pool, s, "none", None, None) for s in seeds}
        pending = []
        waiting = list(seeds)
        while waiting:  # a pruned study starts as soon as its seed's unpruned one has its best
            done = [s for s in waiting if unpruned[s] is None or unpruned[s].ready()]
            if not done:
                time.sleep(5)
                continue
            seed = done[0]
            waiting.remove(seed)
            if unpruned[seed] is not None:
                unpruned[seed].get()  # its error, if it failed
            base = Study.from_json(json.loads(path(seed, "none").read_text()))
            if base.best is None:
                print(f"  seed {seed}: the unpruned study has no COMPLETE trial; no pruned study", flush=True)
                continue
            target = base.best + WITHIN * abs(base.best)
            pending += [
                start(pool, seed, p, target, round(cap * base.epochs)) for p in pruners if p != "none"
            ]
        for job in pending:
            if job is not None:
                job.get()
    return load_studies(save)


def load_studies(save: Path) -> list[Study]:
    return [Study.from_json(json.loads(p.read_text())) for p in sorted(save.glob("*-s*.json"))]


# ----------------------------------------------------------------- replay
def candidates(epochs: int) -> dict[str, Callable[[], Any]]:
    """Pruner settings the replay tries: label -> a fresh Optuna pruner."""
    import optuna

    out: dict[str, Callable[[], Any]] = {}
    for startup in (3, 5, 10):
        for warmup in (1, 3, 5, 10):
            out[f"median startup={startup} warmup={warmup}"] = lambda s=startup, w=warmup: (
                optuna.pruners.MedianPruner(n_startup_trials=s, n_warmup_steps=w)
            )
    for low in (1, 2, 3, 5, 8):
        for rf in (2, 3, 4):
            out[f"asha min_resource={low} rf={rf}"] = lambda m=low, r=rf: (
                optuna.pruners.SuccessiveHalvingPruner(min_resource=m, reduction_factor=r)
            )
    for low in (1, 2, 3, 5):
        for rf in (2, 3, 4):
            out[f"hyperband min_resource={low} rf={rf}"] = lambda m=low, r=rf: optuna.pruners.HyperbandPruner(
                min_resource=m, max_resource=epochs, reduction_factor=r
            )
    return out


def replay(unpruned: Study, make: Callable[[], Any], label: str) -> Study:
    """The unpruned study's trials, in order, as the pruner would have cut them."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="minimize", pruner=make(), study_name=f"replay-s{unpruned.seed}")
    out = Study(seed=unpruned.seed, pruner=label)
    for t in unpruned.trials:
        trial = study.ask()
        cut = None
        for step, value in enumerate(t.curve):
            trial.report(value, step)
            if trial.should_prune():
                cut = step + 1
                break
        if cut is not None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            out.trials.append(Trial(t.number, "PRUNED", None, t.curve[:cut]))
        elif t.state == "COMPLETE":
            study.tell(trial, t.value)
            out.trials.append(Trial(t.number, "COMPLETE", t.value, t.curve))
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            out.trials.append(Trial(t.number, t.state, None, t.curve))
    return out


# ----------------------------------------------------------------- report
def ratio(pruned: Study, unpruned: Study) -> tuple[float | None, str]:
    """Epochs to target, pruned / unpruned, and a line that says how it was reached."""
    assert unpruned.best is not None
    target = unpruned.best + WITHIN * abs(unpruned.best)
    u = unpruned.epochs_to(target)
    p = pruned.epochs_to(target)
    assert u is not None
    if p is None:
        return None, f"never reached {target:.4f} (best {pruned.best})"
    return p[0] / u[0], f"{p[0]} / {u[0]} epochs (trial {p[1]} / {u[1]})"


def median_ratio(ratios: Sequence[float | None]) -> float:
    """Median with a missed target counted as infinitely many epochs."""
    return statistics.median(r if r is not None else float("inf") for r in ratios)


def report(studies: list[Study], epochs: int, real_pruners: Sequence[str]) -> bool | None:
    """Print the replay table and the real studies' figures; whether each real pruner named
    first in ``real_pruners`` met the goal (None: nothing to judge)."""
    unpruned = {s.seed: s for s in studies if s.pruner == "none" and s.best is not None}
    if not unpruned:
        print("(a) no unpruned study with a COMPLETE trial: nothing to compare")
        return None
    seeds = sorted(unpruned)
    print(f"\n(a) pruning on calo_pid, seeds {seeds}, {epochs} epochs a trial at most")
    for seed in seeds:
        u = unpruned[seed]
        per = ", ".join(str(t.epochs) for t in u.trials if t.epochs != epochs) or "-"
        print(
            f"  unpruned seed {seed}: {len(u.trials)} trials, best val_loss {u.best:.4f}, "
            f"{u.epochs} epochs, {u.count('FAIL')} failed (epochs of those short of {epochs}: {per}), "
            f"{u.seconds / 60:.1f} min"
        )
    print("\nreplay on the unpruned studies' curves (same configurations; no training):")
    print(f"  {'pruner':36s} " + " ".join(f"{'seed ' + str(s):>8s}" for s in seeds) + "   median  all epochs")
    table = []
    for label, make in candidates(epochs).items():
        replays = [replay(unpruned[s], make, label) for s in seeds]
        ratios = [ratio(r, unpruned[r.seed])[0] for r in replays]
        share = statistics.median(r.epochs / unpruned[r.seed].epochs for r in replays)
        table.append((median_ratio(ratios), label, ratios, share))
    for med, label, ratios, share in sorted(table, key=lambda row: (row[0], row[3])):
        cells = " ".join(f"{r:8.0%}" if r is not None else f"{'missed':>8s}" for r in ratios)
        shown = f"{med:6.0%}" if math.isfinite(med) else "missed"
        print(f"  {label:36s} {cells}   {shown:>6s}  {share:9.0%}")
    met: bool | None = None
    print("\nreal studies (labkit tune's own pruner; TPE sees the pruned trials):")
    for name in real_pruners:
        runs = [s for s in studies if s.pruner == name and s.seed in unpruned]
        if not runs:
            continue
        ratios = []
        for s in sorted(runs, key=lambda s: s.seed):
            r, how = ratio(s, unpruned[s.seed])
            ratios.append(r)
            shown = f"{r:.0%}" if r is not None else "missed"
            print(
                f"  {name:9s} seed {s.seed}: epochs to target {shown:>6s} ({how}); "
                f"{len(s.trials)} trials, {s.count('PRUNED')} pruned, "
                f"{s.epochs} epochs in all ({s.epochs / unpruned[s.seed].epochs:.0%} of unpruned), "
                f"{s.seconds / 60:.1f} min ({s.seconds / unpruned[s.seed].seconds:.0%})"
            )
        med = median_ratio(ratios)
        ok = med <= GOAL
        shown_med = f"{med:.0%}" if math.isfinite(med) else "missed (most seeds never reached the target)"
        print(
            f"  {name}: median epochs to target {shown_med} (goal <= {GOAL:.0%}): {'PASS' if ok else 'MISS'}"
        )
        if met is None:
            met = ok
    return met
