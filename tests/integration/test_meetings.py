"""The group meeting on a real ``mlflow server``: compare, the HTML report in real headless
Chromium, and the notebook API, over runs made by ``labkit run``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from labkit.config import load_experiment
from labkit.runner import run
from tests.conftest import EXPERIMENTS, SMOKE
from tests.integration.chromium import check_page, chromium_binary
from tests.integration.conftest import SERVICES, MlflowServer, _unavailable

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def meeting(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Three digits runs on the server: two that differ only by seed, one with another model."""
    root = tmp_path_factory.mktemp("meeting")
    ids = []
    for overrides in (["seed=1"], ["seed=2"], ["seed=1", "model.hidden=[16]"]):
        exp = load_experiment(
            EXPERIMENTS / "digits_mlp.yaml",
            [
                *SMOKE,
                *overrides,
                f"tracking.uri={mlflow_server.url}",
                f"runs_root={root / 'runs'}",
                "tracking.experiment=meeting-digits",
            ],
            cwd=root,
        )
        ids.append(run(exp, progress="none").run_id)
    return {"root": root, "ids": ids, "url": mlflow_server.url}


def labkit(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LABKIT_CACHE_DIR": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


def test_compare_csv_parses_and_groups_seeds(meeting: dict[str, object], tmp_path: Path) -> None:
    url = str(meeting["url"])
    out = labkit(
        tmp_path, "compare", "--experiment", "meeting-digits", "--format", "csv", "--tracking-uri", url
    )
    assert out.returncode == 0, out.stderr
    table = pd.read_csv(io.StringIO(out.stdout))
    for column in (
        "run_id",
        "user",
        "start",
        "status",
        "duration_s",
        "gpu_hours",
        "params.model.hidden",
        "test_acc",
    ):
        assert column in table.columns, column
    assert sorted(table["n"]) == [1, 2]  # the two seeds are one row
    pair = table[table["n"] == 2].iloc[0]
    assert set(pair["run_id"].split()) == set(meeting["ids"][:2])  # type: ignore[index]
    assert (table["status"] == "FINISHED").all()

    md = labkit(
        tmp_path,
        "compare",
        "-e",
        "meeting-digits",
        "--metric",
        "test_acc",
        "--format",
        "md",
        "--tracking-uri",
        url,
    )
    assert md.returncode == 0 and " ± " in md.stdout and "(2)" in md.stdout


def test_compare_against_a_server_imports_neither_torch_nor_mlflow(
    meeting: dict[str, object], tmp_path: Path
) -> None:
    code = (
        "import sys\n"
        f"sys.argv = ['labkit', 'compare', '-e', 'meeting-digits', '--tracking-uri', {str(meeting['url'])!r}]\n"
        "from labkit.cli import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "heavy = {'torch', 'lightning', 'mlflow', 'optuna', 'torchmetrics'}\n"
        "print('HEAVY', sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    env = {**os.environ, "LABKIT_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


def test_compare_names_a_bad_experiment(meeting: dict[str, object], tmp_path: Path) -> None:
    out = labkit(tmp_path, "compare", "-e", "meeting-digit", "--tracking-uri", str(meeting["url"]))
    assert out.returncode == 2
    assert (
        "no experiment 'meeting-digit' on the tracking server (did you mean 'meeting-digits'?)" in out.stderr
    )


def test_report_is_one_file_that_opens_offline_in_chromium(
    meeting: dict[str, object], tmp_path: Path
) -> None:
    binary = chromium_binary()
    if binary is None and os.geteuid() == 0:  # as the other services: install Debian's package
        subprocess.run(
            ["bash", str(SERVICES / "chromium-up.sh")], capture_output=True, timeout=900, check=False
        )
        binary = chromium_binary()
    if binary is None:
        _unavailable("chromium is not installed and could not be (Debian: apt install chromium, as root)")
    assert binary is not None
    out = labkit(
        tmp_path, "report", "-e", "meeting-digits", "-o", "r.html", "--tracking-uri", str(meeting["url"])
    )
    assert out.returncode == 0, out.stderr
    page = tmp_path / "r.html"
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".html"] == ["r.html"]
    text = page.read_text()
    assert "<script" not in text and "http://" not in text.replace(str(meeting["url"]), "")
    check = check_page(binary, page, tmp_path / "report.png", tmp_path / "profile")
    assert check.title == "labkit report"
    assert check.console_errors == []
    assert [u for u in check.requests if not u.startswith(("file://", "data:"))] == []
    assert len(check.images) >= 3  # learning curves and each best run's confusion matrix
    assert all(i["complete"] and i["width"] > 0 and i["height"] > 0 for i in check.images), check.images
    shot = (tmp_path / "report.png").read_bytes()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10_000


def test_notebook_api_has_the_columns_of_compare(
    meeting: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import labkit

    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "cache"))
    url = str(meeting["url"])
    frame = labkit.runs(experiment="meeting-digits", since="1d", filter="test_acc >= 0", uri=url)
    assert len(frame) == 3 and {"run_id", "user", "start", "status", "test_acc"} <= set(frame.columns)
    curve = labkit.history(str(meeting["ids"][0]), "val_loss", uri=url)  # type: ignore[index]
    assert list(curve.columns) == ["step", "time", "value"] and len(curve) == 2  # two smoke epochs


REPO = Path(__file__).resolve().parents[2]


def test_reproduce_reruns_a_digits_run_and_reports_the_same_test_acc(
    meeting: dict[str, object], tmp_path: Path
) -> None:
    first = str(meeting["ids"][0])  # type: ignore[index]
    url = str(meeting["url"])
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "labkit",
            "reproduce",
            first,
            "--tracking-uri",
            url,
            "--runs-root",
            str(tmp_path),
        ],
        cwd=REPO,  # the checkout the run was made from
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.strip().startswith("test_acc"))
    assert line.split()[-1] == "same", out.stdout
    rerun = out.stdout.split()[1]
    from mlflow.tracking import MlflowClient

    assert MlflowClient(url).get_run(rerun).data.tags["labkit.reproduces"] == first


def test_reproduce_refuses_other_code_and_applies_nothing(meeting: dict[str, object], tmp_path: Path) -> None:
    first = str(meeting["ids"][0])  # type: ignore[index]
    out = labkit(
        tmp_path, "reproduce", first, "--tracking-uri", str(meeting["url"]), "--runs-root", str(tmp_path)
    )
    assert out.returncode == 2
    assert "is not a git checkout; the run was made at commit" in out.stderr
    assert "--force" in out.stderr
    assert not (tmp_path / "reproduce").exists()
    dry = labkit(tmp_path, "reproduce", first, "--tracking-uri", str(meeting["url"]), "--force", "--dry-run")
    assert dry.returncode == 0 and "labkit.reproduces" in dry.stdout and "warning: --force" in dry.stderr
