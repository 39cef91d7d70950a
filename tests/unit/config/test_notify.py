"""The ``notify`` section: what the schema accepts and the one-line errors it gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.config import NOTIFY_EVENTS, load_experiment
from labkit.errors import ConfigError
from tests.conftest import EXPERIMENTS

MLP = EXPERIMENTS / "digits_mlp.yaml"


def test_no_section_means_no_notifications(tmp_path: Path) -> None:
    assert load_experiment(MLP, cwd=tmp_path).notify is None


def test_defaults_to_every_event(tmp_path: Path) -> None:
    exp = load_experiment(MLP, ["notify.webhook_env=LABKIT_WEBHOOK"], cwd=tmp_path)
    assert exp.notify is not None
    assert exp.notify.on == NOTIFY_EVENTS
    assert exp.notify.webhook_env == "LABKIT_WEBHOOK" and exp.notify.email is None


def test_one_event_needs_no_brackets_and_email_alone_is_enough(tmp_path: Path) -> None:
    exp = load_experiment(MLP, ["notify.on=failed", "notify.email=ada@example.org"], cwd=tmp_path)
    assert exp.notify is not None
    assert exp.notify.on == ("failed",) and exp.notify.email == "ada@example.org"


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["notify.on=[finished]"], r"notify: .*name webhook_env, email or both"),
        (
            ["notify.webhook_env=https://hooks.example.org/services/T0/B0/XYZ"],
            r"notify\.webhook_env: .*name the environment variable that holds the webhook URL",
        ),
        (["notify.webhook_env='LABKIT WEBHOOK'"], r"notify\.webhook_env: .*name the environment variable"),
        (["notify.email=a@b.org", "notify.on=[finshed]"], r"notify\.on\.0: .*finished"),
        (["notify.email=a@b.org", "notify.on=[]"], r"notify\.on: "),
        (["notify.email=not-an-address"], r"notify\.email: "),
        (["notify.email='a@b.org, c@d.org'"], r"notify\.email: "),
    ],
)
def test_refused(tmp_path: Path, overrides: list[str], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_experiment(MLP, overrides, cwd=tmp_path)


def test_a_url_given_as_webhook_env_is_refused_without_being_echoed(tmp_path: Path) -> None:
    secret = "https://hooks.slack.com/services/T000/B000/XyZsecret"
    with pytest.raises(ConfigError, match=r"webhook_env: name the environment variable") as info:
        load_experiment(MLP, [f"notify.webhook_env={secret}"], cwd=tmp_path)
    assert "XyZsecret" not in str(info.value) and "not shown" in str(info.value)
