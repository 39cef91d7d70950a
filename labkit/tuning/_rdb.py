"""Optuna's RDB storage with a cheaper read of one trial.

Every claim and every tell reads the trial from the database (``optuna.Trial()`` on a claimed
trial, twice in ``study.tell``: a running trial is never served from Optuna's cache). Optuna's
``RDBStorage.get_trial`` loads the trial row and then each of its five relations lazily: seven
statements, each a round trip and a batch of ORM objects. With many workers sharing a few cores
that read is most of what coordination costs. :class:`FastTrialStorage` reads the same trial in
one statement (a ``UNION ALL`` of the trial's row and its params, values, intermediate values,
user and system attributes) without a transaction around it, as plain rows, and builds the same
:class:`~optuna.trial.FrozenTrial` Optuna builds. Should Optuna's tables change under it, the
read falls back to Optuna's own, once and for all (tested against Optuna's on every kind of
value in tests/unit/tuning/test_rdb.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import optuna
from optuna.distributions import json_to_distribution
from optuna.trial import FrozenTrial, TrialState

__all__ = ["FastTrialStorage", "ping_when_idle", "read_in"]

#: a pooled connection unused this long is pinged before use (one round trip); one used more
#: recently is taken as it is, as a busy worker's always is
IDLE_PING_SECONDS = 2.0
_USED = "labkit_used"

# what each row of the UNION ALL holds: (kind, key, integer, number, text, start, complete)
_HEAD, _PARAM, _VALUE, _STEP, _USER, _SYSTEM = range(6)


class FastTrialStorage(optuna.storages.RDBStorage):
    """:class:`optuna.storages.RDBStorage` whose ``get_trial`` is one statement, not seven in a
    transaction."""

    _fast_read = True
    _claimed: FrozenTrial | None = None

    @contextmanager
    def claimed(self, frozen: FrozenTrial) -> Iterator[None]:
        """Inside: ``get_trial`` of this trial is ``frozen``, read in the claim's own transaction
        (``optuna.Trial()`` reads the trial it is given; the claiming worker holds it, so nothing
        has changed since). Only for the one read; cleared on the way out."""
        self._claimed = frozen
        try:
            yield
        finally:
            self._claimed = None

    def read_claimed(self, session: Any, trial_id: int) -> FrozenTrial | None:
        """The trial, read in ``session``'s transaction (a claim reads back what it just wrote);
        None where Optuna's tables are not the ones this reads (``optuna.Trial()`` reads it)."""
        if self._fast_read:
            try:
                return read_in(session, trial_id)
            except (ImportError, AttributeError):  # another Optuna's tables: its own read from now on
                type(self)._fast_read = False
        return None

    def get_trial(self, trial_id: int) -> FrozenTrial:
        claimed, self._claimed = self._claimed, None
        if claimed is not None and claimed._trial_id == trial_id:
            return claimed
        if self._fast_read:
            try:
                return _read_trial(self, trial_id)
            except (ImportError, AttributeError):  # another Optuna's tables: its own read from now on
                type(self)._fast_read = False
        return super().get_trial(trial_id)


def _read_trial(storage: optuna.storages.RDBStorage, trial_id: int) -> FrozenTrial:
    """The trial as ``RDBStorage.get_trial`` returns it; KeyError for an unknown id, as there.
    One statement in autocommit: no BEGIN and COMMIT round trips, and one statement sees one
    snapshot of the tables."""
    from optuna.storages._rdb import models

    statement = _statement(trial_id)
    with storage.engine.connect() as conn:
        rows = conn.execution_options(isolation_level="AUTOCOMMIT").execute(statement).all()
    return _frozen(trial_id, rows, models)


def read_in(session: Any, trial_id: int) -> FrozenTrial:
    """The trial, read in ``session``'s transaction (a claim reads back what it just wrote)."""
    from optuna.storages._rdb import models

    session.flush()
    return _frozen(trial_id, session.execute(_statement(trial_id)).all(), models)


