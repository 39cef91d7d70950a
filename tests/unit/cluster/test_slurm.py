"""Reading SLURM's answers (scontrol, sacct, TRES), job ids, and the environment of a job."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labkit.cluster._env import in_slurm_job, slurm_tags
from labkit.cluster._jobs import known_jobs, record_job
from labkit.cluster._slurm import (
    SlurmError,
    _gpus,
    _seconds,
    cancel,
    check_job_ids,
    current_job_id,
    parse_scontrol,
    query,
    sbatch,
)

LINE = (
    "JobId=124 ArrayJobId=123 ArrayTaskId=1 JobName=digits_mlp-tune UserId=ana(1000) JobState=RUNNING "
    "Reason=None Restarts=1 RunTime=1-02:03:04 TimeLimit=2-00:00:00 NodeList=gpu[01-02] "
    "TRES=cpu=8,mem=64G,node=2,billing=8,gres/gpu=4 StdOut=/home/ana/my runs/slurm-123_1.out"
)


def test_parse_scontrol_keeps_values_with_spaces() -> None:
    fields = parse_scontrol(LINE)
    assert fields["JobState"] == "RUNNING" and fields["NodeList"] == "gpu[01-02]"
    assert fields["StdOut"] == "/home/ana/my runs/slurm-123_1.out"
    assert fields["TRES"] == "cpu=8,mem=64G,node=2,billing=8,gres/gpu=4"


@pytest.mark.parametrize(
    ("text", "seconds"), [("00:00:09", 9), ("02:03:04", 7384), ("1-02:03:04", 93784), ("junk", 0)]
)
def test_elapsed(text: str, seconds: int) -> None:
    assert _seconds(text) == seconds


@pytest.mark.parametrize(
    ("tres", "gpus"),
    [
        ("cpu=8,mem=64G,node=1,gres/gpu=4", 4),
        ("cpu=8,gres/gpu=2,gres/gpu:a100=2", 2),  # the typed count repeats the untyped one
        ("cpu=8,gres/gpu:a100=2,gres/gpu:v100=1", 3),
        ("cpu=1,mem=1G,node=1,billing=1", 0),
        ("", 0),
    ],
)
def test_gpus_from_tres(tres: str, gpus: int) -> None:
    assert _gpus(tres) == gpus


@pytest.mark.parametrize("bad", ["12a", "$(id)", "1;2", "", "1_2_3"])
def test_job_ids_are_checked_before_any_command_runs(bad: str) -> None:
    with pytest.raises(SlurmError, match="not a SLURM job id"):
        check_job_ids([bad])
    with pytest.raises(SlurmError, match="not a SLURM job id"):
        cancel([bad])


def test_job_id_of_array_tasks() -> None:
    assert current_job_id({"SLURM_JOB_ID": "7"}) == "7"
    assert (
        current_job_id({"SLURM_JOB_ID": "9", "SLURM_ARRAY_JOB_ID": "8", "SLURM_ARRAY_TASK_ID": "1"}) == "8_1"
    )
    assert current_job_id({}) is None


def test_tags_of_a_job_and_none_outside() -> None:
    env = {
        "SLURM_JOB_ID": "9",
        "SLURM_ARRAY_JOB_ID": "8",
        "SLURM_ARRAY_TASK_ID": "1",
        "SLURM_JOB_NODELIST": "gpu01",
        "SLURM_JOB_PARTITION": "gpu",
        "SLURM_RESTART_COUNT": "2",
        "LABKIT_CLUSTER": "lab-gpu",
    }
    tags = slurm_tags(env)
    assert tags["slurm.job_id"] == "8_1" and tags["slurm.array_job_id"] == "8"
    assert tags["slurm.cluster"] == "lab-gpu" and tags["slurm.restarts"] == "2"
    assert slurm_tags({}) == {}
    assert in_slurm_job({"SLURM_JOB_ID": "1", "SLURM_JOB_NAME": "x"})
    assert not in_slurm_job({"SLURM_JOB_ID": "1", "SLURM_JOB_NAME": "bash"})  # an salloc shell


def test_without_slurm_commands_the_error_says_where_to_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no scontrol
    with pytest.raises(SlurmError, match=r"sbatch not found: .* run this on a login node of a SLURM cluster"):
        sbatch(tmp_path / "job.sh")
    with pytest.raises(SlurmError, match="scontrol not found"):
        query(["1"])


def test_sbatch_refusal_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "sbatch"  # a stand-in that refuses like sbatch does for a bad partition
    fake.write_text("#!/bin/sh\necho 'sbatch: error: invalid partition specified: nope' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(SlurmError, match=r"sbatch refused .*invalid partition specified: nope"):
        sbatch(tmp_path / "job.sh")


def test_job_list_survives_a_truncated_line(tmp_path: Path) -> None:
    record_job(tmp_path, job_id="1", kind="run", name="a", cluster="c", dir="/d", gpus=0)
    with (tmp_path / "jobs.jsonl").open("a") as f:
        f.write('{"job_id": "2", "ki')  # a full disk cut the write short
    record_job(tmp_path, job_id="3", kind="run", name="b", cluster="c", dir="/e", gpus=1)
    assert [j["job_id"] for j in known_jobs(tmp_path)] == ["1", "3"]
