"""A study with a fixed budget of trials that any number of worker processes share.

Exactly N trials: the coordinator enqueues N WAITING trials once (``ensure_slots``); workers only
*claim* WAITING trials (a compare-and-set in the storage) and never create new ones, so racing
workers cannot overshoot. A trial whose worker died (no heartbeat for GRACE_SECONDS) is failed
and retried by Optuna's RetryHeartbeatStaleTrialCallback as a new WAITING trial that *supersedes* it:
the budget counts the retry, not the dead attempt.

A claim takes the head of the WAITING queue in one transaction that reads and locks only that
row (``SELECT ... ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED`` on PostgreSQL: a worker skips
the rows other workers are taking instead of racing them for the same one); SQLite, which has no
row locks, serialises claims with a lock file beside the database. With ``search.budget`` a
worker first sums what the study has spent (``_budget.py``) and claims nothing once it is spent.
"""

from __future__ import annotations

import fcntl
import json
import random
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from labkit.config import Experiment, redact_uri, validate_experiment
from labkit.errors import ConfigError
from labkit.tuning._budget import DEVICES, STARTED, STOPPED, Spent, spent, stop_reason
from labkit.tuning._optuna import Heartbeat, directions, make_pruner, make_sampler, open_storage
from labkit.tuning._rdb import FastTrialStorage

__all__ = ["MAX_STUDY_NAME", "SLURM_JOB", "StudyHandle", "Tally", "check_study_name"]

#: the longest study name (it names a folder under the runs root and a row in the storage)
MAX_STUDY_NAME = 200

_EXPERIMENT = "labkit.experiment"  # study user attr: the resolved experiment (JSON)
_PARENT = "labkit.parent_run_key"  # study user attr: the run key of the study's MLflow run
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
_MAY_CHANGE = ("trials", "budget")  # search fields a resumed study may change
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
        self._stale_checked = float("-inf")  # when claim() last failed stale trials (monotonic)

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def create(
        cls, exp: Experiment, name: str, storage_url: str, *, heartbeat: Heartbeat | None = None
    ) -> StudyHandle:
        """Create the study, or load it if it exists (resuming); the experiment is stored in it."""
        assert exp.search is not None
        check_study_name(name)
        storage = open_storage(storage_url, heartbeat)
        wanted = directions(exp.search)  # one per objective (several: a Pareto front)
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            directions=wanted,
            sampler=make_sampler(exp.search, exp.seed),
            pruner=make_pruner(exp.search, max_epochs=_longest(exp)),
            load_if_exists=True,
        )
        have = [d.name.lower() for d in study.directions]
        if have != wanted:
            field = "search.direction is" if len(wanted) == 1 else "search.objectives ask for"
            raise ConfigError(
                f"study {name!r} exists with direction {', '.join(have)}, but {field} "
                f"{', '.join(wanted)}: use another --study name"
            )
        stored = study.user_attrs.get(_EXPERIMENT)
        resolved = exp.model_dump(mode="json")
        if stored is not None:  # the number of trials and the budget may change, the search not
            before = {k: v for k, v in json.loads(stored)["search"].items() if k not in _MAY_CHANGE}
            now = {k: v for k, v in resolved["search"].items() if k not in _MAY_CHANGE}
            if before != now:
                changed = sorted(k for k in now if before.get(k) != now[k])
                raise ConfigError(
                    f"study {name!r} exists with another search ({', '.join('search.' + k for k in changed)} "
                    "differ): use another --study name"
                )
        study.set_user_attr(_EXPERIMENT, json.dumps(resolved))
        attrs = study.user_attrs
        if attrs.get(STARTED) is None:  # wall_hours count from here
            study.set_user_attr(STARTED, time.time())
        if attrs.get(STOPPED):  # a new session (perhaps a larger budget): the workers look again
            study.set_user_attr(STOPPED, "")
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
        study.pruner = make_pruner(exp.search, max_epochs=_longest(exp))
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

    def claim(self, *, devices: int | None = None) -> tuple[optuna.Trial, int] | None:
        """Take the head of the WAITING queue for this process: (trial, its storage id); None if
        no trial is waiting or ``search.budget`` is spent. ``devices``: the GPUs this worker
        trains on, recorded on the trial for the budget (None: not recorded, counted as one)."""
        if time.monotonic() - self._stale_checked >= self.timing.interval:  # no trial is stale sooner
            self.fail_stale()
            self._stale_checked = time.monotonic()
        if self.check_budget() is not None:
            return None
        with self._claim_lock():
            if isinstance(self.storage, optuna.storages.RDBStorage):
                head = self._take_head(self.storage, devices)
            else:
                head = self._compare_and_set()
        if head is None:
            return None
        trial_id, number, frozen = head
        self._seed_for(number)
        if frozen is not None and isinstance(self.storage, FastTrialStorage):
            with self.storage.claimed(frozen):  # Trial() reads the trial: the claim has it
                trial = optuna.Trial(self.study, trial_id)
        else:
            trial = optuna.Trial(self.study, trial_id)
        self._note_in_cache(trial)
        return trial, trial_id

    def tell(
        self,
        trial: optuna.Trial,
        values: float | list[float] | None = None,
        *,
        state: TrialState | None = None,
    ) -> None:
        """``study.tell`` without the read of the trial it returns (unused here: a round trip per
        trial saved for every worker)."""
        try:
            from optuna.study._tell import _tell_with_warning
        except ImportError:  # another Optuna
            self.study.tell(trial, values, state=state)
            return
        _tell_with_warning(study=self.study, trial=trial, value_or_values=values, state=state)

    def _note_in_cache(self, trial: optuna.Trial) -> None:
        """Optuna's cache in front of the study's storage knows a trial from its own reads or its
        own ``create_new_trial`` (``set_trial_param`` looks the trial's study up there); a trial
        claimed in SQL it has not read yet is added as ``create_new_trial`` adds one, and marked
        unfinished, so its next read of the study fetches the trial's later states."""
        cached: Any = self.study._storage
        if cached is self.storage:
            return
        frozen: Any = getattr(trial, "_cached_frozen_trial", None)  # what Trial() just read
        try:
            from optuna.storages._cached_storage import _StudyInfo

            with cached._lock:
                info = cached._studies.setdefault(self.study_id, _StudyInfo())  # not read yet: empty
                cached._add_trials_to_cache(self.study_id, [frozen])
                info.unfinished_trial_ids.add(frozen._trial_id)
        except (ImportError, AttributeError):  # another Optuna: read (and cache) every trial
            cached.get_all_trials(self.study_id, deepcopy=False)

    def _take_head(
        self, storage: optuna.storages.RDBStorage, devices: int | None
    ) -> tuple[int, int, FrozenTrial | None] | None:
        """One transaction: lock the lowest-numbered WAITING trial that no other worker holds,
        switch it to RUNNING (with Optuna's start time) and record ``devices``. Another worker's
        claim that has not committed yet is skipped, not waited for; if it rolls back, its row is
        waiting again, and this worker looks once more."""
        for _ in range(50):
            head = _lock_head(storage, self.study_id, devices)
            if head is not None:
                return head
            if not self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                return None
            time.sleep(0.02)  # rows locked by claims in flight
        return None

    def _compare_and_set(self) -> tuple[int, int, FrozenTrial | None] | None:
        """Another storage than Optuna's RDB: try the WAITING trials in turn."""
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        random.shuffle(waiting)
        for frozen in waiting:
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, frozen.number)
            try:
                if self.storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                    return trial_id, frozen.number, None
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another worker took it (and finished it) first
        return None

    # -- search.budget -------------------------------------------------------------------------
    @property
    def started_at(self) -> float | None:
        """When the study began (Unix time; None for a study made before labkit recorded it)."""
        value = self.study.user_attrs.get(STARTED)
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def stopped(self) -> str | None:
        """Why the workers stopped claiming trials (``search.budget``), or None."""
        return str(self.study.user_attrs.get(STOPPED) or "") or None

    def spent(self) -> Spent:
        """GPU-hours of the finished and running trials, wall hours since the study began."""
        return spent(self.trials(), self.started_at)

    def check_budget(self) -> str | None:
        """Why no trial may be claimed any more, or None; recorded on the study (once) when it
        leaves trials unclaimed."""
        search = self.experiment().search
        if search is None or search.budget is None:
            return None
        reason = stop_reason(search.budget, self.spent())
        if reason is not None and not self.stopped and self.tally().counts.get("WAITING"):
            self.study.set_user_attr(STOPPED, reason)
        return reason

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
        if len(self.study.directions) > 1:  # several objectives: no single best (the front)
            return None
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


