"""The heartbeat settings come from the CLI's environment, not from an import-time read."""

from __future__ import annotations

import pytest

from labkit.errors import ConfigError
from labkit.tuning import Heartbeat


def test_defaults_and_environment() -> None:
    assert Heartbeat.from_environ({}) == Heartbeat() == Heartbeat(interval=5, grace=20)
    env = {"LABKIT_HEARTBEAT_SECONDS": "1", "LABKIT_GRACE_SECONDS": "8"}
    assert Heartbeat.from_environ(env) == Heartbeat(interval=1, grace=8)


def test_a_bad_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"LABKIT_GRACE_SECONDS='soon': expected a whole number"):
        Heartbeat.from_environ({"LABKIT_GRACE_SECONDS": "soon"})
