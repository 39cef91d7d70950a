"""Rendered sbatch scripts: golden files for every shipped profile, and shell safety."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from labkit import __version__
from labkit.cluster._profile import load_profile
from labkit.cluster._render import JobSpec, directive_value, render_script
from labkit.cluster._submit import adapt_experiment, run_job
from labkit.config import load_experiment
from labkit.errors import ConfigError
from tests.conftest import EXPERIMENTS, REPO

GOLDEN = Path(__file__).parent / "golden"

# (golden file, profile, profile overrides, experiment): every shipped profile, CPU and GPU, DDP
CASES = [
    ("slurm-local", "slurm-local", [], "digits_mlp"),
    ("slurm-local-ddp2", "slurm-local", ["tasks_per_node=2"], "digits_mlp"),
    ("lab-gpu", "lab-gpu", [], "digits_cnn"),
    ("lab-gpu-4gpu-ddp", "lab-gpu", ["gpus_per_node=4", "time=2-00:00:00"], "digits_cnn"),
    ("national-hpc", "national-hpc", [], "digits_cnn"),
    ("national-hpc-2nodes", "national-hpc", ["nodes=2"], "digits_cnn"),
]


def render_case(profile_name: str, changes: list[str], experiment: str) -> str:
    profile, path = load_profile(REPO / "cluster" / f"{profile_name}.yaml", changes)
    exp = load_experiment(EXPERIMENTS / f"{experiment}.yaml", profile.overrides, cwd="/home/ana/analysis")
    exp = adapt_experiment(exp, profile)
    job = run_job(
        exp,
        profile,
        Path(f"/home/ana/analysis/runs/{experiment}/20261124-120000-0123abcd"),
        source=Path(f"/home/ana/analysis/experiments/{experiment}.yaml"),
        workdir=Path("/home/ana/analysis"),
    )
    if profile.python is None:  # the default is this interpreter: fixed here for the golden file
        job = dataclasses.replace(job, launcher=["/opt/venv/bin/python", "-m", "labkit"])
    return render_script(profile, path, job).replace(f"labkit {__version__}:", "labkit VERSION:")


@pytest.mark.parametrize(("golden", "profile", "changes", "experiment"), CASES, ids=[c[0] for c in CASES])
def test_rendered_script_matches_golden_file(
    golden: str, profile: str, changes: list[str], experiment: str
) -> None:
    script = render_case(profile, changes, experiment)
    path = GOLDEN / f"{golden}.sh"
    if os.environ.get("LABKIT_UPDATE_GOLDEN"):
        path.write_text(script)
    assert script == path.read_text(), f"{path} differs; LABKIT_UPDATE_GOLDEN=1 rewrites it after review"


def test_gpu_paths_in_rendered_scripts() -> None:
    four = render_case("lab-gpu", ["gpus_per_node=4"], "digits_cnn")
    assert "#SBATCH --gres=gpu:a100:4" in four and "#SBATCH --ntasks-per-node=4" in four
    assert "devices=4 num_nodes=1 strategy=ddp precision=bf16-mixed" in four
    assert "srun --kill-on-bad-exit=1 python -m labkit run" in four
    v100 = render_case("national-hpc", ["nodes=2"], "digits_cnn")
    assert "#SBATCH --constraint=v100-32g" in v100 and "#SBATCH --hint=nomultithread" in v100
    assert "#SBATCH --account=phy123" in v100 and "#SBATCH --qos=qos_gpu-t3" in v100
    assert "devices=4 num_nodes=2 strategy=ddp precision=16-mixed" in v100
    assert "apptainer exec --nv --bind /lustre /lustre/fswork/projects/phy123/images/labkit-0.1.sif" in v100
    assert "sacct -j" in v100  # from the site's own template
    cpu = render_case("slurm-local", [], "digits_mlp")
    assert "--gres" not in cpu and "srun /opt/venv/bin/python -m labkit run" in cpu


def test_a_comment_cannot_start_a_new_line_of_the_script(tmp_path: Path) -> None:
    profile, path = load_profile(REPO / "cluster" / "slurm-local.yaml")
    job = JobSpec("n", ["run"], ["labkit"], tmp_path, tmp_path / "o", notes=["a\nrm -rf /\nb"])
    lines = render_script(profile, path, job).splitlines()
    assert "rm -rf /" not in lines and "# a rm -rf / b" in lines


@pytest.mark.parametrize("value", ["/runs/a\nb", '/runs/"a"', "/runs/$(x)", "/runs/`x`", "/runs/a\\b"])
def test_unsafe_values_are_refused_on_sbatch_lines(value: str) -> None:
    with pytest.raises(ConfigError, match="cannot go on an #SBATCH line"):
        directive_value(value, "the log path")


def test_paths_with_spaces_are_quoted_on_sbatch_lines() -> None:
    assert directive_value("/my runs/x", "p") == '"/my runs/x"'
    assert directive_value("/runs/x-1_%j.out", "p") == "/runs/x-1_%j.out"


def test_missing_site_template_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "site.yaml").write_text("name: site\ntemplate: nowhere.sh.j2\n")
    profile, path = load_profile(tmp_path / "site.yaml")
    job = JobSpec("n", ["run"], ["labkit"], tmp_path, tmp_path / "o")
    with pytest.raises(ConfigError, match=r"template: 'nowhere.sh.j2' not found in"):
        render_script(profile, path, job)


def test_template_errors_name_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.sh.j2").write_text("#!/bin/bash\n{% if %}\n")
    (tmp_path / "site.yaml").write_text("name: site\ntemplate: bad.sh.j2\n")
    profile, path = load_profile(tmp_path / "site.yaml")
    with pytest.raises(ConfigError, match=r"template .*bad.sh.j2, line 2"):
        render_script(profile, path, JobSpec("n", ["run"], ["labkit"], tmp_path, tmp_path / "o"))


def test_notify_email_becomes_slurm_mail_flags(tmp_path: Path) -> None:
    """``notify.email`` and ``notify.on`` → ``--mail-type``/``--mail-user`` through the one flag
    table, and nothing of the webhook (only its variable's name is in the experiment) in the script."""
    from labkit.cluster import submit_run

    profile, path = load_profile(REPO / "cluster" / "slurm-local.yaml")
    notify = [
        "notify.email=ana@example.org",
        "notify.on=[finished,nan,preempted]",
        "notify.webhook_env=LABKIT_WEBHOOK",
    ]
    exp = load_experiment(EXPERIMENTS / "digits_mlp.yaml", notify, cwd=tmp_path)
    script = submit_run(
        exp, profile, path, dry_run=True, environ={"LABKIT_WEBHOOK": "https://hooks.example.org/SECRET"}
    )
    lines = script.script.splitlines()
    assert "#SBATCH --mail-type=END,FAIL,REQUEUE" in lines and "#SBATCH --mail-user=ana@example.org" in lines
    assert lines.index("#SBATCH --mail-type=END,FAIL,REQUEUE") < lines.index("#SBATCH --signal=USR1@60")
    assert "SECRET" not in script.script and "LABKIT_WEBHOOK" not in script.script
    golden = GOLDEN / "slurm-local-mail.sh"
    fixed = [line for line in lines if line.startswith("#SBATCH --") and "=/" not in line]  # no paths
    shown = "\n".join(fixed) + "\n"
    if os.environ.get("LABKIT_UPDATE_GOLDEN"):
        golden.write_text(shown)
    assert shown == golden.read_text(), f"{golden} differs; LABKIT_UPDATE_GOLDEN=1 rewrites it after review"