def _statement(trial_id: int) -> Any:
    """The trial's row and its rows in the five tables of its relations, as one ``UNION ALL`` of
    (kind, key, integer, number, text, start, complete)."""
    import sqlalchemy as sa
    from optuna.storages._rdb import models

    trial = models.TrialModel.__table__.c
    param, value = models.TrialParamModel, models.TrialValueModel
    step, user, system = (
        models.TrialIntermediateValueModel,
        models.TrialUserAttributeModel,
        models.TrialSystemAttributeModel,
    )

    def branch(kind: int, model: Any, key: Any, integer: Any, number: Any, text: Any, *when: Any) -> Any:
        return sa.select(
            sa.literal_column(str(kind), sa.Integer),
            sa.null().cast(sa.Text) if key is None else key.cast(sa.Text),  # the enums as their names
            sa.null().cast(sa.Integer) if integer is None else integer,
            sa.null().cast(sa.Float) if number is None else number,
            sa.null().cast(sa.Text) if text is None else text.cast(sa.Text),
            *(when or (sa.null().cast(sa.DateTime), sa.null().cast(sa.DateTime))),
        ).where(model.trial_id == trial_id)

    return sa.union_all(
        branch(
            _HEAD, trial, trial.state, trial.number, None, None, trial.datetime_start, trial.datetime_complete
        ),
        branch(_PARAM, param, param.param_name, param.param_id, param.param_value, param.distribution_json),
        branch(_VALUE, value, None, value.objective, value.value, value.value_type),
        branch(_STEP, step, None, step.step, step.intermediate_value, step.intermediate_value_type),
        branch(_USER, user, user.key, None, None, user.value_json),
        branch(_SYSTEM, system, system.key, None, None, system.value_json),
    )


def _local(utc: datetime | None) -> datetime | None:
    """Optuna stores naive UTC and gives naive local time (``TrialModel.datetime_start``)."""
    return None if utc is None else utc.replace(tzinfo=timezone.utc).astimezone().replace(tzinfo=None)


def _frozen(trial_id: int, rows: Sequence[Any], models: Any) -> FrozenTrial:
    """Optuna's ``_build_frozen_trial_from_trial_model`` on plain rows."""
    value_type = models.TrialValueModel.TrialValueType
    step_type = models.TrialIntermediateValueModel.TrialIntermediateValueType
    params: list[tuple[int, str, float, str]] = []
    objectives: dict[int, float] = {}
    steps: dict[int, float] = {}
    user_attrs: dict[str, Any] = {}
    system_attrs: dict[str, Any] = {}
    head = None
    for kind, key, number, amount, text, start, complete in rows:
        if kind == _HEAD:
            head = (number, TrialState[key], _local(start), _local(complete))
        elif kind == _PARAM:
            params.append((number, key, amount, text))
        elif kind == _VALUE:
            objectives[number] = models.TrialValueModel.stored_repr_to_value(amount, value_type[text])
        elif kind == _STEP:
            steps[number] = models.TrialIntermediateValueModel.stored_repr_to_intermediate_value(
                amount, step_type[text]
            )
        elif kind == _USER:
            user_attrs[key] = json.loads(text)
        else:
            system_attrs[key] = json.loads(text)
    if head is None:
        raise KeyError(models.NOT_FOUND_MSG)
    params.sort()
    distributions = {name: json_to_distribution(dist) for _, name, _, dist in params}
    values = [objectives[i] for i in range(len(objectives))] if objectives else None
    number, state, start, complete = head
    return FrozenTrial(
        number=number,
        state=state,
        value=None,
        values=values,
        datetime_start=start,
        datetime_complete=complete,
        params={name: distributions[name].to_external_repr(stored) for _, name, stored, _ in params},
        distributions=distributions,
        user_attrs=user_attrs,
        system_attrs=system_attrs,
        intermediate_values=steps,
        trial_id=trial_id,
    )


def ping_when_idle(engine: Any, idle: float = IDLE_PING_SECONDS) -> None:
    """SQLAlchemy's ``pool_pre_ping``, but only for a connection idle ``idle`` seconds or more.

    A pre-ping costs a round trip at every checkout, and Optuna checks a connection out for each
    operation: five times per claim and tell. A connection back in the pool a moment ago is as
    alive as a ping would show; one that sat idle may have been dropped by the server or a
    firewall, and is pinged. A failed ping discards the connection and the pool connects anew
    (SQLAlchemy's documented pessimistic-disconnect recipe)."""
    import sqlalchemy as sa

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if time.monotonic() - record.info.get(_USED, float("-inf")) < idle:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DisconnectionError(str(exc)) from exc

    def checkin(dbapi_connection: Any, record: Any) -> None:
        record.info[_USED] = time.monotonic()

    sa.event.listen(engine, "checkout", checkout)
    sa.event.listen(engine, "checkin", checkin)
