"""Every package's public surface, pinned: a change to an ``__all__`` is a change to the API.

Adding or removing a public name means editing the list here too, on purpose (httpx does the
same). Each name must also resolve: the lazy ``__getattr__`` maps of the ``__init__`` modules are
easy to let drift from ``__all__``.
"""

from __future__ import annotations

import importlib

import pytest

PUBLIC: dict[str, list[str]] = {
    "labkit.config": [
        "CheckpointConfig",
        "DEFAULT_STORE",
        "EarlyStoppingConfig",
        "Experiment",
        "MAX_CLASSES",
        "OptimizerConfig",
        "SEED_LIMIT",
        "SchedulerConfig",
        "TrackingConfig",
        "TrainerConfig",
        "default_tracking_uri",
        "dump_experiment",
        "flatten",
        "format_validation_error",
        "load_experiment",
        "parse_value",
        "redact_uri",
        "tracking_uri_problem",
        "validate_experiment",
    ],
    "labkit.data": [
        "ArrayDataModule",
        "ArraySplitDataModule",
        "DataInfo",
        "DigitsDataModule",
        "FileDataModule",
        "SimulatedDataModule",
    ],
    "labkit.models": [
        "Autoencoder",
        "ConditionalVAE",
        "MLP",
        "SmallCNN",
        "UNet",
    ],
    "labkit.tasks": [
        "AnomalyTask",
        "ClassificationTask",
        "RegressionTask",
        "SegmentationTask",
        "Task",
        "build_optimizer",
    ],
    "labkit.sim": [
        "CaloSample",
        "DijetModel",
        "DijetSample",
        "GRFSample",
        "MATERIALS",
        "MAX_EVENTS",
        "Material",
        "SEED_LIMIT",
        "SIMULATORS",
        "Sample",
        "Simulator",
        "TracksSample",
        "amplitude_window_iou",
        "as_arrays",
        "check_output",
        "fisher_bound",
        "fisher_matrix",
        "fit_amplitude_window",
        "memory_budget",
        "options",
        "simulate",
        "simulate_calo",
        "simulate_dijet",
        "simulate_grf",
        "simulate_tracks",
        "write_h5",
    ],
    "labkit.tracking": [
        "DrainReport",
        "GitState",
        "RunClient",
        "Spool",
        "SpoolRefused",
        "SyncResult",
        "Tracker",
        "check_spool",
        "configured_uri",
        "end_abandoned_run",
        "find_spools",
        "git_state",
        "redact_command",
        "redact_uri",
        "software_versions",
        "sync",
        "sync_spool",
    ],
    "labkit.cluster": [
        "JobInfo",
        "JobSpec",
        "Profile",
        "SBATCH_FLAGS",
        "SlurmError",
        "Submission",
        "load_profile",
        "render_script",
        "slurm_tags",
        "submit_run",
    ],
    "labkit.runner": [
        "RunDir",
        "RunHooks",
        "RunResult",
        "run",
    ],
    "labkit.tuning": [
        "StudyHandle",
        "StudyReport",
        "best_experiment",
        "default_storage",
        "study_report",
        "tune",
        "worker_loop",
    ],
    "labkit.report": [
        "HEADLINE",
        "compare_frame",
        "format_table",
        "higher_is_better",
        "parse_filter",
        "parse_since",
        "runs_frame",
        "select",
    ],
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_all_is_pinned(package: str) -> None:
    module = importlib.import_module(package)
    assert len(set(module.__all__)) == len(module.__all__), f"{package}.__all__ repeats a name"
    assert sorted(module.__all__) == PUBLIC[package]


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_every_public_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names what the package cannot give: {missing}"
