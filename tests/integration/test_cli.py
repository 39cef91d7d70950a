"""The ``labkit`` command as users meet it: a subprocess, its exit code, stdout and stderr."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

HEAVY = ("torch", "lightning", "pytorch_lightning", "mlflow")
MLP = str(REPO / "experiments" / "digits_mlp.yaml")


def labkit(
    *args: str, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=300,
    )


def imported_modules(*args: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "labkit", *args], capture_output=True, text=True, cwd=REPO
    )
    return {
        line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")
    }


@pytest.mark.parametrize(
    "args", [("--help",), ("run", "--help"), ("check", "--help"), ("generate", "--help"), ("--version",)]
)
def test_help_imports_nothing_heavy(args: tuple[str, ...]) -> None:
    modules = imported_modules(*args)
    assert "labkit.cli" in modules
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == []


def test_check_validates_without_torch() -> None:
    modules = imported_modules("check", MLP)
    assert "labkit.config._schema" in modules
    assert not [m for m in modules if m.split(".")[0] in HEAVY]


def test_help_lists_commands() -> None:
    result = labkit("--help")
    assert result.returncode == 0
    assert "run" in result.stdout and "check" in result.stdout


def test_version() -> None:
    from labkit import __version__

    assert labkit("--version").stdout.strip() == f"labkit {__version__}"


def test_check_prints_resolved_experiment(tmp_path: Path) -> None:
    result = labkit("check", MLP, "trainer.max_epochs=4", cwd=tmp_path, env={"MLFLOW_TRACKING_URI": ""})
    assert result.returncode == 0, result.stderr
    assert "max_epochs: 4" in result.stdout
    assert f"uri: sqlite:///{tmp_path / 'mlflow.db'}" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("run", MLP, "trainer.max_epochs=abc"), "trainer.max_epochs: input should be a valid integer"),
        (("run", MLP, "trainer.max_epoch=3"), "did you mean 'max_epochs'?"),
        (("run", "experiments/nope.yaml"), "experiment file not found: experiments/nope.yaml"),
        (
            ("run", MLP, "model.name=resnet"),
            "unknown model 'resnet' (did you mean 'unet'?); valid: autoencoder, cnn, cvae, deepsets, mlp, set_transformer, two_stage, unet",
        ),
        (("run", MLP, "data.name=mnist"), "unknown dataset 'mnist'; valid: arrays, digits"),
        (
            ("run", MLP, "data={name: arrays, path: /nonexistent/d.h5}"),
            "data file not found: /nonexistent/d.h5",
        ),
        (("run", MLP, "max_epochs"), "override 'max_epochs' is not of the form KEY=VALUE"),
        (("check", MLP, "seed=-1"), "seed: input should be greater than or equal to 0"),
    ],
)
def test_user_errors_exit_2_with_one_message(args: tuple[str, ...], expected: str, tmp_path: Path) -> None:
    result = labkit(*args, env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"})
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("labkit: error: ")


def test_typer_usage_errors_exit_2() -> None:
    result = labkit("run")
    assert result.returncode == 2
    assert "Missing argument 'FILE'" in result.stderr


@pytest.mark.slow
def test_run_end_to_end_and_reproducible(tmp_path: Path) -> None:
    """The acceptance run: one FINISHED run per command with params, metrics, tags, artifacts."""
    from mlflow import search_runs, set_tracking_uri

    from labkit.tracking import git_state

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    env = {"MLFLOW_TRACKING_URI": uri}
    args = ("run", MLP, "trainer.max_epochs=2", "seed=7", f"runs_root={tmp_path / 'runs'}")
    first = labkit(*args, env=env)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr

    set_tracking_uri(uri)
    runs = search_runs(search_all_experiments=True)
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["status"] == "FINISHED"
    assert f"run id     {run['run_id']}" in first.stdout
    assert run["params.trainer.max_epochs"] == "2" and run["params.seed"] == "7"
    assert 0.0 <= run["metrics.test_acc"] <= 1.0
    assert run["metrics.val_loss"] > 0
    git = git_state(REPO)
    if git is not None:
        assert run["tags.mlflow.source.git.commit"] == git.commit
    assert f"mlflow ui --backend-store-uri {uri}" in first.stdout

    second = labkit(*args, env=env)
    assert second.returncode == 0, second.stderr
    runs = search_runs(search_all_experiments=True, order_by=["start_time ASC"])
    assert len(runs) == 2
    assert runs["metrics.test_acc"].nunique() == 1
    assert runs["metrics.test_loss"].nunique() == 1


@pytest.mark.slow
@pytest.mark.traceback_expected
def test_bug_in_training_exits_1_and_marks_failed(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    result = labkit(
        "run",
        MLP,
        "trainer.max_epochs=2",
        f"runs_root={tmp_path / 'runs'}",
        "model={class_path: tests.user_models.Exploding}",
        env={"MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "RuntimeError: exploded after 3 batches" in result.stderr
    assert result.stderr.rstrip().endswith("the run is marked FAILED")
    client = MlflowClient(uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "FAILED"
    assert "exploded" in run.data.tags["labkit.error"]


@pytest.mark.slow
def test_sigterm_during_training_marks_run_killed(tmp_path: Path) -> None:
    import signal
    import time

    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labkit",
            "run",
            MLP,
            "trainer.max_epochs=10000",
            "trainer.early_stopping=null",
            f"runs_root={tmp_path / 'runs'}",
            "--progress",
            "plain",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "MLFLOW_TRACKING_URI": uri},
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 240
    for line in proc.stderr:  # wait until training is under way
        if "epoch 1/" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated by SIGTERM; the run is marked KILLED" in err
    client = MlflowClient(uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "KILLED"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("tune", MLP), "the experiment has no search section: nothing to tune"),
        (
            ("tune", str(REPO / "experiments" / "digits_mlp_search.yaml"), "search.sampler=bayes"),
            "search.sampler: 'bayes' is not valid",
        ),
        (("tune", "status"), "--study NAME is required"),
        (
            ("tune", "best", "--study", "nope", "--storage", "redis://h"),
            "--storage 'redis://h': use sqlite:///",
        ),
    ],
)
def test_tune_user_errors_exit_2(args: tuple[str, ...], expected: str, tmp_path: Path) -> None:
    result = labkit(*args, env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'm.db'}"}, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_tune_status_of_unknown_study(tmp_path: Path) -> None:
    import optuna

    storage = f"sqlite:///{tmp_path / 's.db'}"
    missing = labkit("tune", "status", "--study", "nope", "--storage", storage, cwd=tmp_path)
    assert missing.returncode == 2
    assert f"--storage: no study database at {storage} (run labkit tune first)" in missing.stderr
    assert not (tmp_path / "s.db").exists()  # looking did not create an empty database
    optuna.create_study(study_name="other", storage=storage)
    unknown = labkit("tune", "status", "--study", "nope", "--storage", storage, cwd=tmp_path)
    assert unknown.returncode == 2
    assert f"--study: no study 'nope' in {storage}; studies there: other" in unknown.stderr


# -- cluster commands: fast on a login node, clear errors -------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ("submit", MLP, "--cluster", "cluster/slurm-local.yaml", "--dry-run"),
        ("status", "--help"),
        ("logs", "--help"),
        ("cancel", "--help"),
        ("submit", "--help"),
    ],
)
def test_cluster_commands_import_nothing_heavy(args: tuple[str, ...]) -> None:
    modules = imported_modules(*args)
    assert "labkit.cli" in modules
    assert not [m for m in modules if m.split(".")[0] in HEAVY]


def test_submit_dry_run_prints_a_script_bash_accepts(tmp_path: Path) -> None:
    result = labkit(
        "submit", MLP, "trainer.max_epochs=3", "--cluster", "cluster/slurm-local.yaml", "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    script = tmp_path / "job.sh"
    script.write_text(result.stdout)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert "#SBATCH --partition=debug" in result.stdout and "--run-dir" in result.stdout


def test_submit_needs_a_cluster() -> None:
    result = labkit("submit", MLP)
    assert result.returncode == 2
    assert "--cluster PROFILE is required" in result.stderr


def test_submit_with_an_unknown_profile_field(tmp_path: Path) -> None:
    result = labkit(
        "submit", MLP, "--cluster", "cluster/slurm-local.yaml", "--slurm", "partion=gpu", "--dry-run"
    )
    assert result.returncode == 2
    assert "partion: unknown key (did you mean 'partition'?); valid keys here:" in result.stderr


def test_submit_refuses_a_password_in_the_tracking_uri() -> None:
    result = labkit(
        "submit",
        MLP,
        "tracking.uri=http://ana:s3cret@mlflow.example:5000",
        "--cluster",
        "cluster/slurm-local.yaml",
    )
    assert result.returncode == 2
    assert "tracking.uri holds a password" in result.stderr and "s3cret" not in result.stderr


def test_submit_without_sbatch_says_where_to_run(tmp_path: Path) -> None:
    env = {"PATH": str(Path(sys.executable).parent)}  # python, but no SLURM commands
    result = labkit("submit", MLP, "--cluster", "cluster/slurm-local.yaml", f"runs_root={tmp_path}", env=env)
    assert result.returncode == 2
    assert "sbatch not found" in result.stderr
    assert not list(tmp_path.rglob("run.json"))  # no half-made run directory left behind


@pytest.mark.parametrize(
    ("args", "message"),
    [(("status", "12x"), "not a SLURM job id: '12x'"), (("cancel", "$(id)"), "not a SLURM job id")],
)
def test_job_ids_are_checked(args: tuple[str, ...], message: str) -> None:
    result = labkit(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_tune_cluster_options_need_cluster() -> None:
    result = labkit("tune", str(REPO / "experiments" / "digits_mlp_search.yaml"), "--dry-run")
    assert result.returncode == 2
    assert "--slurm and --dry-run go with --cluster PROFILE" in result.stderr


def test_tune_workers_are_one_task_each() -> None:
    result = labkit(
        "tune",
        str(REPO / "experiments" / "digits_mlp_search.yaml"),
        "--cluster",
        "cluster/slurm-local.yaml",
        "--slurm",
        "tasks_per_node=2",
        "--dry-run",
    )
    assert result.returncode == 2
    assert "a tuning worker is one task on one node" in result.stderr


def test_tune_cluster_dry_run_renders_the_worker_array() -> None:
    result = labkit(
        "tune",
        str(REPO / "experiments" / "digits_mlp_search.yaml"),
        "--cluster",
        "cluster/slurm-local.yaml",
        "--workers",
        "3",
        "--dry-run",
    )
    assert result.returncode == 0, result.stderr
    assert "#SBATCH --array=0-2" in result.stdout and "tune worker --study digits_mlp_search" in result.stdout
    assert "LABKIT_STUDY_STORAGE=" not in result.stdout  # the storage URL travels in the environment


# -- labkit sim ------------------------------------------------------------------------------
def test_sim_twice_gives_identical_files_in_the_documented_layout(tmp_path: Path) -> None:
    import h5py
    import numpy as np

    for name in ("a.h5", "b.h5"):
        out = labkit("sim", "calo", "-n", "300", "--seed", "3", "-o", str(tmp_path / name))
        assert out.returncode == 0, out.stderr
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        assert set(a) == {"incident_energy", "showers", "particle"}
        assert (
            a["showers"].shape[0] == 300 and a["showers"].ndim == 4 and a["incident_energy"].shape == (300,)
        )
        for key in a:
            assert np.array_equal(a[key][()], b[key][()])
        assert {"material_z", "radial_edges"} & set(a.attrs) or len(a.attrs) > 0


def test_sim_grf_layout(tmp_path: Path) -> None:
    import h5py

    out = labkit("sim", "grf", "-n", "50", "--seed", "1", "-o", str(tmp_path / "f.h5"), "size=16")
    assert out.returncode == 0, out.stderr
    with h5py.File(tmp_path / "f.h5") as f:
        assert f["fields"].shape == (50, 16, 16) and f["amplitude"].shape == f["tilt"].shape == (50,)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("sim", "cal", "-o", "x.h5"),
            "no simulator 'cal' (did you mean 'calo'?); choose one of: calo, dijet, grf, jets, tracks",
        ),
        (
            ("sim", "calo", "-o", "x.h5", "particl=pion"),
            "unknown option 'particl' for simulator 'calo' (did you mean 'particle'?)",
        ),
        (("sim", "calo", "-o", "x.h5", "particle=muon"), "particle"),
        (("sim", "calo"), "-o FILE.h5 is required"),
    ],
)
def test_sim_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    out = labkit(*args, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert message in out.stderr


def test_sim_does_not_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "keep.h5"
    target.write_text("precious")
    out = labkit("sim", "grf", "-n", "5", "-o", str(target))
    assert out.returncode == 2 and "exists" in out.stderr and target.read_text() == "precious"
