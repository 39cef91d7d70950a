"""``labkit export`` on tiny trained runs of each task family and a user's own LightningModule:
onnxruntime and TorchScript against PyTorch within 1e-5 relative, metadata read back with onnx,
raw inputs against labkit's test step; a model the exporter cannot translate; the CLI."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

import labkit
from labkit.config import Experiment
from labkit.errors import LabkitError
from labkit.runner._export import ExportResult, export_run, write_onnx
from labkit.runner._export_model import ExportModule

Load = Callable[..., Experiment]
ONE_EPOCH = ["trainer.max_epochs=1", "trainer.early_stopping=null"]


def _train(load: Load, name: str, *overrides: str) -> labkit.runner.RunResult:
    return labkit.run(load(name, *ONE_EPOCH, *overrides), progress="none")


def _assert_exported(result: ExportResult, run: labkit.runner.RunResult, *, batch_n: bool = True) -> None:
    assert result.passed, [c.line() for c in result.checks]
    whats = {(c.what, c.batch) for c in result.checks}
    assert ("onnxruntime CPUExecutionProvider vs PyTorch", 1) in whats
    assert any(w == "TorchScript vs PyTorch" and b > 1 for w, b in whats)
    if batch_n:
        assert any(w == "onnxruntime CPUExecutionProvider vs PyTorch" and b > 1 for w, b in whats)
    assert any(w.startswith("raw inputs through onnxruntime") for w, _ in whats)
    for check in result.checks:
        assert check.max_rel <= 1e-5, check.line()
    proto = onnx.load(str(result.out_dir / "model.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["run_id"] == run.run_id and meta["labkit_version"] == labkit.__version__
    assert meta["opset"] == "18" and meta["input_name"] == "inputs"
    assert [i.name for i in proto.graph.input] == ["inputs"]
    card = json.loads((result.out_dir / "model.json").read_text())
    assert card["run_id"] == run.run_id and card["files"] == ["model.onnx", "model.pt"]
    assert json.loads(meta["output_names"]) == card["output_names"] == [o.name for o in proto.graph.output]


def test_digits_mlp_static_batch_logged_to_the_run(load: Load, store: str) -> None:
    run = _train(load, "digits_mlp")
    result = export_run(str(run.run_dir), tracking_uri=store)
    _assert_exported(result, run, batch_n=False)
    assert result.out_dir == run.run_dir / "export" and result.kind == "classification"
    assert any("batch N not checked" in n for n in result.notes)
    proto = onnx.load(str(result.out_dir / "model.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["label_names"]) == [str(i) for i in range(10)]
    assert json.loads(meta["normalisation"])["folded"] is False
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 1, 8, 8]
    assert result.logged.startswith("logged as artifacts export/"), result.logged
    from mlflow.tracking import MlflowClient

    listed = {a.path for a in MlflowClient(store).list_artifacts(run.run_id, "export")}
    assert {"export/model.onnx", "export/model.pt", "export/model.json"} <= listed


def test_calo_energy_standardised_inputs_folded(load: Load, tmp_path: Path) -> None:
    run = _train(load, "calo_energy", "data.events=400", "data.standardize=true", "model.hidden=[16]")
    result = export_run(run.run_id, runs_root=tmp_path / "runs", dynamic_batch=True, log=False)
    _assert_exported(result, run)
    assert result.kind == "regression"
    assert any("fewer than 1000" in n for n in result.notes)
    meta = {p.key: p.value for p in onnx.load(str(result.out_dir / "model.onnx")).metadata_props}
    norm = json.loads(meta["normalisation"])
    assert norm["folded"] is True and len(np.ravel(norm["mean"])) > 1
    assert json.loads(meta["output_columns"]) == ["incident_energy"]
    assert result.logged == "not logged (--no-log)"


def test_tracks_seg_unet(load: Load) -> None:
    run = _train(load, "tracks_seg", "data.events=100", "model.channels=[4,8]")
    result = export_run(str(run.run_dir), dynamic_batch=True, log=False)
    _assert_exported(result, run)
    card = json.loads((result.out_dir / "model.json").read_text())
    assert card["label_names"] == ["background", "track", "shower", "noise"]


def test_dijet_anomaly_score(load: Load) -> None:
    run = _train(load, "dijet_anomaly", "data.events=3000", "model.hidden=[8]", "data.batch_size=256")
    result = export_run(str(run.run_dir), dynamic_batch=True, log=False)
    _assert_exported(result, run)
    meta = {p.key: p.value for p in onnx.load(str(result.out_dir / "model.onnx")).metadata_props}
    assert json.loads(meta["input_names"]) == ["mjj", "mj1", "mj2", "tau21_1", "tau21_2"]
    assert json.loads(meta["output_names"]) == ["anomaly_score"]


OWN = """
import lightning.pytorch as pl
import torch
from torch import nn


