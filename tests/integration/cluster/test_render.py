"""Rendered sbatch scripts run by bash (a subprocess): the golden files parse, and user strings
reach the command verbatim. The rendering itself is tested in tests/unit/cluster/test_render.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from labkit.cluster._profile import load_profile
from labkit.cluster._render import JobSpec, render_script
from tests.conftest import REPO
from tests.unit.cluster.test_render import CASES, GOLDEN


@pytest.mark.parametrize("golden", [c[0] for c in CASES])
def test_golden_scripts_are_valid_bash(golden: str) -> None:
    assert subprocess.run(["bash", "-n", str(GOLDEN / f"{golden}.sh")]).returncode == 0


def _run_launch_line(tmp_path: Path, job: JobSpec) -> str:
    """Run the rendered script's commands with srun standing for "run the command"."""
    profile, path = load_profile(REPO / "cluster" / "slurm-local.yaml")
    script = render_script(profile, path, job)
    body = 'srun() { "$@"; }\n' + script.split("set -eo pipefail", 1)[1]
    out = subprocess.run(["bash", "-c", body], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_user_strings_reach_the_command_verbatim_and_run_nothing(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    evil = [
        f"x$(touch {canary})y",
        f"`touch {canary}`",
        f"'; touch {canary}; '",
        f'"; touch {canary}; "',
        f"a\ntouch {canary}",
        "$HOME ${PATH} * ?",
    ]
    job = JobSpec(
        job_name="evil",
        command=evil,
        launcher=["printf", "<%s>\\n"],
        workdir=tmp_path,
        output=tmp_path / "slurm-%j.out",
        environment={"NOTE": f"$(touch {canary})"},
        notes=[f"run name x$(touch {canary})\ntouch {canary}"],
    )
    out = _run_launch_line(tmp_path, job)
    assert not canary.exists()
    printed = out.split("\n", 1)[1]  # after the "labkit: job ..." line
    assert printed == "".join(f"<{arg}>\n" for arg in evil)
