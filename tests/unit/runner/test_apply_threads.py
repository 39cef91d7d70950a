"""trainer.threads reaches torch: the count for intra-op threads (inter-op only before it is set)."""

from __future__ import annotations

import torch

from labkit.runner import JobOptions
from labkit.runner._trainer import apply_threads


def test_apply_threads_sets_torch_and_auto_honours_omp_num_threads() -> None:
    before = torch.get_num_threads()
    try:
        assert apply_threads(1, JobOptions()) == 1
        assert torch.get_num_threads() == 1
        assert apply_threads("auto", JobOptions(omp_threads=1)) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
