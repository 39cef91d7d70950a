"""``labkit tune best`` on a study of two objectives (a hand-made study: nothing trains)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labkit.cli._tune import tune_app
from labkit.config import Experiment, load_experiment
from tests.unit.tuning.test_pareto import _study, _two

Load = Callable[..., Experiment]


@pytest.fixture
def url(load: Load, tmp_path: Path) -> str:
    _study(_two(load), tmp_path)
    return f"sqlite:///{tmp_path / 's.db'}"


def _best(*args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(tune_app, ["best", "--study", "two", *args])
    return result.exit_code, result.output.splitlines()


def test_best_lists_the_front(url: str) -> None:
    code, lines = _best("--storage", url)
    assert code == 0
    assert lines[0] == "labkit: study two: Pareto front of 3 points"
    assert [line.split()[0] for line in lines[2:5]] == ["0", "2", "3"]
    assert lines[5] == "  next       labkit tune best --study two --write DIR, or --trial N -o FILE"


def test_best_writes_every_point_or_one(url: str, tmp_path: Path) -> None:
    code, lines = _best("--storage", url, "--write", str(tmp_path / "front"))
    assert code == 0, lines
    assert lines[-1] == f"labkit: wrote 3 files in {tmp_path / 'front'}; train one with: labkit run " + str(
        tmp_path / "front" / "trial-000.yaml"
    )
    assert sorted(p.name for p in (tmp_path / "front").iterdir()) == [
        "pareto_front.png", "trial-000.yaml", "trial-002.yaml", "trial-003.yaml",
    ]  # fmt: skip
    code, lines = _best("--storage", url, "--trial", "3", "-o", str(tmp_path / "p3.yaml"))
    assert code == 0 and lines == [
        f"labkit: wrote {tmp_path / 'p3.yaml'}; train it with: labkit run {tmp_path / 'p3.yaml'}"
    ]
    assert load_experiment(tmp_path / "p3.yaml", cwd=tmp_path).trainer.max_epochs == 6
    code, lines = _best("--storage", url, "--trial", "2")
    assert code == 0 and lines[0] == "# trial 2 of study 'two': val_acc = 0.95, parameters = 5000"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "f.yaml"], "labkit: error: study 'two' has several objectives: choose a point with --trial N -o f.yaml, "
                           "or write every point with --write DIR"),
        (["--write", "d", "-o", "f.yaml"], "labkit: error: --write DIR and -o FILE: give one of them"),
        (["--trial", "5"], "labkit: error: --trial 5: study 'two' has no complete trial 5; complete trials: 0, 1, 2, 3, 4"),
    ],
)  # fmt: skip
def test_best_mistakes_are_one_line(url: str, args: list[str], message: str) -> None:
    code, lines = _best("--storage", url, *args)
    assert code == 2 and lines == [message]


def test_write_needs_several_objectives(load: Load, tmp_path: Path) -> None:
    from labkit.tuning import StudyHandle

    url = f"sqlite:///{tmp_path / 'one.db'}"
    StudyHandle.create(load("digits_mlp_search"), "two", url)
    code, lines = _best("--storage", url, "--write", str(tmp_path / "d"))
    assert code == 2
    assert lines == [
        "labkit: error: --write is for a study of several objectives; write its best trial with -o FILE"
    ]
