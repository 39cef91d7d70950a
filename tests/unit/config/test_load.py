from __future__ import annotations

from pathlib import Path

import pytest

from labkit.config import Experiment, dump_experiment, flatten, load_experiment, validate_experiment
from labkit.errors import ConfigError, ExperimentFileError, LabkitError
from tests.conftest import EXPERIMENTS

MLP = EXPERIMENTS / "digits_mlp.yaml"


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_experiment_validates(path: Path, tmp_path: Path) -> None:
    exp = load_experiment(path, cwd=tmp_path)
    assert exp.name == path.stem


def test_overrides_are_merged_and_typed(tmp_path: Path) -> None:
    exp = load_experiment(MLP, ["trainer.max_epochs=3", "model.hidden=[64,64]", "seed=7"], cwd=tmp_path)
    assert exp.trainer.max_epochs == 3
    assert exp.model.hidden == (64, 64)  # type: ignore[union-attr]
    assert exp.seed == 7
    assert exp.optimizer.lr == pytest.approx(3e-3)  # untouched values stay


def test_override_can_switch_model(tmp_path: Path) -> None:
    exp = load_experiment(EXPERIMENTS / "digits_cnn.yaml", ["model.channels=[8]"], cwd=tmp_path)
    assert exp.model.channels == (8,)  # type: ignore[union-attr]


def test_defaults_filled_at_the_edge(tmp_path: Path) -> None:
    exp = load_experiment(MLP, environ={}, cwd=tmp_path)
    assert exp.tracking.uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert exp.tracking.experiment == "digits"
    assert exp.tracking.run_name == "digits_mlp"
    assert exp.runs_root == str(tmp_path / "runs")


def test_tracking_uri_from_environment(tmp_path: Path) -> None:
    exp = load_experiment(MLP, environ={"MLFLOW_TRACKING_URI": "http://127.0.0.1:5999"}, cwd=tmp_path)
    assert exp.tracking.uri == "http://127.0.0.1:5999"


def test_relative_sqlite_uri_made_absolute(tmp_path: Path) -> None:
    exp = load_experiment(MLP, ["tracking.uri=sqlite:///sub/m.db"], environ={}, cwd=tmp_path)
    assert exp.tracking.uri == f"sqlite:///{tmp_path / 'sub' / 'm.db'}"


def test_dump_round_trips(tmp_path: Path) -> None:
    exp = load_experiment(MLP, ["model.hidden=[8]"], cwd=tmp_path)
    out = tmp_path / "resolved.yaml"
    out.write_text(dump_experiment(exp))
    assert load_experiment(out, cwd=tmp_path) == exp


def test_experiment_is_frozen(tmp_path: Path) -> None:
    exp = load_experiment(MLP, cwd=tmp_path)
    with pytest.raises(Exception, match="frozen"):
        exp.seed = 3  # type: ignore[misc]


def test_flatten_gives_dotted_string_params(tmp_path: Path) -> None:
    params = flatten(load_experiment(MLP, ["trainer.max_epochs=2", "seed=7"], cwd=tmp_path).to_dict())
    assert params["trainer.max_epochs"] == "2"
    assert params["seed"] == "7"
    assert params["model.hidden"] == "[16, 16]"
    assert params["trainer.early_stopping.patience"] == "5"
    assert params["trainer.gradient_clip_val"] == "null"
    assert all(isinstance(v, str) for v in params.values())


def test_relative_data_path_made_absolute(tmp_path: Path) -> None:
    exp = load_experiment(MLP, ["data={name: arrays, path: sub/d.h5}"], cwd=tmp_path)
    assert exp.data.path == str(tmp_path / "sub" / "d.h5")  # type: ignore[union-attr]


def test_scheduler_shorthand(tmp_path: Path) -> None:
    exp = load_experiment(MLP, ["optimizer.scheduler=cosine"], cwd=tmp_path)
    assert exp.optimizer.scheduler is not None and exp.optimizer.scheduler.name == "cosine"


