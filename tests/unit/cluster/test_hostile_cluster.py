"""Hostile input to ``labkit submit`` (issue 14): every bad profile, ``--slurm`` value and
``class_path`` is one clear error before anything is queued, and nothing is imported to find out."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from labkit.cluster._classpath import check_class_path
from labkit.cluster._profile import load_profile
from labkit.cluster._submit import submit_run
from labkit.config import Experiment
from labkit.errors import ConfigError, ExperimentFileError, RegistryError
from tests.conftest import REPO

LOCAL = REPO / "cluster" / "slurm-local.yaml"
Load = Callable[..., Experiment]


def write(tmp_path: Path, text: str, name: str = "site.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- --slurm KEY=VALUE -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("name.x=1", r"--slurm 'name.x=1': name takes no sub-key; write --slurm name=VALUE"),
        ("time.h=1", r"--slurm 'time.h=1': time takes no sub-key"),
        (
            "partion.x=1",
            r"--slurm 'partion.x=1': partion: unknown key \(did you mean 'partition'\?\); valid keys here: "
            r"partition, account, .* \(job fields\)",
        ),
        (
            "preemption.grac=60",
            r"--slurm 'preemption.grac=60': preemption.grac: unknown key \(did you mean 'grace'\?\); "
            r"valid keys here: signal, grace, requeue",
        ),
        ("preemption.grace.x=1", r"preemption has one level of keys, e.g. --slurm preemption.grace=300"),
        ("=1", r"--slurm '=1': write KEY=VALUE"),
    ],
)
def test_a_bad_slurm_key_names_the_option_and_the_valid_fields(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_profile(LOCAL, [item])


def test_slurm_reaches_into_the_profile_sections() -> None:
    profile, _ = load_profile(LOCAL, ["preemption.grace=60", "environment.FOO=1", "apptainer.image=/i.sif"])
    assert profile.preemption.grace == 60
    assert profile.environment["FOO"] == "1"  # an environment value stays text
    assert profile.apptainer is not None and profile.apptainer.image == "/i.sif"


def test_a_slurm_value_yaml_cannot_read_names_the_option() -> None:
    with pytest.raises(ConfigError, match=r"--slurm 'nodes=\[+\.\.\.': not valid YAML"):
        load_profile(LOCAL, ["nodes=" + "[" * 3000])
    with pytest.raises(ConfigError, match=r"--slurm 'overrides=\[model.hidden=\[1\]': not valid YAML"):
        load_profile(LOCAL, ["overrides=[model.hidden=[1]"])


def test_a_slurm_mapping_with_a_colon_is_read_as_yaml() -> None:
    profile, _ = load_profile(LOCAL, ["preemption={grace: 10}", "time=02:00:00"])
    assert profile.preemption.grace == 10
    assert profile.time == "02:00:00"  # a time stays text


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("nodes=1e20", r"nodes: "),
        ("nodes=10001", r"nodes: input should be less than or equal to 10000"),
        ("nodes=true", r"nodes: "),
        ("gpus_per_node=1025", r"gpus_per_node: input should be less than or equal to 1024"),
        ("tasks_per_node=100000", r"tasks_per_node: input should be less than or equal to 1024"),
        ("cpus_per_task=1000000", r"cpus_per_task: input should be less than or equal to 4096"),
        ("mem=" + "9" * 40 + "G", r"mem: "),
        ("time=99999999-00", r"time: .*longer than a year"),
    ],
)
def test_profile_numbers_are_bounded_like_the_experiment(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"cluster profile .*\n  {message}"):
        load_profile(LOCAL, [item])


def test_submit_validates_the_experiment_with_the_profile_merged(load: Load, in_tmp: Path) -> None:
    profile, path = load_profile(LOCAL)
    huge = profile.model_copy(update={"nodes": 10**20, "gpus_per_node": 1})  # past the profile's checks
    with pytest.raises(ConfigError, match=r"(?s)cluster profile slurm-local.*trainer.num_nodes: .*10000"):
        submit_run(load("digits_mlp"), huge, path, dry_run=True)


# -- the profile file ---------------------------------------------------------------------------
def test_a_missing_interpolation_names_the_profile(tmp_path: Path) -> None:
    path = write(tmp_path, "name: site\npartition: ${nosuch}\n")
    with pytest.raises(ConfigError, match=rf"cluster profile {path}: .*'nosuch' not found.*interpolation"):
        load_profile(path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.hidden=[64,64", r"'model.hidden=\[64,64': not valid YAML"),
        ("seed=*a", r"'seed=\*a': not valid YAML: the alias '\*a' names no anchor"),
        (
            "name=!!python/object:os.system x",
            r"'name=!!python/object:os.system x': the YAML tag .* is not allowed",
        ),
        ("a=" + "[" * 3000, r"'a=\[{75}\.\.\.': not valid YAML"),
        ("not an override", r"'not an override' is not of the form KEY=VALUE"),
    ],
)
def test_a_typo_in_the_profile_overrides_names_the_profile(
    tmp_path: Path, override: str, message: str
) -> None:
    path = write(tmp_path, f"name: site\noverrides:\n  - {override!r}\n")
    with pytest.raises(ConfigError, match=rf"cluster profile {path}:\n  overrides: {message}"):
        load_profile(path)


def test_a_profile_name_not_found_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(
        ExperimentFileError,
        match=rf"no cluster profile 'lab-gpu'; looked for {tmp_path}/cluster/lab-gpu.yaml, but there is no "
        rf"folder {tmp_path}/cluster .*give the profile's file instead, e.g. --cluster /path/to/",
    ):
        load_profile("lab-gpu", cwd=tmp_path)


def test_a_device_as_profile_is_not_called_missing() -> None:
    with pytest.raises(ExperimentFileError, match=r"cluster profile is not a regular file .*: /dev/null"):
        load_profile("/dev/null")


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_an_empty_profile_is_refused(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ExperimentFileError, match=rf"cluster profile {path} is empty; a profile needs"):
        load_profile(path)


def test_a_profile_path_not_found_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(
        ExperimentFileError, match=rf"not found: sites/x.yaml \(looked for .*{tmp_path}/sites/x.yaml"
    ):
        load_profile("sites/x.yaml", cwd=tmp_path)


# -- class_path checked before submit returns ---------------------------------------------------
@pytest.fixture
def user_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's module that must never be imported on the login node (it exits if it is)."""
    code = tmp_path / "code"
    (code / "mypkg").mkdir(parents=True)
    (code / "mypkg" / "__init__.py").write_text("")
    (code / "mypkg" / "nets.py").write_text(
        "import sys\nsys.exit('imported on the login node')\n"
        "class Net:\n    pass\n"
        "try:\n    from fancy import Other\nexcept ImportError:\n    Other = None\n"
    )
    (code / "broken.py").write_text("class Net(:\n")
    monkeypatch.chdir(code)
    return code


