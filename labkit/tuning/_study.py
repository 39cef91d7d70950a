"""A study with a fixed budget of trials that any number of worker processes share.

Exactly N trials: the coordinator enqueues N WAITING trials once (``ensure_slots``); workers only
*claim* WAITING trials (a compare-and-set in the storage) and never create new ones, so racing
workers cannot overshoot. A trial whose worker died (no heartbeat for GRACE_SECONDS) is failed
and retried by Optuna's RetryHeartbeatStaleTrialCallback as a new WAITING trial that *supersedes* it:
the budget counts the retry, not the dead attempt.
"""

from __future__ import annotations

import fcntl
import json
import random
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from labkit.config import Experiment, redact_uri, validate_experiment
from labkit.errors import ConfigError
from labkit.tuning._optuna import Heartbeat, make_pruner, make_sampler, open_storage

__all__ = ["MAX_STUDY_NAME", "SLURM_JOB", "StudyHandle", "Tally", "check_study_name"]

#: the longest study name (it names a folder under the runs root and a row in the storage)
MAX_STUDY_NAME = 200

_EXPERIMENT = "labkit.experiment"  # study user attr: the resolved experiment (JSON)
_PARENT = "labkit.parent_run_key"  # study user attr: the run key of the study's MLflow run
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
SLURM_JOB = "labkit.slurm_job"  # trial user attr: the SLURM job (array task) running it


def check_study_name(name: str) -> None:
    """ConfigError unless ``name`` (``--study``) can name a study and its folder: not empty, at most
    :data:`MAX_STUDY_NAME` characters, one line without control characters or path separators."""
    shown = repr(name if len(name) <= 60 else name[:57] + "...")
    problem = ""
    if not name.strip():
        problem = "is empty"
    elif len(name) > MAX_STUDY_NAME:
        problem = f"is {len(name):,} characters long; at most {MAX_STUDY_NAME} are allowed"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        problem = "holds a control character (a newline, a tab, ...)"
    elif "/" in name or "\\" in name or name in (".", ".."):
        problem = "names a path (a study name becomes a folder name: no / or \\, not . or ..)"
    if problem:
        raise ConfigError(f"--study {shown}: the study name {problem}; e.g. --study digits-lr-search")


@dataclass(frozen=True)
class Tally:
    """Trials by state, not counting attempts superseded by a retry."""

    counts: dict[str, int] = field(default_factory=dict)
    superseded: int = 0

    @property
    def finished(self) -> int:
        return sum(self.counts.get(s.name, 0) for s in _FINISHED)

    @property
    def open(self) -> int:
        return self.counts.get("WAITING", 0) + self.counts.get("RUNNING", 0)


