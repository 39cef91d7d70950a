"""FastTrialStorage reads a trial exactly as Optuna's RDBStorage does, in one statement."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy as sa

from labkit.tuning._rdb import FastTrialStorage

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _optunas(storage: FastTrialStorage, trial_id: int) -> optuna.trial.FrozenTrial:
    return optuna.storages.RDBStorage.get_trial(storage, trial_id)


def _same(a: optuna.trial.FrozenTrial, b: optuna.trial.FrozenTrial) -> None:
    """Equal, NaN equal to NaN (a NaN intermediate value is stored as such)."""

    def plain(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
        d = dict(vars(t))
        d["intermediate_values"] = {
            k: "nan" if math.isnan(v) else v for k, v in t.intermediate_values.items()
        }
        return d

    assert plain(a) == plain(b)
    assert list(a.params) == list(b.params)  # the order Optuna gives them (param id)


@pytest.fixture
def storage(tmp_path: Path) -> FastTrialStorage:
    return FastTrialStorage(f"sqlite:///{tmp_path / 'optuna.db'}")


def test_every_kind_of_param_value_and_attribute_reads_as_optunas(storage: FastTrialStorage) -> None:
    study = optuna.create_study(storage=storage, study_name="kinds")
    trial = study.ask()
    trial.suggest_float("lr", 1e-5, 1.0, log=True)
    trial.suggest_float("dropout", 0.0, 0.5, step=0.1)
    trial.suggest_float("plain", -3.0, 3.0)
    trial.suggest_int("layers", 1, 8)
    trial.suggest_int("width", 16, 1024, log=True)
    trial.suggest_categorical("optimizer", ["adam", "sgd"])
    trial.suggest_categorical("norm", [None, True, 3, 2.5])
    for step, value in enumerate([0.5, float("inf"), float("-inf"), float("nan"), 1e-300]):
        trial.report(value, step)
    trial.set_user_attr("devices", 4)
    trial.set_user_attr("nested", {"a": [1, 2.5, None, "x"], "b": {"c": True}})
    storage.set_trial_system_attr(trial._trial_id, "fixed_params", {"lr": 0.1})
    running = storage.get_trial(trial._trial_id)
    _same(running, _optunas(storage, trial._trial_id))
    assert running.state == optuna.trial.TrialState.RUNNING and running.values is None
    study.tell(trial, 0.25)
    done = storage.get_trial(trial._trial_id)
    _same(done, _optunas(storage, trial._trial_id))
    assert done.value == 0.25 and done.params["optimizer"] in ("adam", "sgd")
    assert done.datetime_start is not None and done.datetime_complete is not None


def test_times_are_local_as_optuna_gives_them(
    storage: FastTrialStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setenv("TZ", "America/Chicago")  # stored as UTC, given as local time
    time.tzset()
    try:
        study = optuna.create_study(storage=storage)
        trial = study.ask()
        study.tell(trial, 1.0)
        read = storage.get_trial(trial._trial_id)
        _same(read, _optunas(storage, trial._trial_id))
        assert read.datetime_start is not None and read.datetime_start.tzinfo is None
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), -1.5e-12])
def test_infinite_and_tiny_values_read_as_optunas(storage: FastTrialStorage, value: float) -> None:
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.COMPLETE, [value])
    _same(storage.get_trial(trial._trial_id), _optunas(storage, trial._trial_id))
    assert storage.get_trial(trial._trial_id).value == value


def test_several_objectives_keep_their_order(storage: FastTrialStorage) -> None:
    study = optuna.create_study(storage=storage, directions=["minimize", "maximize", "minimize"])
    trial = study.ask()
    trial.suggest_int("n", 0, 3)
    study.tell(trial, [3.0, float("inf"), -1.0])
    read = storage.get_trial(trial._trial_id)
    _same(read, _optunas(storage, trial._trial_id))
    assert read.values == [3.0, float("inf"), -1.0]


def test_waiting_pruned_and_failed_trials_read_as_optunas(storage: FastTrialStorage) -> None:
    study = optuna.create_study(storage=storage)
    study.enqueue_trial({"x": 0.5})
    waiting = study.get_trials(deepcopy=False)[0]
    _same(storage.get_trial(waiting._trial_id), _optunas(storage, waiting._trial_id))
    pruned = study.ask()
    pruned.report(0.7, 0)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    failed = study.ask()
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    for t in (pruned, failed):
        _same(storage.get_trial(t._trial_id), _optunas(storage, t._trial_id))


def test_an_unknown_trial_id_is_a_key_error_as_in_optuna(storage: FastTrialStorage) -> None:
    optuna.create_study(storage=storage)
    with pytest.raises(KeyError, match="Record does not exist"):
        storage.get_trial(12345)
    with pytest.raises(KeyError, match="Record does not exist"):
        _optunas(storage, 12345)


def test_tables_it_cannot_read_fall_back_to_optunas_read(
    storage: FastTrialStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, 1.0)
    from optuna.storages._rdb import models

    monkeypatch.setattr(FastTrialStorage, "_fast_read", True)
    monkeypatch.delattr(models, "TrialParamModel")  # as if Optuna renamed its table
    read = storage.get_trial(trial._trial_id)
    assert FastTrialStorage._fast_read is False  # from now on, Optuna's own read
    assert read.params == trial.params and read.value == 1.0


def test_a_read_is_one_statement(storage: FastTrialStorage) -> None:
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    for name in "abcde":
        trial.suggest_float(name, 0.0, 1.0)
        trial.set_user_attr(name, 1)
    trial.report(0.1, 0)
    study.tell(trial, 0.1)
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    sa.event.listen(storage.engine, "before_cursor_execute", count)
    try:
        storage.get_trial(trial._trial_id)
        fast = len(statements)
        statements.clear()
        _optunas(storage, trial._trial_id)
        slow = len(statements)
    finally:
        sa.event.remove(storage.engine, "before_cursor_execute", count)
    assert (fast, slow) == (1, 6)


def test_a_connection_is_pinged_only_after_sitting_idle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from labkit.tuning import _rdb

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'p.db'}", poolclass=sa.pool.QueuePool)
    clock = [1000.0]
    monkeypatch.setattr(_rdb.time, "monotonic", lambda: clock[0])
    pings: list[int] = []
    fail = [False]

    def ping(dbapi_connection: Any) -> bool:
        pings.append(id(dbapi_connection))
        if fail[0]:
            fail[0] = False
            raise engine.dialect.loaded_dbapi.OperationalError("server closed the connection")
        return True

    monkeypatch.setattr(engine.dialect, "do_ping", ping)
    _rdb.ping_when_idle(engine, idle=2.0)

    def use() -> None:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1

    use()
    assert len(pings) == 1  # a new connection: pinged once
    clock[0] += 1.0
    use()
    use()
    assert len(pings) == 1  # back in the pool a moment ago: used as it is
    clock[0] += 2.5
    fail[0] = True  # idle for 2.5 s and dropped by the server meanwhile
    use()
    assert len(pings) == 3  # the dead one pinged and discarded, a fresh one pinged and used


def test_a_claim_reads_its_trial_in_its_session_unless_the_tables_are_unknown(
    storage: FastTrialStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    monkeypatch.setattr(FastTrialStorage, "_fast_read", True)
    session = storage.scoped_session()
    try:
        read = storage.read_claimed(session, trial._trial_id)
        assert read is not None
        _same(read, _optunas(storage, trial._trial_id))
        from optuna.storages._rdb import models

        monkeypatch.delattr(models, "TrialParamModel")  # as if Optuna renamed its table
        assert storage.read_claimed(session, trial._trial_id) is None
        assert FastTrialStorage._fast_read is False  # not tried again on the next claim
    finally:
        session.close()
