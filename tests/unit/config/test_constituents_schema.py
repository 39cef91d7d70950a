"""data.constituents and the model that reads them are checked when the experiment loads."""

from __future__ import annotations

from typing import Any

import pytest

from labkit.config import Experiment

DATA: dict[str, Any] = {
    "name": "simulated",
    "simulator": "jets",
    "events": 1000,
    "inputs": ["pt", "eta"],
    "targets": "flavour",
}
TRACKS = {"tracks": {"dataset": "tracks", "fields": ["d0", "z0"], "valid": "valid", "max": 40}}


def _exp(model: str, task: str = "classification", constituents: Any = None) -> Experiment:
    data = DATA | ({"constituents": constituents} if constituents else {})
    if task == "anomaly":
        data["standardize"] = False
    return Experiment.model_validate({"name": "t", "task": task, "model": {"name": model}, "data": data})


def test_a_set_model_with_constituents_loads() -> None:
    exp = _exp("deepsets", constituents=TRACKS)
    assert exp.data.constituents["tracks"].max == 40  # type: ignore[union-attr]


def test_a_plain_model_with_constituents_names_the_set_models() -> None:
    with pytest.raises(ValueError, match=r"model.name: 'mlp' reads one array.*deepsets, set_transformer"):
        _exp("mlp", constituents=TRACKS)


def test_a_set_model_without_constituents_says_to_name_them() -> None:
    with pytest.raises(ValueError, match=r"model.name: 'deepsets' reads per-event sets.*data.constituents"):
        _exp("deepsets")


def test_constituents_with_another_task_are_refused() -> None:
    with pytest.raises(ValueError, match=r"data.constituents: the anomaly task cannot use constituents"):
        _exp("deepsets", task="anomaly", constituents=TRACKS)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"dataset": "tracks", "fields": []}, "fields"),
        ({"dataset": "tracks", "fields": ["d0", "d0"]}, "named twice"),
        ({"dataset": "tracks", "fields": ["d0", "valid"], "valid": "valid"}, "becomes the mask"),
        ({"dataset": "tracks", "fields": ["d0"], "max": 0}, "max"),
        ({"dataset": "tracks", "fields": ["d0"], "maximum": 3}, "maximum"),
    ],
)
def test_bad_constituent_specs_name_the_problem(spec: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _exp("deepsets", constituents={"tracks": spec})


def test_split_files_are_anchored_like_the_path_and_groups_are_not(tmp_path: Any) -> None:
    from labkit.config._data_specs import FileSpec

    spec = FileSpec(
        name="file",
        path="jets.h5",
        inputs="jets",
        targets="jets.flavour",
        splits={"train": "train", "val": ["val_a.h5"], "test": "test/*.h5"},
    ).anchored(tmp_path)
    assert spec.path == str(tmp_path / "jets.h5")
    assert spec.splits == {
        "train": "train",
        "val": (str(tmp_path / "val_a.h5"),),
        "test": str(tmp_path / "test/*.h5"),
    }
