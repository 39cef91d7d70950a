"""Cross-run physics curves on a real ``mlflow server``: four runs (two configurations × two
seeds) carrying synthetic ``outputs/test_outputs.npz`` artifacts (no training), drawn by
``labkit plot`` and by ``labkit report --reference``, the report opened in headless Chromium."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.integration.chromium import check_page, chromium_binary
from tests.integration.conftest import SERVICES, MlflowServer, _unavailable

pytestmark = [pytest.mark.slow]

EXPERIMENT = "curves-calo"


def _outputs(path: Path, seed: int, shift: float, n: int = 600) -> Path:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    p1 = 1 / (1 + np.exp(-rng.normal(shift * (2 * labels - 1), 1.0)))
    np.savez_compressed(
        path,
        task=np.array("classification"),
        format=np.array(1),
        probs=np.stack([1 - p1, p1], axis=1).astype(np.float32),
        labels=labels.astype(np.int64),
        class_names=np.array(["pion", "electron"]),
        signal_class=np.array(1, dtype=np.int64),
        weights=rng.uniform(0.5, 1.5, n).astype(np.float32),
        **{"spectator.incident_energy": rng.uniform(1, 100, n).astype(np.float32)},
    )
    return path


@pytest.fixture(scope="module")
def curve_runs(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("curves")
    client = MlflowClient(tracking_uri=mlflow_server.url)
    experiment = client.create_experiment(EXPERIMENT)
    ids = []
    for hidden, shift in (("64", 0.8), ("128", 1.4)):
        for seed in (1, 2):
            run = client.create_run(experiment, tags={"labkit.task": "classification", "mlflow.user": "ana"})
            rid = run.info.run_id
            client.log_param(rid, "seed", str(seed))
            client.log_param(rid, "model.hidden", hidden)
            client.log_metric(rid, "test_auc", 0.7 + 0.1 * shift + 0.001 * seed)
            client.log_metric(rid, "test_acc", 0.6 + 0.1 * shift)
            npz = _outputs(root / f"{rid}.npz", seed + 10 * int(hidden), shift)
            folder = root / rid
            folder.mkdir()
            (folder / "test_outputs.npz").write_bytes(npz.read_bytes())
            client.log_artifact(rid, str(folder / "test_outputs.npz"), "outputs")
            client.set_terminated(rid, "FINISHED")
            ids.append(rid)
    old = client.create_run(experiment, tags={"labkit.task": "classification"})
    client.set_terminated(old.info.run_id, "FINISHED")
    return {"ids": ids, "old": old.info.run_id, "url": mlflow_server.url}


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LABKIT_CACHE_DIR": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "labkit", *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


def test_labkit_plot_writes_decodable_pngs_and_pdf(curve_runs: dict[str, object], tmp_path: Path) -> None:
    import matplotlib.image

    ids: list[str] = curve_runs["ids"]  # type: ignore[assignment]
    url = str(curve_runs["url"])
    out = _run(tmp_path, "plot", *ids, "--reference", ids[0], "-o", "c.png", "--tracking-uri", url)
    assert out.returncode == 0, out.stderr
    for name in ("c.png", "c_vs_incident_energy.png"):
        image = matplotlib.image.imread(tmp_path / name)
        assert image.shape[0] > 300 and image.shape[1] > 300
    assert list((tmp_path / "cache" / "artifacts").rglob("test_outputs.npz"))  # cached for the next time
    again = _run(tmp_path, "plot", *ids[:2], "--working-point", "0.5", "-o", "c.pdf", "--tracking-uri", url)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "c.pdf").read_bytes()[:5] == b"%PDF-"


def test_labkit_plot_names_the_run_without_outputs(curve_runs: dict[str, object], tmp_path: Path) -> None:
    ids: list[str] = curve_runs["ids"]  # type: ignore[assignment]
    old = str(curve_runs["old"])
    out = _run(tmp_path, "plot", ids[0], old, "--tracking-uri", str(curve_runs["url"]))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and old in lines[0] and "no outputs/test_outputs.npz artifact" in lines[0], (
        out.stderr
    )
    assert "Traceback" not in out.stderr


def test_report_with_reference_shows_curves_that_decode_in_chromium(
    curve_runs: dict[str, object], tmp_path: Path
) -> None:
    binary = _chromium()
    ids: list[str] = curve_runs["ids"]  # type: ignore[assignment]
    url = str(curve_runs["url"])
    out = _run(
        tmp_path, "report", "-e", EXPERIMENT, "--reference", ids[0], "-o", "r.html", "--tracking-uri", url
    )
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "r.html").read_text()
    assert "<h3>Physics curves</h3>" in text
    assert (
        re.search(r'alt="physics curve rejection"', text) and 'alt="physics curve vs_incident_energy"' in text
    )
    shown = {ids[0][:8], ids[1][:8]}  # the seed group of the reference, named by its best run
    assert any(f"ratio to model.hidden=64 [{i}+1] (--reference)" in text for i in shown)
    check = check_page(binary, tmp_path / "r.html", tmp_path / "report.png", tmp_path / "profile")
    assert check.console_errors == []
    curves = [i for i in check.images if str(i.get("alt", "")).startswith("physics curve")]
    assert len(curves) == 2, check.images
    assert all(i["complete"] and i["width"] > 0 and i["height"] > 0 for i in curves), curves
    bad = _run(tmp_path, "report", "-e", EXPERIMENT, "--reference", "nosuchrun", "--tracking-uri", url)
    assert bad.returncode == 2 and "--reference 'nosuchrun': is not among the selected runs" in bad.stderr


def _chromium() -> str:
    binary = chromium_binary()
    if binary is None and os.geteuid() == 0:
        subprocess.run(
            ["bash", str(SERVICES / "chromium-up.sh")], capture_output=True, timeout=900, check=False
        )
        binary = chromium_binary()
    if binary is None:
        _unavailable("chromium is not installed and could not be (Debian: apt install chromium, as root)")
    assert binary is not None
    return binary


def test_real_calo_pid_runs_two_configs_two_seeds_plot_and_report(tmp_path: Path) -> None:
    """Four tiny calo_pid runs (1 epoch; hidden [16] and [32], seeds 1 and 2) write
    outputs/test_outputs.npz at test time; labkit plot draws a seed band with efficiency vs
    incident_energy, and labkit report --reference shows both curves, which decode in Chromium."""
    import matplotlib.image

    from labkit.config import load_experiment
    from labkit.runner import run
    from tests.conftest import EXPERIMENTS

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ids = []
    for hidden in ("[16]", "[32]"):
        for seed in (1, 2):
            exp = load_experiment(
                EXPERIMENTS / "calo_pid.yaml",
                [
                    "trainer.max_epochs=1",
                    "trainer.early_stopping=null",
                    "data.events=600",
                    f"data.cache_dir={tmp_path / 'cache'}",
                    f"model.hidden={hidden}",
                    f"seed={seed}",
                    f"tracking.uri={uri}",
                    f"runs_root={tmp_path / 'runs'}",
                ],
                cwd=tmp_path,
            )
            ids.append(run(exp, progress="none").run_id)
    out = _run(tmp_path, "plot", *ids[:2], "--reference", ids[0], "-o", "calo.png", "--tracking-uri", uri)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    for name in ("calo.png", "calo_vs_incident_energy.png"):
        assert matplotlib.image.imread(tmp_path / name).shape[0] > 300

    binary = _chromium()
    out = _run(tmp_path, "report", "-e", "calo", "--reference", ids[0], "-o", "r.html", "--tracking-uri", uri)
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "r.html").read_text()
    assert "<h3>Physics curves</h3>" in text and "(--reference)" in text
    assert 'alt="physics curve rejection"' in text and 'alt="physics curve vs_incident_energy"' in text
    check = check_page(binary, tmp_path / "r.html", tmp_path / "report.png", tmp_path / "profile")
    assert check.console_errors == []
    curves = [i for i in check.images if str(i.get("alt", "")).startswith("physics curve")]
    assert len(curves) == 2, check.images
    assert all(i["complete"] and i["width"] > 0 and i["height"] > 0 for i in curves), curves
