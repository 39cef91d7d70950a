from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from labkit.errors import LabkitError
from labkit.runner import RunDir


def test_create_and_reopen(tmp_path: Path) -> None:
    run_dir = RunDir.create(tmp_path / "runs", "exp")
    assert run_dir.path.parent == tmp_path / "runs" / "exp"
    assert run_dir.path.name.endswith(run_dir.run_key[:8])
    assert RunDir.open(run_dir.path) == run_dir
    assert run_dir.state()["status"] == "CREATED"


def test_update_merges_state(tmp_path: Path) -> None:
    run_dir = RunDir.create(tmp_path, "exp")
    run_dir.update(mlflow_run_id="abc")
    run_dir.mark("RUNNING")
    state = json.loads((run_dir.path / "run.json").read_text())
    assert state["mlflow_run_id"] == "abc" and state["status"] == "RUNNING"
    assert state["run_key"] == run_dir.run_key


def test_two_runs_two_directories(tmp_path: Path) -> None:
    assert RunDir.create(tmp_path, "exp").path != RunDir.create(tmp_path, "exp").path


def test_open_non_run_directory(tmp_path: Path) -> None:
    with pytest.raises(LabkitError, match=r"is not a labkit run directory"):
        RunDir.open(tmp_path)


def test_unwritable_root(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(LabkitError, match=r"cannot create the run directory .* \(runs_root\)"):
        RunDir.create(tmp_path / "file", "exp")


def test_run_json_is_always_valid_json(tmp_path: Path) -> None:
    run_dir = RunDir.create(tmp_path, "exp")
    run_dir.mark("FINISHED", metrics={"test_loss": float("nan"), "lr": float("inf"), "low": -float("inf")})
    text = (run_dir.path / "run.json").read_text()
    state = json.loads(text, parse_constant=lambda name: pytest.fail(f"bare {name} in run.json"))
    assert state["metrics"] == {"test_loss": "nan", "lr": "inf", "low": "-inf"}
    assert float(state["metrics"]["lr"]) == float("inf")


@pytest.mark.parametrize(
    ("content", "what"),
    [('{"status": "RUNNING"}', "has no run_key"), ("[1, 2]", "is a JSON list"), ('{"run_key": 7}', "has no")],
)
def test_run_dir_without_a_run_key_names_the_file(tmp_path: Path, content: str, what: str) -> None:
    (tmp_path / "run.json").write_text(content)
    with pytest.raises(LabkitError, match=rf"{tmp_path / 'run.json'} {what}.*\"run_key\""):
        RunDir.open(tmp_path)


def test_full_disk_rewrites_run_json_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = RunDir.create(tmp_path, "exp")
    run_dir.mark("RUNNING", mlflow_run_id="abc")
    real_write_text = Path.write_text

    def full(self: Path, *args: object, **kwargs: object) -> int:
        if self.name.endswith(".tmp"):
            real_write_text(self, "{")  # a partial file, as the disk filled up
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_write_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", full)
    run_dir.mark("FAILED", error="OSError: [Errno 28] No space left on device")
    state = json.loads((run_dir.path / "run.json").read_text())
    assert state["status"] == "FAILED" and state["mlflow_run_id"] == "abc"
    assert [p.name for p in run_dir.path.iterdir()] == ["run.json"]  # the partial file is gone


def test_read_only_run_json_raises_the_first_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = RunDir.create(tmp_path, "exp")
    before = (run_dir.path / "run.json").read_text()

    def read_only(self: Path, *args: object, **kwargs: object) -> int:
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    def no_open(*args: object, **kwargs: object) -> int:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "write_text", read_only)
    monkeypatch.setattr("labkit._rundir.os.open", no_open)
    with pytest.raises(OSError, match=r"Read-only file system.*run\.json\.tmp"):
        run_dir.mark("FAILED")
    assert (run_dir.path / "run.json").read_text() == before
