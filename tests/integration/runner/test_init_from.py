"""Fine-tuning lineage end to end: a digits run, a second run started from its weights with a
frozen layer, and a run of another architecture refused by ``labkit run`` in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from mlflow.tracking import MlflowClient

import labkit
from labkit.config import Experiment
from tests.conftest import EXPERIMENTS

Load = Callable[..., Experiment]
#: one short epoch of digits
TINY = ["trainer.max_epochs=1", "trainer.early_stopping=null", "trainer.limit_train_batches=10"]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = torch.load(
        run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True
    )["state_dict"]
    return state


def test_fine_tune_with_a_frozen_layer_then_refuse_another_architecture(
    load: Load, store: str, tmp_path: Path
) -> None:
    parent = labkit.run(load("digits_mlp", *TINY), progress="none")
    assert parent.run_id

    child_exp = load("digits_mlp", *TINY, f"init_from='{parent.run_id}'", "freeze=[net.1]", "seed=5")
    child = labkit.run(child_exp, progress="none")

    before, after = _weights(parent.run_dir), _weights(child.run_dir)
    for key in ("model.net.1.weight", "model.net.1.bias"):  # frozen: exactly the parent's
        assert torch.equal(before[key], after[key]), key
    assert not torch.equal(before["model.net.3.weight"], after["model.net.3.weight"])  # trained on

    client = MlflowClient(store)
    assert client.get_run(str(child.run_id)).data.tags["labkit.parent_run"] == parent.run_id
    assert "labkit.parent_run" not in client.get_run(parent.run_id).data.tags
    record = json.loads((child.run_dir / "run.json").read_text())["init_from"]
    assert record["mlflow_run_id"] == parent.run_id and record["run_dir"] == str(parent.run_dir.resolve())
    assert record["checkpoint"].endswith("best.ckpt")

    key8 = parent.run_dir.name.rsplit("-", 1)[1]  # hexadecimal: quoted, as 592e2850 reads as a number
    out = subprocess.run(
        [
            sys.executable, "-m", "labkit", "run", str(EXPERIMENTS / "digits_mlp.yaml"), *TINY,
            f"init_from='{key8}'", "model.hidden=[32,32]", f"tracking.uri={store}",
            f"runs_root={tmp_path / 'runs'}",
        ],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr and len(lines) == 1, out.stderr
    assert lines[0] == (
        f"labkit: error: init_from {key8}: parameter model.net.1.weight has shape (16, 64) in that run "
        "and (32, 64) here (that run vs this one: model.hidden: [16, 16] vs [32, 32])"
    )
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]  # the refused run never started
    failed = [
        p for p in (tmp_path / "runs" / "digits_mlp").iterdir() if p not in (parent.run_dir, child.run_dir)
    ]
    assert [json.loads((p / "run.json").read_text())["status"] for p in failed] == ["FAILED"]
