"""Notifications: the message, the link, filtering by ``on``, and a webhook that fails quietly.

No server here: sending is tried against a closed local port and a patched ``urlopen``; the
real round trip is in tests/integration/test_notify.py."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from labkit.config import NotifyConfig
from labkit.notify import Notice, Notifier, headline_metric, render, run_link, send_webhook

SECRET = "http://127.0.0.1:1/hooks/T0SECRET/B0SECRET/XXSECRETXX"


def _notice(event: str = "finished", **kw: Any) -> Notice:
    values: dict[str, Any] = {
        "event": event,
        "experiment": "digits_mlp",
        "run": "digits_mlp-7",
        "run_id": "abc123",
        "host": "node12",
        "job_id": "4242",
        "metric": "test_acc",
        "value": 0.98123456,
        "link": "http://mlflow.example.org/#/experiments/3/runs/abc123",
    }
    return Notice(**(values | kw))


def test_render_says_what_where_metric_and_link() -> None:
    text = render(_notice())
    first, link = text.splitlines()
    assert (
        first
        == "labkit: run digits_mlp-7 of digits_mlp on node12 (SLURM job 4242) finished: test_acc = 0.981235"
    )
    assert link == "http://mlflow.example.org/#/experiments/3/runs/abc123"


def test_render_of_a_failure_has_its_reason_on_one_line() -> None:
    text = render(
        _notice("nan", metric=None, value=None, job_id=None, detail="training loss nan\n at step 12")
    )
    assert (
        text.splitlines()[0]
        == "labkit: run digits_mlp-7 of digits_mlp on node12 stopped: the training loss is not finite"
    )
    assert text.splitlines()[1] == "training loss nan at step 12"
    study = render(
        _notice("study_done", run="s1", metric="best_val_loss", value=0.25, host=None, job_id=None)
    )
    assert study.startswith("labkit: study s1 of digits_mlp ended: best_val_loss = 0.25")


def test_link_to_an_http_server_drops_credentials() -> None:
    link = run_link("https://ada:hunter2@mlflow.example.org:8443/mlflow/", "r1", "7")
    assert link == "https://mlflow.example.org:8443/mlflow/#/experiments/7/runs/r1"
    assert "hunter2" not in link and "ada" not in link


def test_link_without_a_server_names_the_run_and_its_store() -> None:
    assert run_link("sqlite:///tmp/mlflow.db", "r1", "7", "/runs/x") == (
        "MLflow run r1 in sqlite:///tmp/mlflow.db; run directory /runs/x"
    )
    assert run_link("http://mlflow:5000", None, None, "/runs/x") == (
        "not yet in MLflow (http://mlflow:5000); run directory /runs/x"
    )
    assert "pw" not in run_link("postgresql://u:pw@db/mlflow", "r1")


def test_headline_metric_prefers_the_tasks_then_the_fallback() -> None:
    metrics = {"test_loss": 0.3, "test_acc": float("nan"), "test_auc": 0.9}
    assert headline_metric(metrics, ("test_acc", "test_auc"), ("val_loss",)) == ("test_auc", 0.9)
    assert headline_metric(metrics, ("test_rmse",), ("test_loss",)) == ("test_loss", 0.3)
    assert headline_metric(metrics, ("x",)) is None


def test_from_config_reads_the_named_variable_only() -> None:
    config = NotifyConfig(on=("finished", "nan"), webhook_env="LABKIT_WEBHOOK")
    notifier = Notifier.from_config(config, {"LABKIT_WEBHOOK": SECRET}, headline=("test_acc",))
    assert notifier is not None
    assert notifier.wants("finished") and notifier.wants("nan") and not notifier.wants("failed")
    assert notifier.headline == ("test_acc",)
    assert SECRET not in repr(notifier) and "$LABKIT_WEBHOOK" in repr(notifier)


def test_an_unset_variable_warns_once_and_sends_nothing() -> None:
    out = io.StringIO()
    config = NotifyConfig(webhook_env="LABKIT_WEBHOOK")
    assert Notifier.from_config(config, {}, stream=out) is None
    assert (
        out.getvalue() == "labkit: notify.webhook_env: $LABKIT_WEBHOOK is not set; no webhook notifications\n"
    )
    assert Notifier.from_config(NotifyConfig(email="a@b.org"), {"X": "y"}, stream=out) is None  # SLURM mails


def test_events_not_in_on_are_not_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []

    def fake(url: str, text: str, **kw: Any) -> bool:
        sent.append(text)
        return True

    monkeypatch.setattr("labkit.notify._send.send_webhook", fake)
    notifier = Notifier(frozenset({"failed"}), SECRET, "LABKIT_WEBHOOK")
    assert not notifier.send(_notice("finished"))
    assert notifier.send(_notice("failed"))
    assert len(sent) == 1 and "FAILED" in sent[0]


class _Answer:
    status = 200

    def __enter__(self) -> _Answer:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read(self, n: int = -1) -> bytes:
        return b"ok"


def test_the_webhook_gets_slack_json(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    def urlopen(request: urllib.request.Request, timeout: float) -> _Answer:
        seen.append((request, timeout))
        return _Answer()

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    assert send_webhook("https://hooks.example.org/x", "hello", timeout=3.0)
    request, timeout = seen[0]
    assert timeout == 3.0 and request.get_method() == "POST"
    assert json.loads(request.data) == {"text": "hello"}
    assert request.get_header("Content-type") == "application/json"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (urllib.error.HTTPError(SECRET, 404, "Not Found", {}, None), "HTTP 404 Not Found"),  # type: ignore[arg-type]
        (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), "connection refused"),
        (urllib.error.URLError(TimeoutError("timed out")), "no answer within 10 s"),
        (TimeoutError(), "no answer within 10 s"),
        (urllib.error.URLError(f"bad {SECRET}"), "bad ..."),
        (ValueError(f"URL can't contain control characters. {SECRET!r}"), "not a valid http(s) URL"),
        (RuntimeError(SECRET), "RuntimeError"),
    ],
)
def test_a_failing_webhook_warns_without_the_url(
    monkeypatch: pytest.MonkeyPatch, error: BaseException, reason: str
) -> None:
    def urlopen(request: Any, timeout: float) -> Any:
        raise error

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    out = io.StringIO()
    assert send_webhook(SECRET, "hello", name="$LABKIT_WEBHOOK", stream=out) is False
    line = out.getvalue()
    assert line.count("\n") == 1 and "$LABKIT_WEBHOOK" in line and reason in line
    assert "SECRET" not in line


@pytest.mark.parametrize("url", [SECRET, "file:///etc/passwd", "ftp://x/SECRET", "not a url SECRET", ""])
def test_unreachable_or_not_http_returns_false(url: str) -> None:
    out = io.StringIO()  # port 1 on this host: refused at once (no server is started)
    assert send_webhook(url, "hello", name="$LABKIT_WEBHOOK", timeout=2.0, stream=out) is False
    assert "SECRET" not in out.getvalue() and "passwd" not in out.getvalue()
    assert out.getvalue().startswith("labkit: notify: the webhook in $LABKIT_WEBHOOK failed (")
