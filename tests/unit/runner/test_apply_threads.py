"""trainer.threads reaches torch: the count for intra-op threads (inter-op only before it is set)."""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch.loggers.logger import DummyLogger

from labkit.runner import JobOptions
from labkit.runner._trainer import apply_threads

REPO = Path(__file__).resolve().parents[3]


def test_apply_threads_sets_torch_and_auto_honours_omp_num_threads() -> None:
    before = torch.get_num_threads()
    try:
        assert apply_threads(1, JobOptions()) == 1
        assert torch.get_num_threads() == 1
        assert apply_threads("auto", JobOptions(omp_threads=1)) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_build_trainer_takes_the_jobs_omp_threads_and_tags_the_run(tmp_path: Path) -> None:
    import io

    from labkit._rundir import RunDir
    from labkit.config import load_experiment
    from labkit.runner._trainer import THREADS_TAG, build_trainer

    class Logger(DummyLogger):
        tags: dict[str, str] | None = None

        def set_tags(self, tags: dict[str, str]) -> None:
            self.tags = dict(tags)

    exp = load_experiment(REPO / "experiments/digits_mlp.yaml", [f"runs_root={tmp_path}"])
    logger, before = Logger(), torch.get_num_threads()
    try:
        build_trainer(
            exp,
            RunDir(tmp_path / "run", "k"),
            logger,
            "none",
            io.StringIO(),
            environ={"OMP_NUM_THREADS": "1"},
        )
        assert torch.get_num_threads() == 1
        assert logger.tags == {THREADS_TAG: "1"}
    finally:
        torch.set_num_threads(before)
