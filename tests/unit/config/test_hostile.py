"""Hostile input at the config edge (issue 14): every bad override, file or value is a ConfigError
naming the override or field, the value and what was expected -- never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labkit.config import load_experiment, parse_value, validate_experiment
from labkit.errors import ConfigError, ExperimentFileError
from tests.conftest import EXPERIMENTS

MLP = EXPERIMENTS / "digits_mlp.yaml"
SEARCH = EXPERIMENTS / "digits_mlp_search.yaml"
NO_USER = "~labkit_no_such_user_zz"
SIM = "data={name: simulated, simulator: calo, inputs: showers, targets: [incident_energy]"
FILE = "data={name: file, path: d.h5, inputs: x, targets: y"


# ------------------------------------------------------------------ 1. overrides that are not YAML
@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        (
            "model.hidden=[64,64",
            r"^override 'model\.hidden=\[64,64': not valid YAML \(.*did not find expected.*\); "
            r"quote the value to keep it as text or fix the brackets$",
        ),
        ("name=x: y: z", r"^override 'name=x: y: z': not valid YAML \(mapping values are not allowed"),
        ("seed=*a", r"^override 'seed=\*a': not valid YAML: the alias '\*a' names no anchor"),
        (
            "seed=!!python/object/apply:os.system [ls]",
            r"the YAML tag '!!python/object/apply:os\.system' is not allowed: write a plain value",
        ),
        ("seed=%x", r"^override 'seed=%x': not valid YAML"),
        ("seed={a: 1, a: 2}", r"^override 'seed=\{a: 1, a: 2\}': not valid YAML \(.*duplicate key"),
        ("runs_root=a\x00b", r"^override 'runs_root=a\\x00b': contains a character YAML does not allow"),
        (
            "model.hidden=" + "[" * 3000 + "]" * 3000,
            r"^override 'model\.hidden=\[\[\[+\.\.\.': nested too deeply",
        ),
        (
            "model.x=" + "{a: " * 200 + "1" + "}" * 200,
            r"^override 'model\.x=\{a: .*\.\.\.': nested too deeply",
        ),
        ("model.hidden=" + "[" * 40 + "]" * 40, r"nested too deeply; at most 32 levels"),
    ],
)
def test_an_override_that_is_not_a_value_is_named(override: str, pattern: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=pattern) as info:
        load_experiment(MLP, [override], cwd=tmp_path)
    assert len(str(info.value)) < 300  # a long override is shortened, not echoed in full


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("task=[1]", r"task: expected a mapping of keys to values \(got \[1\]\)"),
        ("model=[1]", r"model: expected a mapping of keys to values \(got \[1\]\)"),
        ("task={num_classes: 3}", r"task: give a 'kind' saying which task kind to use"),
    ],
)
def test_a_value_of_the_wrong_shape_is_a_config_error(override: str, pattern: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_experiment(MLP, [override], cwd=tmp_path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        ("1e-3", 1e-3),
        ("true", True),
        ("[64, 64]", [64, 64]),
        ("{a: 1, b: [x]}", {"a": 1, "b": ["x"]}),
        ("pion", "pion"),
        ("'00:10'", "00:10"),
        ("a\nb", "a\nb"),
        ("${name}", "${name}"),
    ],
)
def test_parse_value_reads_plain_yaml(text: str, expected: Any) -> None:
    assert parse_value(text, what="x") == expected


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("[1, 2", r"^simulator option 'energy_range=\[1, 2': not valid YAML .*fix the brackets$"),
        ("*a", r"alias '\*a' names no anchor"),
        ("!!python/name:os.system", r"the YAML tag '!!python/name:os\.system' is not allowed"),
        ("[" * 3000 + "]" * 3000, r"nested too deeply"),
    ],
)
def test_parse_value_names_what_was_given(text: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        parse_value(text, what=f"simulator option {'energy_range=' + text if text == '[1, 2' else text!r}")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("name: x\nmodel: {name: mlp, hidden: " + "[" * 3000 + "]" * 3000 + "}\n", r"nested too deeply"),
        ("name: x\ntracking: {tags: " + "{a: " * 200 + "1" + "}" * 200 + "}\n", r"nested too deeply"),
        ("name: x\nmodel: {name: mlp, hidden: " + "[" * 40 + "]" * 40 + "}\n", r"nested too deeply"),
    ],
)
def test_a_deeply_nested_file_is_an_experiment_file_error(text: str, pattern: str, tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    with pytest.raises(ExperimentFileError, match=rf"deep\.yaml: {pattern}"):
        load_experiment(path, cwd=tmp_path)


def test_a_broken_interpolation_in_a_shorthand_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "interp.yaml"
    path.write_text("name: x\ntask: ${nope}\nmodel: {name: mlp}\ndata: {name: digits}\n")
    with pytest.raises(ConfigError, match=r"interp\.yaml: Interpolation key 'nope' not found"):
        load_experiment(path, cwd=tmp_path)


# ------------------------------------------------------------------ 2. many overrides, merged once
def test_two_thousand_overrides_apply_in_order(tmp_path: Path) -> None:
    overrides = [f"trainer.max_epochs={i + 1}" for i in range(1000)]
    overrides += [f"seed={i}" for i in range(990)] + [f"model.hidden=[{i + 1},{i + 2}]" for i in range(8)]
    overrides += ["model={name: mlp, dropout: 0.5}", "seed=7"]
    exp = load_experiment(MLP, overrides, cwd=tmp_path)
    assert exp.trainer.max_epochs == 1000  # the last one wins
    assert exp.model.dropout == 0.5  # type: ignore[union-attr]
    assert exp.model.hidden == (64, 64)  # type: ignore[union-attr]  # the mapping replaced the file's
    assert exp.seed == 7
    assert exp.optimizer.lr == pytest.approx(3e-3)  # untouched values stay


def test_override_semantics_kept(tmp_path: Path) -> None:
    exp = load_experiment(
        MLP,
        ["task=regression", "task.loss=mae", "tracking.run_name=x\ny"],
        cwd=tmp_path,
    )
    assert (exp.task.kind, exp.task.loss) == ("regression", "mae")  # type: ignore[union-attr]
    assert exp.tracking.run_name == "x\ny"  # a plain value with a line break stays as typed
    interpolated = load_experiment(MLP, ["seed=5", "tracking.run_name=run-${seed}"], cwd=tmp_path)
    assert interpolated.tracking.run_name == "run-5"


# ------------------------------------------------------------------ 3. validation that matches what runs
@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["seed=4294967296"], r"seed: input should be less than 4294967296 \(got 4294967296\)"),
        (["seed=-1"], r"seed: input should be greater than or equal to 0"),
        ([SIM + ", sim_seed: 4294967296}"], r"data\.sim_seed: input should be less than 4294967296"),
        (
            ["task={kind: surrogate, sample_seed: 18446744073709551616}"],
            r"task\.sample_seed: input should be less",
        ),
        (
            [SIM + ", events: 1000000000000}"],
            r"data\.events: input should be less than or equal to 1000000000 ",
        ),
        (["data.num_workers=1000000"], r"data\.num_workers: input should be less than or equal to 256"),
        (["data.batch_size=100000000"], r"data\.batch_size: input should be less than or equal to 16777216"),
        (
            ["trainer.max_epochs=10000000"],
            r"trainer\.max_epochs: input should be less than or equal to 1000000",
        ),
        (["model.hidden=[1000000000]"], r"model\.hidden\.0: input should be less than or equal to 65536"),
        (["task.num_classes=1000000000"], r"task\.num_classes: input should be less than or equal to 10000"),
        (["optimizer.lr=.inf"], r"optimizer\.lr: input should be a finite number \(got Infinity\)"),
        (["optimizer.weight_decay=.nan"], r"optimizer\.weight_decay: input should be a finite number"),
        (["trainer.gradient_clip_val=.inf"], r"trainer\.gradient_clip_val: input should be a finite number"),
        (["tracking.drain_timeout=.inf"], r"tracking\.drain_timeout: input should be a finite number"),
        (["trainer.max_epochs=yes"], r"trainer\.max_epochs: expected a number, got a boolean .*\(got true\)"),
        (["trainer.devices=true"], r"trainer\.devices: expected a number, got a boolean"),
        (["optimizer.lr=true"], r"optimizer\.lr: expected a number, got a boolean"),
        (["model.hidden=[true, 4]"], r"model\.hidden: expected a number, got a boolean"),
        (["model.batch_norm=1"], r"model\.batch_norm: expected true or false \(got 1\)"),
        (["trainer.deterministic='yes'"], r"trainer\.deterministic: expected true or false \(got 'yes'\)"),
        ([FILE + "}", "data.inputs=[]"], r"data\.inputs: name at least one key"),
        ([FILE + "}", "data.targets=[]"], r"data\.targets: name at least one key"),
        ([FILE + "}", "data.inputs=''"], r"data\.inputs: name a key"),
    ],
)
def test_values_that_would_crash_a_run_are_refused(
    overrides: list[str], pattern: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_experiment(MLP, overrides, cwd=tmp_path)


def test_plain_numbers_still_validate(tmp_path: Path) -> None:
    exp = load_experiment(
        MLP,
        ["optimizer.lr=1", "seed=4294967295", "trainer.max_epochs=3.0", "model.batch_norm=true"],
        cwd=tmp_path,
    )
    assert exp.optimizer.lr == 1.0 and isinstance(exp.optimizer.lr, float)
    assert exp.seed == 2**32 - 1 and exp.trainer.max_epochs == 3
    assert exp.model.batch_norm is True  # type: ignore[union-attr]


def test_a_huge_grid_is_refused_naming_its_size(tmp_path: Path) -> None:
    params = (
        "search.params={optimizer.lr: {type: float, low: 0.0001, high: 0.1, step: 0.0000001},"
        " trainer.max_epochs: {type: int, low: 1, high: 1000}}"
    )
    with pytest.raises(
        ConfigError,
        match=r"search: sampler grid: the grid has 999,001,000 points, more than 1,000,000; "
        r"the values per parameter: optimizer\.lr \(999,001\), trainer\.max_epochs \(1,000\)",
    ):
        load_experiment(SEARCH, ["search.sampler=grid", params], cwd=tmp_path)
    small = load_experiment(
        SEARCH,
        ["search.sampler=grid", "search.params={trainer.max_epochs: {type: int, low: 1, high: 3}}"],
        cwd=tmp_path,
    )
    assert small.search is not None and small.search.grid() == {"trainer.max_epochs": [1, 2, 3]}


def test_a_grid_with_a_tiny_step_is_counted_not_capped(tmp_path: Path) -> None:
    params = "search.params={optimizer.lr: {type: float, low: 0.0, high: 1.0, step: 1e-300}}"
    with pytest.raises(ConfigError, match=r"the grid has about 10\^300 points, more than 1,000,000"):
        load_experiment(SEARCH, ["search.sampler=grid", params], cwd=tmp_path)


def test_a_search_range_must_be_finite(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"search\.params\.optimizer\.lr\.high: input should be a finite"):
        load_experiment(
            SEARCH, ["search.params={optimizer.lr: {type: float, low: 0.1, high: .inf}}"], cwd=tmp_path
        )


# ------------------------------------------------------------------ 4. paths
@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ([f"runs_root={NO_USER}/runs"], rf"runs_root: cannot expand '{NO_USER}': no such user"),
        ([f"data={{name: arrays, path: {NO_USER}/d.npz}}"], rf"data\.path: cannot expand '{NO_USER}'"),
        ([FILE.replace("d.h5", f"{NO_USER}/d.h5") + "}"], rf"data\.path: cannot expand '{NO_USER}'"),
        ([SIM + f", cache_dir: {NO_USER}/c}}"], rf"data\.cache_dir: cannot expand '{NO_USER}'"),
        (['runs_root="a\\0b"'], r"runs_root: contains a NUL character \(\\x00\).*\(got 'a\\x00b'\)"),
        (['data={name: arrays, path: "a\\0b"}'], r"data\.path: contains a NUL character"),
        (['tracking.uri="sqlite:///a\\0b.db"'], r"tracking\.uri: contains a NUL character"),
        (['tracking.tags={a: "b\\0"}'], r"tracking\.tags: contains a NUL character"),
    ],
)
def test_paths_that_cannot_name_a_file_are_refused(
    overrides: list[str], pattern: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_experiment(MLP, overrides, cwd=tmp_path)


def test_nul_in_plain_data_is_refused(tmp_path: Path) -> None:
    data = {"name": "x", "task": "classification", "model": {"name": "mlp"}, "data": {"name": "digits"}}
    with pytest.raises(ConfigError, match=r"runs_root: contains a NUL character"):
        validate_experiment({**data, "runs_root": "r\x00"}, cwd=tmp_path)


@pytest.mark.parametrize(
    "data", ["{name: arrays, path: sub}", "{name: file, path: sub, inputs: x, targets: y}"]
)
def test_a_directory_as_data_path_is_named_a_directory(data: str, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    with pytest.raises(ConfigError, match=rf"data\.path: {tmp_path / 'sub'} is a directory, not a file"):
        load_experiment(MLP, [f"data={data}"], cwd=tmp_path)


def test_the_event_bound_is_the_simulators() -> None:
    from labkit import sim
    from labkit.config._data_specs import MAX_EVENTS

    assert MAX_EVENTS == sim.MAX_EVENTS


# ------------------------------------------------------------------ round 2: values that reach torch
SEG = EXPERIMENTS / "tracks_seg.yaml"


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["optimizer.lr=1e39"], r"optimizer\.lr: input should be less than or equal to 10 \(got 1e\+39\)"),
        (["optimizer.lr=1e308"], r"optimizer\.lr: input should be less than or equal to 10"),
        (
            ["optimizer.weight_decay=1e308"],
            r"optimizer\.weight_decay: input should be less than or equal to 10",
        ),
        (
            ["optimizer.name=sgd", "optimizer.momentum=1e308"],
            r"optimizer\.momentum: input should be less than 1 \(got 1e\+308\)",
        ),
        (["optimizer.momentum=1"], r"optimizer\.momentum: input should be less than 1"),
        (["optimizer.scheduler={name: plateau, min_lr: 1e300}"], r"scheduler\.min_lr: input should be less"),
        (["trainer.gradient_clip_val=1e300"], r"gradient_clip_val: at most 1e\+38 \(larger values overflow"),
        (
            ["trainer.early_stopping={min_delta: 1e39}"],
            r"early_stopping\.min_delta: at most 1e\+38",
        ),
        (
            ["trainer.devices=[]"],
            r"^.*1 problem\n  trainer\.devices: an empty list names no device; give a count .* \(got \[\]\)$",
        ),
        (
            ["task={kind: anomaly}", "task.kl_weight=1e300"],
            r"task\.kl_weight: input should be less than or equal to 1000000",
        ),
    ],
)
def test_floats_that_overflow_training_are_refused(
    overrides: list[str], pattern: str, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_experiment(MLP, overrides, cwd=tmp_path)


def test_sane_optimizer_values_still_pass(tmp_path: Path) -> None:
    exp = load_experiment(
        MLP,
        ["optimizer.name=sgd", "optimizer.lr=10", "optimizer.momentum=0.99", "optimizer.weight_decay=0.1"],
        cwd=tmp_path,
    )
    assert (exp.optimizer.lr, exp.optimizer.momentum) == (10.0, 0.99)
    assert load_experiment(MLP, ["trainer.devices=[0]"], cwd=tmp_path).trainer.devices == (0,)


def test_unet_stages_are_bounded_and_widths_at_least_one(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"model\.channels: 21 stages, at most 8: each stage halves the image"
    ):
        load_experiment(SEG, ["model.channels=[" + ",".join(["1"] * 21) + "]"], cwd=tmp_path)
    with pytest.raises(
        ConfigError, match=r"1 problem\n  model\.channels\.0: input should be greater than 0 \(got 0\)$"
    ):
        load_experiment(SEG, ["model.channels=[0]"], cwd=tmp_path)
    model = load_experiment(SEG, ["model.channels=[1,2,3,4,5,6,7,8]"], cwd=tmp_path).model
    assert getattr(model, "channels", None) == tuple(range(1, 9))


# ------------------------------------------------------------------ round 2: tracking URIs check refuses
def _store_uris(tmp_path: Path) -> list[tuple[str, str]]:
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0:root:/root:/bin/bash\n")
    return [
        ("bogus://x", r"tracking\.uri: unknown scheme 'bogus'; use http\(s\)://HOST:PORT"),
        (f"sqlite:///{passwd}", rf"tracking\.uri: {passwd} is not an SQLite database"),
        (f"sqlite:///{tmp_path}", r"is a directory, not an SQLite database file"),
        ("sqlite:////dev/null", r"/dev/null is not a regular file"),
        ("'::::'", r"tracking\.uri: not a URI \(no scheme://\)"),
        ("bogus://ana:s3cret@host/x", r"\(got 'bogus://ana:\*\*\*@host/x'\)"),
    ]


def test_check_refuses_tracking_uris_compare_refuses(tmp_path: Path) -> None:
    for uri, pattern in _store_uris(tmp_path):
        with pytest.raises(ConfigError, match=pattern) as caught:
            load_experiment(MLP, [f"tracking.uri={uri}"], cwd=tmp_path)
        assert "s3cret" not in str(caught.value)
    assert not (tmp_path / "mlruns").exists()


def test_a_new_sqlite_store_is_fine_for_a_run(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/not/yet/mlflow.db"
    assert load_experiment(MLP, [f"tracking.uri={uri}"], cwd=tmp_path).tracking.uri == uri
    assert not (tmp_path / "not").exists()
    for ok in ("http://127.0.0.1:5000", "databricks", "sqlite://"):
        load_experiment(MLP, [f"tracking.uri={ok}"], cwd=tmp_path)


def test_a_bad_uri_in_the_environment_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^\$MLFLOW_TRACKING_URI: 'bogus://x': unknown scheme 'bogus'"):
        load_experiment(MLP, environ={"MLFLOW_TRACKING_URI": "bogus://x"}, cwd=tmp_path)


# ------------------------------------------------------------------ round 2: bounded error messages
def test_a_long_list_of_problems_is_cut_short(tmp_path: Path) -> None:
    data = {"name": "x", "task": "classification", "model": {"name": "mlp"}, "data": {"name": "digits"}}
    junk = {f"line{i}:" + "x" * 5000: None for i in range(300)}
    with pytest.raises(ConfigError) as caught:
        validate_experiment({**data, **junk}, cwd=tmp_path)
    lines = str(caught.value).splitlines()
    assert lines[0].endswith(": 300 problems")
    assert len(lines) == 1 + 20 + 1 and lines[-1] == "  ... and 280 more"
    assert all(len(line) <= 502 for line in lines)
