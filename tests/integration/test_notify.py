"""Notifications end to end: ``labkit run`` (a subprocess, as users run it) posts to an incoming
webhook served here on 127.0.0.1 (a thread) when a run finishes and when its loss goes NaN; the
webhook URL, a secret read from the variable ``notify.webhook_env`` names, appears nowhere: not
in the run directory (spool included), the MLflow params and tags, the output, nor an sbatch
script; a webhook that does not answer never fails the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO

pytestmark = pytest.mark.slow

MLP = str(REPO / "experiments" / "digits_mlp.yaml")
VAR = "LABKIT_TEST_WEBHOOK"


class Hook:
    """An incoming webhook: the messages it received, and its secret URL."""

    def __init__(self, url: str, secret: str) -> None:
        self.url, self.secret = url, secret
        self.messages: list[dict[str, Any]] = []


@pytest.fixture
def hook() -> Iterator[Hook]:
    secret = f"T0/B0/{uuid.uuid4().hex}"  # the part of a Slack webhook URL that is the secret
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == f"/hooks/{secret}":
                received.append(json.loads(body))
                self.send_response(200)
            else:
                self.send_response(404)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    found = Hook(f"http://127.0.0.1:{server.server_address[1]}/hooks/{secret}", secret)
    found.messages = received
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


def labkit(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))  # tests.user_models
    env = {**os.environ, VAR: url, "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def _run(tmp_path: Path, url: str, *overrides: str) -> subprocess.CompletedProcess[str]:
    return labkit(
        "run",
        MLP,
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"runs_root={tmp_path / 'runs'}",
        f"notify.webhook_env={VAR}",
        "trainer.max_epochs=1",
        "trainer.early_stopping=null",
        "trainer.limit_train_batches=5",
        "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=2",
        *overrides,
        "--progress",
        "none",
        url=url,
        cwd=tmp_path,
    )


def test_finished_and_nan_runs_are_notified_and_the_url_is_nowhere(tmp_path: Path, hook: Hook) -> None:
    done = _run(tmp_path, hook.url, "tracking.run_name=fine")
    assert done.returncode == 0, done.stderr[-3000:]
    nan = _run(
        tmp_path, hook.url, "tracking.run_name=diverged", "model={class_path: tests.user_models.NaNNet}"
    )
    assert nan.returncode == 2, nan.stderr[-3000:]
    error = nan.stderr.strip().splitlines()[-1]
    assert error.startswith("labkit: error: the training loss is nan at step 1 (epoch 0, batch 0)"), error
    assert "the run is marked FAILED" in error

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = {
        r.info.run_name: r for r in client.search_runs([e.experiment_id for e in client.search_experiments()])
    }
    assert runs["fine"].info.status == "FINISHED" and runs["diverged"].info.status == "FAILED"
    assert runs["diverged"].data.tags["labkit.failure"] == "nan"
    assert runs["diverged"].data.metrics.get("epochs_trained") is None  # stopped at once: never finished

    finished, stopped = (m["text"] for m in hook.messages)  # in order, one each
    assert finished.startswith("labkit: run fine of digits_mlp on ")
    assert " finished: test_acc = " in finished.splitlines()[0]
    assert f"MLflow run {runs['fine'].info.run_id} in sqlite:///" in finished
    assert stopped.startswith("labkit: run diverged of digits_mlp on ")
    assert stopped.splitlines()[0].endswith(" stopped: the training loss is not finite")
    assert stopped.splitlines()[1].startswith("the training loss is nan at step 1 (epoch 0, batch 0)")
    assert f"MLflow run {runs['diverged'].info.run_id}" in stopped

    # the secret: in no file labkit or MLflow wrote (spools, run.json, config.yaml, error.txt, the
    # store, its artifacts), no param, no tag
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"config.yaml", "spool.db", "run.json", "error.txt", "mlflow.db"} <= {p.name for p in files}, files
    artifacts = [p for p in files if "checkpoints" not in p.parts and p.suffix in (".yaml", ".txt", ".json")]
    assert any("mlruns" in p.parts or "artifacts" in p.parts for p in artifacts), artifacts
    for path in files:
        assert hook.secret.encode() not in path.read_bytes(), path
    for run in runs.values():
        assert hook.secret not in json.dumps([run.data.params, run.data.tags])
        assert run.data.params["notify.webhook_env"] == VAR
    for proc in (done, nan):
        assert hook.secret not in proc.stdout + proc.stderr

    # nor in the sbatch script of the same experiment
    script = labkit(
        "submit", MLP, f"notify.webhook_env={VAR}", "notify.email=ana@example.org",
        "--cluster", str(REPO / "cluster" / "slurm-local.yaml"), "--dry-run",
        url=hook.url, cwd=tmp_path,
    )  # fmt: skip
    assert script.returncode == 0, script.stderr
    assert "#SBATCH --mail-user=ana@example.org" in script.stdout
    assert hook.secret not in script.stdout + script.stderr


def test_a_webhook_that_fails_never_fails_the_run(load: Any) -> None:
    import io

    import labkit
    from labkit.notify import Notifier
    from labkit.runner import RunOptions

    secret = uuid.uuid4().hex
    closed = f"http://127.0.0.1:1/hooks/{secret}"  # port 1: refused at once
    exp = load(
        "digits_mlp", "trainer.max_epochs=1", "trainer.limit_train_batches=5", f"notify.webhook_env={VAR}"
    )
    out = io.StringIO()
    notifier = Notifier.from_config(exp.notify, {VAR: closed}, stream=out)
    result = labkit.run(exp, progress="none", stream=out, options=RunOptions(notifier=notifier))
    assert result.run_id is not None and "test_acc" in result.metrics
    warning = [line for line in out.getvalue().splitlines() if "notify" in line]
    assert warning == [
        f"labkit: notify: the webhook in ${VAR} failed (connection refused); the message was not sent"
    ]
    assert secret not in out.getvalue()


def test_a_study_tells_its_end_once(load: Any, tmp_path: Path, hook: Hook) -> None:
    """``study_done`` from the step that summarises a study (``labkit tune`` and the cluster's
    summary job both end with it): the best value, the trial counts, the parent run."""
    import io

    from labkit.notify import Notifier
    from labkit.tuning import StudyHandle
    from labkit.tuning._objective import run_trial
    from labkit.tuning._tune import finish_study, prepare_study, study_folder
    from tests.unit.tuning.test_tune import _fast

    exp = _fast(load, "search.trials=1", f"notify.webhook_env={VAR}", "notify.on=[study_done]")
    out = io.StringIO()
    url = f"sqlite:///{tmp_path / 's.db'}"
    handle, parent, total = prepare_study(exp, study="s1", storage=url, trials=1, stream=out)
    while (claimed := handle.claim()) is not None:
        run_trial(handle, *claimed, progress="none")
    notifier = Notifier.from_config(exp.notify, {VAR: hook.url}, stream=out)
    report = finish_study(handle, parent, total, study_folder(exp, "s1"), notifier=notifier, stream=out)
    assert report.tally.finished == 1
    (message,) = (m["text"] for m in hook.messages)  # the trial itself sent nothing
    first, counts, link = message.splitlines()
    assert first.startswith("labkit: study s1 of digits_mlp_search on ")
    assert first.endswith(f" ended: best_val_loss = {report.best_value:.6g}")
    assert counts.startswith(
        "1 finished (1 complete, 0 pruned, 0 failed), 0 running, 0 waiting of 1; best trial 0"
    )
    assert link.startswith(f"MLflow run {parent.run_id} in sqlite:///")
    assert hook.secret not in out.getvalue() and StudyHandle.load("s1", url).tally().finished == 1