@pytest.mark.parametrize("path", ["mypkg.nets.Net", "mypkg.nets:Net", "mypkg.nets.Other", "torch.nn.Module"])
def test_a_class_that_resolves_passes_without_importing_it(user_code: Path, path: str) -> None:
    check_class_path(path, "model.class_path", user_code)
    assert "mypkg.nets" not in sys.modules


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "nosuch.Net",
            r"model.class_path: 'nosuch.Net': no module named 'nosuch' in .*code \(the job's working",
        ),
        ("mypkg.nest.Net", r"no module named 'mypkg.nest' in package 'mypkg'"),
        ("mypkg.nets.Nett", r"module 'mypkg.nets' \(.*nets.py\) defines no 'Nett' \(did you mean 'Net'\?\)"),
        ("broken.Net", r"module 'broken' does not import: syntax error in .*broken.py, line 1"),
    ],
)
def test_a_class_that_does_not_resolve_is_named(user_code: Path, path: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        check_class_path(path, "model.class_path", user_code)


def test_submit_refuses_a_class_path_that_will_not_import(load: Load, user_code: Path) -> None:
    profile, path = load_profile(LOCAL)
    exp = load("digits_mlp", "model={class_path: mypkg.nets.Nte}")
    with pytest.raises(RegistryError, match=r"model.class_path: 'mypkg.nets.Nte': .*defines no 'Nte'"):
        submit_run(exp, profile, path, dry_run=True)
    exp = load("digits_mlp", "data={class_path: nosuch_data.Module}")
    with pytest.raises(RegistryError, match=r"data.class_path: 'nosuch_data.Module': no module named"):
        submit_run(exp, profile, path, dry_run=True)
    ok = load("digits_mlp", "model={class_path: mypkg.nets.Net}")
    assert submit_run(ok, profile, path, dry_run=True).job_id is None


def test_an_apptainer_job_may_use_modules_of_its_image(load: Load, user_code: Path) -> None:
    profile, path = load_profile(LOCAL, ["apptainer.image=/images/lab.sif"])
    in_image = load("digits_mlp", "model={class_path: only_in_the_image.Net}")
    assert submit_run(in_image, profile, path, dry_run=True).job_id is None
    typo = load("digits_mlp", "model={class_path: mypkg.nets.Nte}")
    with pytest.raises(RegistryError, match="defines no 'Nte'"):
        submit_run(typo, profile, path, dry_run=True)


def test_a_study_submission_checks_its_class_paths(load: Load, user_code: Path) -> None:
    from labkit.tuning._cluster import submit_study

    profile, path = load_profile(LOCAL)
    exp = load("digits_mlp_search", "data={class_path: mypkg.nets.Nte}")
    with pytest.raises(RegistryError, match=r"data.class_path: 'mypkg.nets.Nte'"):
        submit_study(
            exp, profile, path, study="s", storage="sqlite:///x.db", trials=2, workers=1, dry_run=True
        )
