"""Tasks with named inputs (jet features and constituents): the model is built from
``DataInfo.input_shapes``, classification and regression test on dict batches, and the wrong
pairings of model, data and task are refused before anything is built."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from labkit.config import validate_experiment
from labkit.data import DataInfo
from labkit.errors import ConfigError
from labkit.models import DeepSets, SetTransformer
from labkit.runner._build import build_task
from labkit.tasks import ClassificationTask, RegressionTask

SHAPES = {"features": (3,), "tracks": (6, 2), "tracks_valid": (6,)}
NAMED = DataInfo(in_shape=(3,), num_classes=2, class_names=("light", "b"), input_shapes=SHAPES)
PLAIN = DataInfo(in_shape=(3,), num_classes=2, class_names=("light", "b"))


class Jets(Dataset[tuple[dict[str, torch.Tensor], torch.Tensor]]):
    """Jets whose class is whether a track has a large first feature."""

    def __init__(self, n: int = 40, values: bool = False) -> None:
        g = torch.Generator().manual_seed(0)
        self.tracks = torch.randn(n, 6, 2, generator=g)
        self.valid = torch.rand(n, 6, generator=g) > 0.3
        self.features = torch.randn(n, 3, generator=g)
        self.y = (self.tracks[..., 0].masked_fill(~self.valid, -9).amax(dim=1) > 1).long()
        self.values = values

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        x = {"features": self.features[i], "tracks": self.tracks[i], "tracks_valid": self.valid[i]}
        return x, (self.y[i].float().reshape(1) if self.values else self.y[i])


def experiment(model: dict[str, Any], kind: str = "classification") -> Any:
    task: dict[str, Any] = {"kind": kind}
    return validate_experiment(
        {"name": "jets", "task": task, "model": model, "data": {"name": "digits"}}, environ={}
    )


def _trainer() -> pl.Trainer:
    return pl.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )


@pytest.mark.parametrize(("name", "cls"), [("deepsets", DeepSets), ("set_transformer", SetTransformer)])
def test_set_model_is_built_from_the_input_shapes(name: str, cls: type) -> None:
    task = build_task(experiment({"name": name}), NAMED)
    assert isinstance(task, ClassificationTask) and isinstance(task.model, cls)
    assert ClassificationTask.model_args(experiment({"name": name}).task, NAMED) == {
        "in_shape": (3,),
        "input_shapes": SHAPES,
    }
    assert "input_shapes" not in ClassificationTask.model_args(experiment({"name": "mlp"}).task, PLAIN)


def test_classification_and_regression_test_on_dict_batches() -> None:
    task = build_task(experiment({"name": "deepsets", "phi": [8], "rho": [8]}), NAMED)
    (metrics,) = _trainer().test(task, DataLoader(Jets(), batch_size=16), verbose=False)
    assert {"test_loss", "test_acc", "test_auc"} <= set(metrics)
    assert task.test_outputs()["probs"].shape == (40, 2)
    info = DataInfo(
        in_shape=(3,), target_names=("y",), target_scaling=((0.0, 1.0, False),), input_shapes=SHAPES
    )
    reg = build_task(experiment({"name": "set_transformer", "dim": 8, "heads": 2}, "regression"), info)
    assert isinstance(reg, RegressionTask)
    (metrics,) = _trainer().test(reg, DataLoader(Jets(values=True), batch_size=16), verbose=False)
    assert "test_rmse_y" in metrics
    x, y = next(iter(DataLoader(Jets(), batch_size=8)))
    loss = task._loss(task(x), y)  # the task's forward takes the dict as it comes
    assert torch.isfinite(loss)


def test_a_plain_model_given_constituents_names_the_set_models() -> None:
    with pytest.raises(
        ConfigError,
        match=r"model.name: 'mlp' reads one array per event, but data.constituents .*choose a set model: "
        r"deepsets, set_transformer",
    ):
        build_task(experiment({"name": "mlp"}), NAMED)


def test_a_set_model_given_one_array_says_to_name_constituents() -> None:
    with pytest.raises(
        ConfigError, match=r"model.name: 'deepsets' reads per-event sets, .*name them in data.constituents"
    ):
        build_task(experiment({"name": "deepsets"}), PLAIN)


def test_constituents_with_other_tasks_are_refused() -> None:
    exp = experiment({"name": "autoencoder"}, "anomaly")
    with pytest.raises(ConfigError, match=r"data.constituents: the anomaly task cannot use constituents"):
        build_task(exp, NAMED)
    with pytest.raises(  # refused when the experiment loads, before any data is read
        ConfigError, match=r"'deepsets' works with task.kind classification or regression, not anomaly"
    ):
        experiment({"name": "deepsets"}, "anomaly")


def test_data_info_of_a_users_datamodule_with_dict_batches() -> None:
    from labkit.runner._build import data_info

    class Mine(pl.LightningDataModule):
        def train_dataloader(self) -> DataLoader[Any]:
            return DataLoader(Jets(), batch_size=8)

    exp = validate_experiment(
        {
            "name": "jets",
            "task": {"kind": "classification", "num_classes": 2},
            "model": {"name": "deepsets"},
            "data": {"name": "digits"},
        },
        environ={},
    )
    info = data_info(Mine(), exp)
    assert info.in_shape == (3,) and info.input_shapes == SHAPES
    assert isinstance(build_task(exp, info).model, DeepSets)