def test_task_shorthand(tmp_path: Path) -> None:
    exp = validate_experiment(
        {"name": "x", "task": "classification", "model": {"name": "mlp"}, "data": {"name": "digits"}},
        cwd=tmp_path,
    )
    assert exp.task.kind == "classification"


# ------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["trainer.max_epochs=abc"], r"trainer\.max_epochs: input should be a valid integer.*'abc'"),
        (["trainer.max_epochs=0"], r"trainer\.max_epochs: input should be greater than 0"),
        (["trainer.max_epoch=3"], r"trainer\.max_epoch: unknown key \(did you mean 'max_epochs'\?\)"),
        (["trainr.max_epochs=3"], r"trainr: unknown key \(did you mean 'trainer'\?\)"),
        (["model.hiden=[3]"], r"model\.hiden: unknown key \(did you mean 'hidden'\?\)"),
        (
            ["model.name=mpl"],
            r"model\.name: unknown model 'mpl' \(did you mean 'mlp'\?\); valid: autoencoder, cnn, cvae, deepsets, mlp, set_transformer, two_stage, unet",
        ),
        (
            ["data.name=digit"],
            r"data\.name: unknown dataset 'digit' \(did you mean 'digits'\?\); valid: arrays, digits",
        ),
        (
            ["task.kind=clasification"],
            r"task\.kind: unknown task kind 'clasification' \(did you mean 'classification'\?\); valid: anomaly, classification, regression, segmentation, surrogate",
        ),
        (["trainer.precision=16"], r"trainer\.precision: 16 is not valid; choose one of: 32-true, 16-mixed"),
        (["data.val_fraction=0.9"], r"data: val_fraction \+ test_fraction = 1\.05 leaves no training data"),
        (["optimizer.lr=-1"], r"optimizer\.lr: input should be greater than 0"),
        (["model.dropout=1.5"], r"model\.dropout: input should be less than 1"),
        (["name=a b"], r"name: string should match pattern"),
        (["model.class_path=not a path"], r"model\.class_path: string should match pattern"),
        (
            ["trainer.devices=x"],
            r"trainer\.devices: input should be a valid integer.*; or input should be 'auto'.*\(got 'x'\)",
        ),
        (
            ["trainer.limit_train_batches=-1"],
            r"trainer\.limit_train_batches: input should be greater than 0 \(got -1\)",
        ),
        (
            ["trainer.checkpoint=null"],
            r"trainer\.checkpoint: expected a mapping of keys to values \(got null\)",
        ),
        (
            ["trainer.max_time=2160000"],
            r'trainer\.max_time: write it in quotes, e\.g\. max_time: "00:12:00:00"',
        ),
        (
            ["optimizer.name=sgd", "optimizer.momentum=0", "optimizer.nesterov=true"],
            r"optimizer: nesterov: true needs momentum > 0$",
        ),
        (
            ["optimizer.scheduler={name: plateau, gamma: 1.0}"],
            r"optimizer\.scheduler\.gamma: input should be less than 1",
        ),
        (["model.hidden=[16,-1]"], r"model\.hidden\.1: input should be greater than 0 \(got -1\)"),
    ],
)
def test_bad_values_name_the_field(overrides: list[str], pattern: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_experiment(MLP, overrides, cwd=tmp_path)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"2 problems") as info:
        load_experiment(MLP, ["trainer.max_epochs=abc", "seed=-1"], cwd=tmp_path)
    assert "trainer.max_epochs" in str(info.value) and "seed" in str(info.value)


def test_missing_name_and_component(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"name: required") as info:
        validate_experiment({"task": "classification", "model": {"hidden": [3]}, "data": {"name": "digits"}})
    assert "model: give a 'name'" in str(info.value)