class StudyHandle:
    """An Optuna study plus what labkit keeps with it (the experiment, the MLflow parent run)."""

    def __init__(
        self, study: optuna.Study, storage: optuna.storages.BaseStorage, heartbeat: Heartbeat | None = None
    ) -> None:
        self.study = study
        self.storage = storage
        self.timing = heartbeat or Heartbeat()  #: how often a trial beats, how long it may be silent
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self._experiment: Experiment | None = None

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def create(
        cls, exp: Experiment, name: str, storage_url: str, *, heartbeat: Heartbeat | None = None
    ) -> StudyHandle:
        """Create the study, or load it if it exists (resuming); the experiment is stored in it."""
        assert exp.search is not None
        check_study_name(name)
        storage = open_storage(storage_url, heartbeat)
        direction = exp.search.direction
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction=direction,
            sampler=make_sampler(exp.search, exp.seed),
            pruner=make_pruner(exp.search),
            load_if_exists=True,
        )
        if study.direction.name.lower() != direction:
            raise ConfigError(
                f"study {name!r} exists with direction {study.direction.name.lower()}, but search.direction "
                f"is {direction}: use another --study name"
            )
        stored = study.user_attrs.get(_EXPERIMENT)
        resolved = exp.model_dump(mode="json")
        if stored is not None:
            before = {k: v for k, v in json.loads(stored)["search"].items() if k != "trials"}
            now = {k: v for k, v in resolved["search"].items() if k != "trials"}
            if before != now:
                changed = sorted(k for k in now if before.get(k) != now[k])
                raise ConfigError(
                    f"study {name!r} exists with another search ({', '.join('search.' + k for k in changed)} "
                    "differ): use another --study name"
                )
        study.set_user_attr(_EXPERIMENT, json.dumps(resolved))
        return cls(study, storage, heartbeat)

    @classmethod
    def load(cls, name: str, storage_url: str, *, heartbeat: Heartbeat | None = None) -> StudyHandle:
        """Open an existing study (workers, ``tune status``, ``tune best``)."""
        check_study_name(name)
        if (
            storage_url.startswith("sqlite:///")
            and not Path(storage_url.removeprefix("sqlite:///")).is_file()
        ):
            raise ConfigError(f"--storage: no study database at {storage_url} (run labkit tune first)")
        storage = open_storage(storage_url, heartbeat)
        try:
            summaries = optuna.get_all_study_names(storage)
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"--storage: cannot read studies: {exc}") from None
        if name not in summaries:
            from labkit.errors import did_you_mean

            raise ConfigError(
                f"--study: no study {name!r} in {redact_uri(storage_url)}{did_you_mean(name, summaries)}; "
                f"studies there: {', '.join(summaries) or 'none'}"
            )
        study = optuna.load_study(study_name=name, storage=storage)
        handle = cls(study, storage, heartbeat)
        exp = handle.experiment()
        assert exp.search is not None
        study.sampler = make_sampler(exp.search, exp.seed)
        study.pruner = make_pruner(exp.search)
        return handle

    def experiment(self) -> Experiment:
        """The experiment the study searches (with its ``search`` section); read once."""
        if self._experiment is None:
            stored = self.study.user_attrs.get(_EXPERIMENT)
            if stored is None:
                raise ConfigError(f"study {self.study.study_name!r} was not made by labkit tune")
            self._experiment = validate_experiment(
                json.loads(stored), source=f"study {self.study.study_name}"
            )
        return self._experiment

    @property
    def parent_run_key(self) -> str | None:
        """The run key of the study's own run (its spool is in the study folder)."""
        value = self.study.user_attrs.get(_PARENT)
        return str(value) if value else None

    @parent_run_key.setter
    def parent_run_key(self, run_key: str) -> None:
        self.study.set_user_attr(_PARENT, run_key)

    # -- budget --------------------------------------------------------------------------------
    def trials(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False)

    def tally(self) -> Tally:
        trials = self.trials()
        retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
        counts: dict[str, int] = {}
        superseded = 0
        for t in trials:
            if t.state == TrialState.FAIL and t.number in retried:
                superseded += 1
                continue
            counts[t.state.name] = counts.get(t.state.name, 0) + 1
        return Tally(counts, superseded)

    def ensure_slots(self, total: int) -> int:
        """Enqueue WAITING trials until finished + running + waiting == ``total``; return how many."""
        tally = self.tally()
        missing = max(0, total - (tally.finished + tally.open))
        for _ in range(missing):  # empty WAITING trials: the sampler chooses their values when claimed
            self.study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING))
        return missing

    def claim(self) -> tuple[optuna.Trial, int] | None:
        """Take one WAITING trial for this process: (trial, its storage id), or None if none is left."""
        self.fail_stale()
        with self._claim_lock():
            waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
            random.shuffle(waiting)  # workers that all tried the lowest number first kept colliding
            for frozen in waiting:
                trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, frozen.number)
                try:
                    if not self.storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                        continue
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue  # another worker took it (and finished it) first
                self._seed_for(frozen.number)
                return optuna.Trial(self.study, trial_id), trial_id
        return None

    def reclaim(self, job: str) -> tuple[optuna.Trial, int] | None:
        """The RUNNING trial that SLURM job ``job`` (``A_T`` for an array task) was running when
        it was preempted and requeued: the restarted job continues it. None if there is none."""
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen.user_attrs.get(SLURM_JOB) == job:
                trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, frozen.number)
                self.heartbeat(trial_id)  # before anyone takes it for dead
                return optuna.Trial(self.study, trial_id), trial_id
        return None

    @contextmanager
    def _claim_lock(self) -> Iterator[None]:
        """PostgreSQL makes the WAITING → RUNNING switch atomic (SELECT ... FOR UPDATE); SQLite
        ignores FOR UPDATE, so there claims are serialised with a lock file beside the database
        (SQLite is for one machine, where such a lock works)."""
        url = str(self.storage.engine.url) if hasattr(self.storage, "engine") else ""
        if not url.startswith("sqlite:///"):
            yield
            return
        with open(url.removeprefix("sqlite:///") + ".claim.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _seed_for(self, number: int) -> None:
        """A sampler seeded by the experiment's seed and the trial number: parallel workers and
        resumed sessions draw different values, and the same study draws the same ones again."""
        exp = self.experiment()
        assert exp.search is not None
        if exp.search.sampler not in ("qmc", "grid"):  # one sequence / grid order: a fixed seed
            self.study.sampler = make_sampler(exp.search, exp.seed + 7919 * (number + 1))

    def fail_stale(self) -> None:
        """Fail trials whose worker stopped beating; Optuna queues a retry of each."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)

    def heartbeat(self, trial_id: int) -> None:
        record = getattr(self.storage, "record_heartbeat", None)
        if record is not None:
            record(trial_id)

    def best(self) -> FrozenTrial | None:
        try:
            return self.study.best_trial
        except ValueError:  # no COMPLETE trial yet
            return None

    def previous_attempt(self, trial_id: int) -> FrozenTrial | None:
        """The dead attempt a retried trial replaces (None for a first attempt)."""
        history = self.storage.get_trial(trial_id).system_attrs.get("retry_history") or []
        if not history:
            return None
        number = history[-1]
        return next((t for t in self.trials() if t.number == number), None)

    def values(self, trial: FrozenTrial) -> dict[str, Any]:
        """The experiment values a trial drew (categorical lists decoded)."""
        return {
            k: json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v for k, v in trial.params.items()
        }
