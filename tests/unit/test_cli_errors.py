"""The CLI's guarded edge, in process (typer's runner): every failure is one line; a traceback
only under ``--debug`` or from the user's own training code."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from labkit.cli import _app
from tests.conftest import REPO

MLP = str(REPO / "experiments" / "digits_mlp.yaml")


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABKIT_DEBUG", raising=False)
    monkeypatch.setattr(_app._Flags, "debug", False)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(_app.app, list(args), catch_exceptions=False)


def _explode(*args: Any, **kwargs: Any) -> Any:
    raise ZeroDivisionError("division by zero somewhere inside labkit")


def test_unexpected_error_is_one_line_with_a_pointer_to_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    import labkit.config

    monkeypatch.setattr(labkit.config, "load_experiment", _explode)
    result = invoke("check", MLP)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("labkit: error: unexpected ZeroDivisionError: division by zero somewhere")
    assert "labkit --debug" in lines[0]
    assert "Traceback" not in result.stderr


def test_debug_prints_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import labkit.config

    monkeypatch.setattr(labkit.config, "load_experiment", _explode)
    result = invoke("--debug", "check", MLP)
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "ZeroDivisionError: division by zero somewhere inside labkit" in result.stderr


def test_debug_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import labkit.config

    monkeypatch.setattr(labkit.config, "load_experiment", _explode)
    monkeypatch.setenv("LABKIT_DEBUG", "1")
    assert "Traceback" in invoke("check", MLP).stderr


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.ENOSPC, "labkit: error: no space left on the device writing /runs/x/run.json"),
        (errno.EROFS, "labkit: error: the file system is read-only writing /runs/x/run.json"),
        (errno.EACCES, "labkit: error: permission denied writing /runs/x/run.json"),
    ],
)
def test_full_disk_and_permissions_are_the_users_to_fix(
    monkeypatch: pytest.MonkeyPatch, code: int, expected: str
) -> None:
    import os

    import labkit.config

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(code, os.strerror(code), "/runs/x/run.json")

    monkeypatch.setattr(labkit.config, "load_experiment", full)
    result = invoke("check", MLP)
    assert result.exit_code == 2
    assert result.stderr.startswith(expected), result.stderr
    assert "Traceback" not in result.stderr


def test_a_crash_in_training_keeps_its_traceback() -> None:
    """An exception that passed through Lightning's loops came from the user's training code."""
    scope: dict[str, Any] = {"__name__": "lightning.pytorch.loops.fit_loop"}
    exec("def advance():\n    raise RuntimeError('nan in the loss')\n", scope)
    try:
        scope["advance"]()
    except RuntimeError as exc:
        assert _app._from_training(exc)
    try:
        _explode()
    except ZeroDivisionError as exc:
        assert not _app._from_training(exc)


def test_override_with_broken_yaml_is_one_line() -> None:
    result = invoke("check", MLP, "model.hidden=[64,64")
    assert result.exit_code == 2
    assert result.stderr.startswith("labkit: error: ")
    assert "model.hidden=[64,64" in result.stderr
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- labkit sim
def test_sim_option_with_broken_yaml(tmp_path: Path) -> None:
    result = invoke("sim", "calo", "energy_range=[1,50", "-o", str(tmp_path / "c.h5"))
    assert result.exit_code == 2
    assert "simulator option 'energy_range=[1,50'" in result.stderr
    assert not (tmp_path / "c.h5").exists()


def test_sim_to_a_directory(tmp_path: Path) -> None:
    result = invoke("sim", "grf", "-n", "2", "-o", str(tmp_path))
    assert result.exit_code == 2
    assert f"-o {tmp_path} is a directory" in result.stderr


def test_sim_to_an_unwritable_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = invoke("sim", "grf", "-n", "2", "-o", str(blocker / "events.h5"))
    assert result.exit_code == 2
    assert f"-o {blocker / 'events.h5'}: cannot write it" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["sim", "generate"])
def test_seeds_beyond_32_bits_are_refused(command: str, tmp_path: Path) -> None:
    target = "grf" if command == "sim" else "some-run"
    result = invoke(command, target, "--seed", str(2**64), "-o", str(tmp_path / "x.h5"))
    assert result.exit_code == 2
    assert "--seed" in result.stderr and "4294967295" in result.stderr


def test_sim_events_beyond_the_bound(tmp_path: Path) -> None:
    result = invoke("sim", "grf", "-n", str(10**12), "-o", str(tmp_path / "x.h5"))
    assert result.exit_code == 2
    assert "-n/--events must be an integer <= 1_000_000_000, got 1000000000000" in result.stderr


# --------------------------------------------------------------------------- files the user names
@pytest.mark.parametrize("where", ["dir", "under-a-file"])
def test_tune_best_output_that_cannot_be_written(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import labkit.tuning

    monkeypatch.setattr(labkit.tuning.StudyHandle, "load", lambda *args, **kwargs: None)
    monkeypatch.setattr(labkit.tuning, "best_experiment", lambda handle: "name: best\n")
    monkeypatch.setattr(labkit.tuning, "is_multi_objective", lambda handle: False)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    output = tmp_path if where == "dir" else blocker / "best.yaml"
    result = invoke("tune", "best", "--study", "s", "-o", str(output))
    assert result.exit_code == 2, result.stderr
    expected = f"-o {output} is a directory" if where == "dir" else f"-o {output}: cannot write it"
    assert expected in result.stderr, result.stderr
    assert not list(tmp_path.glob(".*.partial"))


def test_sync_of_a_file_that_is_no_run_directory(tmp_path: Path) -> None:
    some_file = tmp_path / "passwd"
    some_file.write_text("root:x:0:0")
    result = invoke("sync", str(some_file))
    assert result.exit_code == 2
    assert f"{some_file}: a file, not a run directory" in result.stderr


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("tune", MLP, "--trials", str(10**6 + 1)), "--trials"),
        (("tune", MLP, "--workers", "100000"), "--workers"),
        (("server", "start", "--workers", "100000"), "--workers"),
        (("server", "start", "--db-pool-size", "0"), "--db-pool-size"),
    ],
)
def test_counts_that_size_processes_are_bounded(args: tuple[str, ...], option: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.stderr
