"""RunSession without training: the run directory it owns and the status it always leaves."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from labkit.config import Experiment
from labkit.errors import LabkitError
from labkit.runner import RunDir, RunOptions, RunSession

Load = Callable[..., Experiment]


def _state(exp: Experiment) -> dict[str, object]:
    (run_dir,) = Path(exp.runs_root, exp.name).iterdir()
    return dict(json.loads((run_dir / "run.json").read_text()))


def test_entering_writes_the_run_directory_and_its_config(load: Load) -> None:
    exp = load("digits_mlp")
    with pytest.raises(LabkitError), RunSession(exp, command="labkit run x.yaml") as session:
        assert session.run_dir.config_file.is_file()
        assert session.run_dir.state()["status"] == "CREATED"
        assert session.run_id is None and session.result is None


def test_leaving_without_finish_marks_the_run_failed_and_says_so(load: Load) -> None:
    exp = load("digits_mlp")
    with pytest.raises(LabkitError, match=r"ended before finish\(\)"), RunSession(exp):
        pass
    state = _state(exp)
    assert state["status"] == "FAILED" and "ended before finish()" in str(state["error"])


@pytest.mark.parametrize(
    ("error", "status"), [(RuntimeError("boom"), "FAILED"), (KeyboardInterrupt(), "KILLED")]
)
def test_an_error_inside_is_recorded_and_raised_unchanged(
    load: Load, error: BaseException, status: str
) -> None:
    exp = load("digits_mlp")
    with pytest.raises(type(error)), RunSession(exp, options=RunOptions(failure_tags={"x": "y"})):
        raise error
    state = _state(exp)
    assert state["status"] == status and str(state["error"]).startswith(type(error).__name__)
    (run_dir,) = Path(exp.runs_root, exp.name).iterdir()
    assert (run_dir / "error.txt").is_file()


def test_a_finished_run_directory_is_not_resumed(load: Load, tmp_path: Path) -> None:
    rdir = RunDir.create(tmp_path, "done")
    rdir.mark("FINISHED", mlflow_run_id="abc")
    with pytest.raises(LabkitError, match=r"holds a finished run \(MLflow run abc\); nothing to resume"):
        RunSession(load("digits_mlp"), run_dir=rdir.path).__enter__()


def test_run_hooks_is_the_former_name_of_run_options() -> None:
    from labkit.runner import RunHooks

    assert RunHooks is RunOptions
    assert RunHooks(tags={"a": "b"}).tags == {"a": "b"}