def _longest(exp: Experiment) -> int:
    """The most epochs a trial may train: the file's, or the top of a searched ``trainer.max_epochs``."""
    assert exp.search is not None
    searched = exp.search.params.get("trainer.max_epochs")
    high = getattr(searched, "high", None)
    return max(exp.trainer.max_epochs, int(high)) if isinstance(high, int) else exp.trainer.max_epochs


def _lock_head(
    storage: optuna.storages.RDBStorage, study_id: int, devices: int | None
) -> tuple[int, int, FrozenTrial | None] | None:
    """``SELECT ... WHERE state = 'WAITING' ORDER BY number LIMIT 1 FOR UPDATE SKIP LOCKED``, then
    ``UPDATE`` it to RUNNING and read it back in the same transaction; (trial id, number, the trial
    as read), or None if every WAITING trial is taken or being taken. Optuna's cache re-reads
    unfinished trials, so it sees the change."""
    from optuna.storages._rdb import models

    session = storage.scoped_session()
    try:
        row = (
            session.query(models.TrialModel)
            .filter(models.TrialModel.study_id == study_id, models.TrialModel.state == TrialState.WAITING)
            .order_by(models.TrialModel.number)
            .limit(1)
            .with_for_update(skip_locked=True)  # SQLite: no FOR UPDATE (the lock file serialises)
            .one_or_none()
        )
        if row is None:
            session.rollback()
            return None
        head = (int(row.trial_id), int(row.number))
        row.state = TrialState.RUNNING
        row.datetime_start = datetime.now()  # as Optuna's set_trial_state_values does
        if devices is not None:
            _upsert_user_attr(session, storage.engine.name, head[0], DEVICES, devices)
        # what Trial() would read next, in one statement
        frozen = storage.read_claimed(session, head[0]) if isinstance(storage, FastTrialStorage) else None
        session.commit()
        return (*head, frozen)
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _upsert_user_attr(session: Any, dialect: str, trial_id: int, key: str, value: Any) -> None:
    """Set a trial user attr inside ``session`` (a retried trial already holds its attempt's)."""
    from optuna.storages._rdb import models

    model = models.TrialUserAttributeModel
    values = {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
    keys = [model.trial_id, model.key]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg = pg_insert(model).values(**values)
        session.execute(
            pg.on_conflict_do_update(index_elements=keys, set_={"value_json": pg.excluded.value_json})
        )
    else:
        from sqlalchemy.dialects.sqlite import insert as lite_insert

        lite = lite_insert(model).values(**values)
        session.execute(
            lite.on_conflict_do_update(index_elements=keys, set_={"value_json": lite.excluded.value_json})
        )
