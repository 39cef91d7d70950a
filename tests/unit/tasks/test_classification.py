from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from labkit.config import OptimizerConfig, SchedulerConfig
from labkit.models import MLP
from labkit.tasks import ClassificationTask, build_optimizer


def _separable(n: int = 96, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    x = torch.randn(n, 4, generator=g) * 0.1 + torch.nn.functional.one_hot(y, 4).float()[:, :4] * 3
    return TensorDataset(x, y)


def _trainer(**kw: object) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=15,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        **kw,  # type: ignore[arg-type]
    )


def test_confusion_matrix_figure_after_test() -> None:
    task = ClassificationTask(
        MLP((4,), 3, hidden=()), OptimizerConfig(), num_classes=3, class_names=["e", "mu", "pi"]
    )
    assert task.figures() == {}
    _trainer().test(task, DataLoader(_separable(n=30), batch_size=8), verbose=False)
    fig = task.figures()["confusion_matrix"]
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["e", "mu", "pi"]
    assert "n=30" in ax.get_title()


def test_label_smoothing_changes_loss() -> None:
    model = MLP((4,), 3, hidden=())
    x, y = _separable(8).tensors
    plain = ClassificationTask(model, OptimizerConfig(), num_classes=3)._loss(model(x), y)
    smooth = ClassificationTask(model, OptimizerConfig(), num_classes=3, label_smoothing=0.3)._loss(
        model(x), y
    )
    assert not torch.isclose(plain, smooth)


def test_needs_two_classes() -> None:
    with pytest.raises(ValueError, match=r"classification needs at least 2 classes, got 1"):
        ClassificationTask(MLP((4,), 1), OptimizerConfig(), num_classes=1)


@pytest.mark.parametrize(
    ("cfg", "opt_type", "sched_type"),
    [
        (OptimizerConfig(name="adam"), torch.optim.Adam, None),
        (OptimizerConfig(name="adamw", weight_decay=0.01), torch.optim.AdamW, None),
        (OptimizerConfig(name="sgd", momentum=0.5, nesterov=True), torch.optim.SGD, None),
        (
            OptimizerConfig(scheduler=SchedulerConfig(name="cosine")),
            torch.optim.Adam,
            torch.optim.lr_scheduler.CosineAnnealingLR,
        ),
        (
            OptimizerConfig(scheduler=SchedulerConfig(name="step", step_size=3)),
            torch.optim.Adam,
            torch.optim.lr_scheduler.StepLR,
        ),
        (
            OptimizerConfig(scheduler=SchedulerConfig(name="plateau")),
            torch.optim.Adam,
            torch.optim.lr_scheduler.ReduceLROnPlateau,
        ),
    ],
)
def test_build_optimizer(cfg: OptimizerConfig, opt_type: type, sched_type: type | None) -> None:
    params = [torch.nn.Parameter(torch.zeros(2))]
    built = build_optimizer(params, cfg, max_epochs=10)
    if sched_type is None:
        assert type(built) is opt_type
        return
    assert type(built["optimizer"]) is opt_type
    sched = built["lr_scheduler"]
    sched = sched["scheduler"] if isinstance(sched, dict) else sched
    assert type(sched) is sched_type


def test_cosine_decays_to_min_lr_over_max_epochs() -> None:
    params = [torch.nn.Parameter(torch.zeros(2))]
    cfg = OptimizerConfig(lr=1.0, scheduler=SchedulerConfig(name="cosine", min_lr=0.1))
    built = build_optimizer(params, cfg, max_epochs=4)
    for _ in range(4):
        built["optimizer"].step()
        built["lr_scheduler"].step()
    assert built["optimizer"].param_groups[0]["lr"] == pytest.approx(0.1)