@pytest.mark.parametrize("override", ["foo", "=3", "a..b=1", "trainer max_epochs=3"])
def test_malformed_override(override: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is not of the form KEY=VALUE"):
        load_experiment(MLP, [override], cwd=tmp_path)


def test_missing_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(ExperimentFileError, match=r"experiment file not found: .*nope\.yaml"):
        load_experiment(tmp_path / "nope.yaml")


def test_missing_file_suggests_neighbour(tmp_path: Path) -> None:
    with pytest.raises(ExperimentFileError, match=r"did you mean 'digits_mlp\.yaml'"):
        load_experiment(EXPERIMENTS / "digits_mpl.yaml")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ExperimentFileError, match=r"is a directory"):
        load_experiment(tmp_path)


def test_invalid_yaml_names_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: {name: mlp\n")
    with pytest.raises(ExperimentFileError, match=r"bad\.yaml: not valid YAML"):
        load_experiment(bad)


def test_yaml_must_be_a_mapping(tmp_path: Path) -> None:
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ExperimentFileError, match=r"must be a mapping"):
        load_experiment(bad)


def test_errors_share_one_base() -> None:
    assert issubclass(ConfigError, LabkitError) and issubclass(ExperimentFileError, LabkitError)
    assert Experiment.model_config["extra"] == "forbid"


def test_mapping_override_replaces_the_section(tmp_path: Path) -> None:
    exp = load_experiment(MLP, ["model={class_path: my.pkg.Net, init_args: {width: 3}}"], cwd=tmp_path)
    assert exp.model.class_path == "my.pkg.Net"  # type: ignore[union-attr]
    assert exp.model.init_args == {"width": 3}  # type: ignore[union-attr]
    nested = load_experiment(MLP, ["trainer.early_stopping={patience: 2}"], cwd=tmp_path)
    assert nested.trainer.early_stopping is not None
    assert nested.trainer.early_stopping.patience == 2
    assert nested.trainer.early_stopping.monitor == "val_loss"  # the schema's default, not the file's


def test_override_adds_to_a_shorthand(tmp_path: Path) -> None:
    path = tmp_path / "short.yaml"
    path.write_text(
        "name: s\ntask: classification\nmodel: {name: mlp}\ndata: {name: digits}\n"
        "optimizer: {scheduler: cosine}\n"
    )
    exp = load_experiment(path, ["task.num_classes=12", "optimizer.scheduler.min_lr=0.01"], cwd=tmp_path)
    assert exp.task.kind == "classification" and exp.task.num_classes == 12
    assert exp.optimizer.scheduler is not None
    assert (exp.optimizer.scheduler.name, exp.optimizer.scheduler.min_lr) == ("cosine", 0.01)


def test_data_path_home_and_dots_resolved(tmp_path: Path) -> None:
    exp = load_experiment(MLP, ["data={name: arrays, path: ../d.npz}"], cwd=tmp_path / "sub")
    assert exp.data.path == str(tmp_path / "d.npz")  # type: ignore[union-attr]
    home = load_experiment(MLP, ["data={name: arrays, path: ~/d.npz}"], cwd=tmp_path)
    assert home.data.path == str(Path.home() / "d.npz")  # type: ignore[union-attr]


def test_interpolation_and_its_errors(tmp_path: Path) -> None:
    good = tmp_path / "interp.yaml"
    good.write_text(
        "name: x\ntask: classification\nmodel: {name: mlp}\ndata: {name: digits}\n"
        "tracking: {experiment: '${name}-study'}\n"
    )
    assert load_experiment(good, cwd=tmp_path).tracking.experiment == "x-study"
    bad = tmp_path / "bad-interp.yaml"
    bad.write_text(good.read_text().replace("${name}", "${nmae}"))
    with pytest.raises(ConfigError, match=r"bad-interp\.yaml: Interpolation key 'nmae' not found"):
        load_experiment(bad, cwd=tmp_path)


def test_an_anomaly_search_on_standardised_inputs_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"data.standardize: the anomaly task cuts its signal region on the raw"
    ):
        load_experiment(EXPERIMENTS / "dijet_anomaly.yaml", ["data.standardize=true"])