class OwnNet(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 10))

    def forward(self, x):
        logits = self.net(x)
        return logits, torch.softmax(logits, dim=1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def test_step(self, batch, batch_idx):
        x, y = batch
        self.log("test_acc", (self.net(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)
"""


def test_a_users_own_lightning_module_exports_its_forward(
    load: Load, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "own_export_models.py").write_text(OWN)
    monkeypatch.syspath_prepend(str(tmp_path))
    run = _train(load, "digits_mlp", "model={class_path: own_export_models.OwnNet}")
    result = export_run(str(run.run_dir), dynamic_batch=True, log=False, out_dir=tmp_path / "out")
    _assert_exported(result, run)
    assert result.kind == "custom" and result.out_dir == tmp_path / "out"
    card = json.loads((tmp_path / "out" / "model.json").read_text())
    assert card["output_names"] == ["output_0", "output_1"]
    sys.modules.pop("own_export_models", None)


class Zeta(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.zeta(x, torch.full_like(x, 2.0))


def test_an_operator_onnx_lacks_is_named_on_one_line(tmp_path: Path) -> None:
    module = ExportModule(Zeta(), kind="custom")
    with pytest.raises(
        LabkitError,
        match=r"^cannot export to ONNX \(opset 18\): the operator (aten|prims)\.(special_)?zeta has no ONNX",
    ) as err:
        write_onnx(
            module,
            torch.rand(1, 3) + 2,
            tmp_path / "m.onnx",
            ("output",),
            opset=18,
            dynamic_batch=False,
            card={},
        )
    assert "\n" not in str(err.value)


class Branches(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.sum() > 0 else x


def test_a_python_branch_on_data_is_named(tmp_path: Path) -> None:
    module = ExportModule(Branches(), kind="custom")
    with pytest.raises(LabkitError, match=r"^cannot export to ONNX: the model branches on a tensor's value"):
        write_onnx(
            module, torch.rand(2, 3), tmp_path / "m.onnx", ("output",), opset=18, dynamic_batch=True, card={}
        )


def test_cli_prints_the_checks_and_exits_3_over_the_tolerance(
    load: Load, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labkit.cli._export import export

    app = typer.Typer()
    app.command()(export)
    app.command("noop")(lambda: None)  # two commands: `export` is a subcommand name
    run = _train(load, "digits_mlp", "data.batch_size=256")
    cli = CliRunner()
    args = [
        "export",
        str(run.run_dir),
        "--format",
        "onnx",
        "--dynamic-batch",
        "--no-log",
        "-o",
        str(tmp_path / "e"),
    ]
    ok = cli.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "check: onnxruntime CPUExecutionProvider vs PyTorch, batch 1," in ok.output
    assert "max relative difference" in ok.output and "note: the test split holds" in ok.output

    import labkit.runner._export as exporting

    monkeypatch.setattr(exporting, "relative_difference", lambda got, want, **_: (1.0, 0.5))
    bad = cli.invoke(app, args)
    assert bad.exit_code == 3
    assert "export check failed" in bad.output and "0.5 > tolerance 1e-05" in bad.output
