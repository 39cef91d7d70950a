"""class_path targets that are not usable classes, and init_args that do not fit them, are a
RegistryError of one line naming the field, before anything trains (issue 14)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from labkit.config import Experiment
from labkit.data import DataInfo
from labkit.errors import ConfigError, DataError, RegistryError
from labkit.runner._build import build_datamodule, build_task, data_info

Load = Callable[..., Experiment]
INFO = DataInfo(in_shape=(64,), num_classes=10, class_names=tuple(map(str, range(10))))
HOSTILE = "tests.user_models_hostile"


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("lightning.pytorch.LightningDataModule", r"does not define train_dataloader"),
        ("labkit.data.ArraySplitDataModule", r"does not define load"),
        (f"{HOSTILE}.NoLoad", r"does not define load"),
        ("torch.nn.Module", r"is not a LightningDataModule class"),
        (f"{HOSTILE}.make_net", r"is not a LightningDataModule class \(it is a value of type function\)"),
        ("torch.nn", r"\(it is a module\)"),
    ],
)
def test_data_class_path_must_be_a_usable_datamodule(load: Load, target: str, match: str) -> None:
    exp = load("digits_mlp", f"data={{class_path: {target}}}")
    with pytest.raises(RegistryError, match=rf"^data\.class_path: {target} .*{match}.*LightningDataModule"):
        build_datamodule(exp)


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("torch.nn.Module", r"does not define forward"),
        (f"{HOSTILE}.NoForward", r"does not define forward"),
        (f"{HOSTILE}.AbstractNet", r"does not define features"),
        ("lightning.pytorch.LightningModule", r"does not define training_step, configure_optimizers"),
        (f"{HOSTILE}.HalfTask", r"does not define training_step \("),
        (f"{HOSTILE}.make_net", r"is neither .* \(it is a value of type function\)"),
        ("labkit.data.DigitsDataModule", r"is neither a torch\.nn\.Module nor a LightningModule"),
    ],
)
def test_model_class_path_must_be_a_usable_module(load: Load, target: str, match: str) -> None:
    exp = load("digits_mlp", f"model={{class_path: {target}}}")
    with pytest.raises(RegistryError, match=rf"^model\.class_path: {target} .*{match}.*expected a concrete"):
        build_task(exp, INFO)


def test_a_wrong_typed_init_arg_names_the_argument(load: Load) -> None:
    exp = load("digits_mlp", f"model={{class_path: {HOSTILE}.Picky, init_args: {{width: wide}}}}")
    with pytest.raises(
        RegistryError, match=r"^model\.init_args\.width: Picky expects an integer \(int\), got 'wide'$"
    ):
        build_task(exp, INFO)


def test_an_error_in_the_users_constructor_is_one_line(load: Load) -> None:
    exp = load("digits_mlp", f"model={{class_path: {HOSTILE}.Picky, init_args: {{act: gelu}}}}")
    with pytest.raises(
        RegistryError,
        match=rf"^model\.class_path: {HOSTILE}\.Picky\(\*\*init_args\) failed: ValueError: act must be 'relu'",
    ):
        build_task(exp, INFO)
    exp = load("digits_mlp", f"model={{class_path: {HOSTILE}.Untyped, init_args: {{width: wide}}}}")
    with pytest.raises(
        RegistryError, match=r"^model\.class_path: .*Untyped\(\*\*init_args\) failed: TypeError: [^\n]*$"
    ):
        build_task(exp, INFO)


def test_missing_and_unknown_init_args_list_the_parameters(load: Load) -> None:
    exp = load("digits_mlp", f"data={{class_path: {HOSTILE}.NoBatches, init_args: {{size: 3}}}}")
    with pytest.raises(RegistryError, match=r"^data\.init_args: NoBatches: .*'size'; it accepts: seed$"):
        build_datamodule(exp)


def test_an_empty_training_loader_is_a_data_error(load: Load) -> None:
    exp = load("digits_mlp", f"data={{class_path: {HOSTILE}.NoBatches}}")
    with pytest.raises(DataError, match=r"NoBatches\.train_dataloader\(\) gives no batch"):
        data_info(build_datamodule(exp), exp)


def test_a_billion_classes_are_refused_before_the_model_is_built(load: Load) -> None:
    exp = load("digits_mlp")
    exp = exp.model_copy(update={"task": exp.task.model_copy(update={"num_classes": 10**9})})  # unchecked
    with pytest.raises(ConfigError, match=r"^task\.num_classes: 1000000000 classes; .* at most 10000"):
        build_task(exp, INFO)


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("torch.nn.Identity", r"\(no parameters\)"),
        (f"{HOSTILE}.Frozen", r"\(2 parameters, all frozen \(requires_grad=False\)\)"),
    ],
)
def test_a_model_with_nothing_to_train_is_refused_before_training(
    load: Load, target: str, match: str
) -> None:
    exp = load("digits_mlp", f"model={{class_path: {target}}}")
    with pytest.raises(
        RegistryError, match=rf"^model\.class_path: {target} has no trainable parameters {match}"
    ):
        build_task(exp, INFO)
