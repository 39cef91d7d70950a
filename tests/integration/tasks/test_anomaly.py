"""The anomaly task trained (small Lightning fits on dijet events): it never reads the labels, trains
on the sidebands only, its validation loss is the region-weighted cross entropy, and CWoLa finds a
strong resonance. Its metrics and spec are in tests/unit/tasks/test_anomaly.py."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from labkit.config import OptimizerConfig
from labkit.models import MLP
from labkit.tasks import AnomalyTask
from tests.unit.tasks.test_anomaly import FEATURES, SR, _events, _task, _trainer


def _fit(
    method: str, x: torch.Tensor, y: torch.Tensor, val: tuple[torch.Tensor, torch.Tensor]
) -> dict[str, torch.Tensor]:
    pl.seed_everything(0, verbose=False)
    task = _task(method)
    train = DataLoader(
        TensorDataset(x, y), batch_size=256, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    _trainer().fit(task, train, DataLoader(TensorDataset(*val), batch_size=256))
    return task.state_dict()


# ----------------------------------------------------------------------------- training ignores labels


@pytest.mark.parametrize("method", ["cwola", "autoencoder"])
def test_training_never_reads_the_labels(method: str) -> None:
    x, y, _ = _events(1500, seed=1)
    reference = _fit(method, x, y, (x[:500], y[:500]))
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(5))]
    for other_train, other_val in (
        (shuffled, shuffled[:500]),
        (torch.zeros_like(y), torch.ones(500, dtype=y.dtype)),
    ):
        state = _fit(method, x, other_train, (x[:500], other_val))
        assert state.keys() == reference.keys()
        for key, value in reference.items():
            assert torch.equal(state[key], value), key


def test_autoencoder_trains_on_the_sidebands_only() -> None:
    """Replacing the features of every signal-region training event changes nothing."""
    x, y, _ = _events(1500, seed=2)
    inside = (x[:, 0] >= SR[0]) & (x[:, 0] < SR[1])
    scrambled = x.clone()
    scrambled[inside, 1:] = torch.rand(int(inside.sum()), 4) * 100
    a = _fit("autoencoder", x, y, (x[:500], y[:500]))
    b = _fit("autoencoder", scrambled, y, (x[:500], y[:500]))
    for key, value in a.items():
        assert torch.equal(b[key], value), key
    # and the standardisation is that of the training sidebands
    sidebands = x[~inside, 1:].double()
    assert torch.allclose(b["feature_mean"].double(), sidebands.mean(0), rtol=1e-5)
    assert torch.allclose(b["feature_std"].double(), sidebands.std(0, unbiased=False), rtol=1e-4)


# ----------------------------------------------------------------------------- losses


def test_cwola_val_loss_is_the_region_weighted_cross_entropy() -> None:
    x, y, _ = _events(2000, seed=3)
    task = _task("cwola")
    trainer = _trainer(1)
    trainer.fit(
        task, DataLoader(TensorDataset(x, y), batch_size=500), DataLoader(TensorDataset(x, y), batch_size=128)
    )
    inside = (x[:, 0] >= SR[0]) & (x[:, 0] < SR[1])
    n_in, n_out = int(inside.sum()), int((~inside).sum())
    expected_weight = torch.tensor([len(x) / (2 * n_out), len(x) / (2 * n_in)])
    assert torch.allclose(task.region_weight, expected_weight)
    task.eval()
    with torch.no_grad():
        z = (x[:, 1:] - task.feature_mean) / task.feature_std
        bce = F.binary_cross_entropy_with_logits(task.model(z)[:, 0], inside.float(), reduction="none")
    w = expected_weight[inside.long()]
    assert float(trainer.logged_metrics["val_loss"]) == pytest.approx(
        float((bce * w).sum() / w.sum()), rel=1e-5
    )


def test_cwola_finds_a_strong_resonance() -> None:
    x, y, _ = _events(8000, seed=6, fraction=0.1, jet_mass_slope=0.0)
    xt, yt, lrt = _events(4000, seed=7, fraction=0.1, jet_mass_slope=0.0)
    pl.seed_everything(0, verbose=False)
    task = AnomalyTask(
        MLP((4,), 1, hidden=(32, 32)),
        OptimizerConfig(lr=3e-3),
        mass_index=0,
        feature_names=FEATURES,
        reference_scores=lrt,
    )
    trainer = _trainer(5)
    trainer.fit(
        task,
        DataLoader(TensorDataset(x, y), batch_size=512, shuffle=True),
        DataLoader(TensorDataset(xt, yt), batch_size=1024),
    )
    (result,) = trainer.test(task, DataLoader(TensorDataset(xt, yt), batch_size=1024), verbose=False)
    assert result["test_auc"] > 0.9 and result["test_max_sic"] > 0.5 * result["np_max_sic"]
