"""`labkit sync --follow` at the command line (in process): its errors, its help, a clean stop."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labkit.cli import app
from labkit.tracking.write import Follower

ENV = {"MLFLOW_TRACKING_URI": "http://mlflow.test:5000"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--follow", "--interval", "0"], "--interval 0: the seconds between rounds must be > 0"),
        (["--follow", "--interval", "-2.5"], "--interval -2.5: the seconds between rounds must be > 0"),
        (["--follow", "--runs-root", "nowhere"], "--runs-root nowhere: no such folder"),
        (["--follow", "runs"], "--follow watches folders of runs: give runs as --runs-root runs"),
        (["--all", "--interval", "5"], "--interval 5 is for --follow"),
        (["--all", "--runs-root", "runs", "--runs-root", "runs"], None),  # several roots with --all: fine
        (["runs", "--runs-root", "a", "--runs-root", "b"], "several --runs-root are for --all or --follow"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    result = CliRunner().invoke(app, ["sync", *args], env=ENV)
    if message is None:
        assert result.exit_code == 0 and "no run spools under runs" in result.output, result.output
        return
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("labkit: error: ") and message in line


def test_help_documents_follow() -> None:
    result = CliRunner().invoke(app, ["sync", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for text in ("--follow", "--interval", "--runs-root", "relay", "busy", "Ctrl-C"):
        assert text in result.output


def test_ctrl_c_ends_with_a_last_line_and_exit_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    seen: list[list[Path]] = []

    def two_rounds_then_ctrl_c(self: Follower, *, stop: threading.Event | None = None, **kw: object) -> None:
        seen.append(self.roots)
        self.round()
        self.round()
        raise KeyboardInterrupt

    monkeypatch.setattr(Follower, "run", two_rounds_then_ctrl_c)
    result = CliRunner().invoke(
        app, ["sync", "--follow", "--runs-root", "a", "--runs-root", "b", "--interval", "2"], env=ENV
    )
    assert result.exit_code == 0, result.output
    first, last = result.output.strip().splitlines()
    assert first == (
        "labkit sync --follow: following the runs under a, b every 2 s, to http://mlflow.test:5000 (Ctrl-C to stop)"
    )
    assert last == "labkit sync --follow: stopped after 2 rounds; 0 items sent, 0 runs still being followed"
    assert seen == [[Path("a"), Path("b")]]
