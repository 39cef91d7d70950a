"""Site profiles: the shipped ones load, the generic-field table, and every error names the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.cluster._profile import SBATCH_FLAGS, Profile, load_profile, time_seconds
from labkit.errors import ConfigError, ExperimentFileError
from tests.conftest import REPO

SHIPPED = sorted(p.stem for p in (REPO / "cluster").glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "site.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_three_profiles_ship() -> None:
    assert {"slurm-local", "lab-gpu", "national-hpc"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_load_by_path_and_by_name(name: str) -> None:
    by_path, path = load_profile(REPO / "cluster" / f"{name}.yaml")
    by_name, _ = load_profile(name, cwd=REPO)
    assert by_path == by_name and by_path.name == name and path.is_file()


def test_slurm_local_is_the_ci_cluster() -> None:
    profile, _ = load_profile(REPO / "cluster" / "slurm-local.yaml")
    assert profile.partition == "debug" and profile.gpus == 0 and profile.preemption.requeue


def test_every_generic_field_maps_to_a_flag_in_the_table() -> None:
    profile = Profile(
        name="all",
        partition="p",
        account="a",
        qos="q",
        time="1-00:00:00",
        nodes=2,
        tasks_per_node=4,
        cpus_per_task=8,
        gpus_per_node=4,
        gpu_type="h100",
        mem="200G",
        constraint="h100&ib",
        hint="nomultithread",
        exclusive=True,
        reservation="r",
        mail_type="END",
        mail_user="ana@example.org",
    )
    flags = profile.directives()
    for field, flag in SBATCH_FLAGS.items():
        if field != "mem_per_cpu":  # mem and mem_per_cpu exclude each other
            assert any(f.split("=")[0] == flag for f in flags), field
    assert "--gres=gpu:h100:4" in flags and "--exclusive" in flags and "--signal=USR1@120" in flags


def test_unknown_field_lists_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "name: site\npartion: gpu\n")
    with pytest.raises(
        ConfigError, match=r"partion: unknown key \(did you mean 'partition'\?\); valid keys here: .*qos"
    ):
        load_profile(path)


def test_unknown_field_given_with_slurm_option_is_an_error_too(tmp_path: Path) -> None:
    path = write(tmp_path, "name: site\n")
    with pytest.raises(ConfigError, match=r"gpu_per_node: unknown key \(did you mean 'gpus_per_node'\?\)"):
        load_profile(path, ["gpu_per_node=4"])


def test_overrides_set_fields_and_times_stay_text(tmp_path: Path) -> None:
    path = write(tmp_path, "name: site\n")
    profile, _ = load_profile(
        path, ["time=02:00:00", "tasks_per_node=2", "preemption.grace=30", "exclusive=true"]
    )
    assert profile.time == "02:00:00" and profile.tasks_per_node == 2
    assert profile.preemption.grace == 30 and profile.exclusive is True


def test_override_without_equals_sign(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--slurm 'time': write KEY=VALUE"):
        load_profile(write(tmp_path, "name: site\n"), ["time"])


def test_a_time_read_as_a_number_is_refused(tmp_path: Path) -> None:
    # YAML 1.1: 12:00:00 unquoted is 43200 (base 60), 90 is 90: both refused, with the fix
    for text in ("12:00:00", "90"):
        with pytest.raises(ConfigError, match=r'time: write it in quotes, e.g. time: "12:00:00"'):
            load_profile(write(tmp_path, f"name: site\ntime: {text}\n"))
    quoted, _ = load_profile(write(tmp_path, 'name: site\ntime: "90"\n'))
    given, _ = load_profile(write(tmp_path, "name: site\n"), ["time=90"])
    assert quoted.time == given.time == "90"


@pytest.mark.parametrize("time", ["1h", "25:0", "1-", "abc"])
def test_bad_time_format(tmp_path: Path, time: str) -> None:
    with pytest.raises(ConfigError, match=r"time: string should match pattern"):
        load_profile(write(tmp_path, f'name: site\ntime: "{time}"\n'))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 1800),
        ("10:30", 630),
        ("02:00:00", 7200),
        ("1-02", 93600),
        ("1-02:30", 95400),
        ("2-00:00:10", 172810),
    ],
)
def test_slurm_time_formats(text: str, seconds: int) -> None:
    assert time_seconds(text) == seconds


def test_grace_must_fit_in_the_time_limit(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"preemption.grace \(900 s\) must be shorter than time \(00:10:00\)"
    ):
        load_profile(write(tmp_path, 'name: site\ntime: "00:10:00"\npreemption: {grace: 900}\n'))


def test_gpu_type_without_gpus(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gpu_type is set but gpus_per_node is 0"):
        load_profile(write(tmp_path, "name: site\ngpu_type: a100\n"))


def test_mem_and_mem_per_cpu_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="set mem or mem_per_cpu, not both"):
        load_profile(write(tmp_path, "name: site\nmem: 4G\nmem_per_cpu: 1G\n"))


@pytest.mark.parametrize(
    "line",
    [
        'partition: "gpu\\n#SBATCH --account=stolen"',
        "partition: gpu; rm -rf ~",
        'account: "$(whoami)"',
        "mem: lots",
    ],
)
def test_job_fields_cannot_smuggle_text_onto_sbatch_lines(tmp_path: Path, line: str) -> None:
    with pytest.raises(ConfigError, match="string should match pattern"):
        load_profile(write(tmp_path, f"name: site\n{line}\n"))


def test_extra_sbatch_flags_are_single_flags(tmp_path: Path) -> None:
    ok, _ = load_profile(write(tmp_path, "name: site\nsbatch_extra: [--licenses=scratch, --requeue]\n"))
    assert ok.directives()[-2:] == ["--licenses=scratch", "--requeue"]
    with pytest.raises(ConfigError, match="is not one sbatch flag like --licenses=scratch"):
        load_profile(write(tmp_path, 'name: site\nsbatch_extra: ["--comment=a b"]\n'))


def test_setup_lines_are_one_line_each(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"setup: .*one line per entry"):
        load_profile(write(tmp_path, 'name: site\nsetup: ["module load a\\nmodule load b"]\n'))


def test_environment_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'A B' is not an environment variable name"):
        load_profile(write(tmp_path, 'name: site\nenvironment: {"A B": "1"}\n'))


def test_profile_not_found_lists_the_profiles_here(tmp_path: Path) -> None:
    (tmp_path / "cluster").mkdir()
    write(tmp_path / "cluster", "name: lab-gpu\n", "lab-gpu.yaml")
    with pytest.raises(
        ExperimentFileError,
        match=r"no cluster profile 'lab-gpus' \(did you mean 'lab-gpu'\?\); profiles in .*: lab-gpu",
    ):
        load_profile("lab-gpus", cwd=tmp_path)
    with pytest.raises(ExperimentFileError, match=r"cluster profile not found: cluster/nope.yaml"):
        load_profile("cluster/nope.yaml", cwd=tmp_path)


def test_profile_that_is_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ExperimentFileError, match="must be a mapping"):
        load_profile(write(tmp_path, "- a\n- b\n"))


def test_world_size_and_tasks_default_to_one_per_gpu() -> None:
    assert Profile(name="x", gpus_per_node=4, nodes=2).world_size == 8
    assert Profile(name="x").ntasks_per_node == 1
