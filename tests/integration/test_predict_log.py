"""``labkit predict --log`` records a reference to the predictions with the run (a tag and a
small JSON artifact with the file's path, size and sha256), never the file itself; without
``--log`` the run is left as it was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mlflow
import pytest
import typer
from typer.testing import CliRunner

from labkit.cli._predict import predict as predict_command
from labkit.config import load_experiment
from labkit.runner import run
from tests.conftest import EXPERIMENTS

pytestmark = [pytest.mark.slow]


def cli(*args: str) -> tuple[int, str]:
    app = typer.Typer()
    app.command()(predict_command)
    app.command("other")(lambda: None)  # two commands: typer keeps the command's name
    result = CliRunner().invoke(app, ["predict", *args])
    return result.exit_code, result.output


def test_predict_log_records_a_reference_and_only_when_asked(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exp = load_experiment(
        EXPERIMENTS / "digits_mlp.yaml",
        [
            "trainer.max_epochs=1",
            "trainer.early_stopping=null",
            f"tracking.uri={uri}",
            f"runs_root={tmp_path / 'runs'}",
        ],
        cwd=tmp_path,
    )
    result = run(exp, progress="none")
    assert result.run_id is not None

    code, out = cli(str(result.run_dir), "-o", str(tmp_path / "plain.h5"))
    assert code == 0, out
    assert not (result.run_dir / "predictions").exists()  # not asked: nothing recorded

    scores = tmp_path / "scores.parquet"
    code, out = cli(str(result.run_dir), "-o", str(scores), "--log", "--tracking-uri", uri)
    assert code == 0, out
    assert f"logged as artifacts predictions/ of MLflow run {result.run_id}" in out

    reference = json.loads((result.run_dir / "predictions" / "scores.json").read_text())
    assert reference["path"] == str(scores.resolve())
    assert reference["sha256"] == hashlib.sha256(scores.read_bytes()).hexdigest()
    assert reference["bytes"] == scores.stat().st_size
    assert reference["events"] == 270 and reference["split"] == "test"
    assert reference["columns"][:2] == ["event", "p_0"]

    client = mlflow.MlflowClient(tracking_uri=uri)
    tags = client.get_run(result.run_id).data.tags
    assert tags["labkit.predictions.scores"] == str(scores.resolve())
    listed = [a.path for a in client.list_artifacts(result.run_id, "predictions")]
    assert listed == ["predictions/scores.json"]
    assert client.get_run(result.run_id).info.status == "FINISHED"
