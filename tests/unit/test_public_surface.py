"""Every package's public surface, pinned: a change to an ``__all__`` is a change to the API.

Adding or removing a public name means editing the list here too, on purpose (httpx does the
same). Each name must also resolve: the lazy ``__getattr__`` maps of the ``__init__`` modules are
easy to let drift from ``__all__``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

PUBLIC: dict[str, list[str]] = {
    "labkit": [
        "Experiment",
        "LabkitError",
        "RunResult",
        "__version__",
        "history",
        "load_experiment",
        "run",
        "runs",
    ],
    "labkit.config": [
        "AnomalySpec",
        "ArraysSpec",
        "AutoencoderSpec",
        "BudgetConfig",
        "CNNSpec",
        "CVAESpec",
        "CategoricalParam",
        "CheckpointConfig",
        "ClassPathSpec",
        "ClassificationSpec",
        "ComponentSpec",
        "DATA_SPECS",
        "DEFAULT_STORE",
        "DataSpec",
        "DigitsSpec",
        "EarlyStoppingConfig",
        "Experiment",
        "FileSpec",
        "FloatParam",
        "IntParam",
        "MAX_CLASSES",
        "MAX_GRID",
        "MLPSpec",
        "MODEL_SPECS",
        "ModelSpec",
        "NOTIFY_EVENTS",
        "NotifyConfig",
        "ObjectiveConfig",
        "OptimizerConfig",
        "RegressionSpec",
        "SEED_LIMIT",
        "SchedulerConfig",
        "SearchConfig",
        "Section",
        "SegmentationSpec",
        "SimulatedSpec",
        "SurrogateSpec",
        "TASK_SPECS",
        "TaskSpec",
        "TrackingConfig",
        "TrainerConfig",
        "TwoStageSpec",
        "UNetSpec",
        "default_storage",
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
        "DataSummary",
        "DigitsDataModule",
        "FORMATS",
        "FileDataModule",
        "SimulatedDataModule",
        "check_data",
        "default_stage_dir",
        "detect_format",
        "scale_inputs",
        "stage_files",
        "unstage",
    ],
    "labkit.models": [
        "Autoencoder",
        "ConditionalVAE",
        "DeepSets",
        "MLP",
        "SetTransformer",
        "SmallCNN",
        "TwoStageShowerModel",
        "TwoStageTerms",
        "UNet",
    ],
    "labkit.tasks": [
        "AnomalyTask",
        "CaloFile",
        "ClassificationTask",
        "RegressionTask",
        "SegmentationTask",
        "ShowerEvaluation",
        "SurrogateTask",
        "Task",
        "accuracy",
        "binned_bias_resolution",
        "build_optimizer",
        "classifier_two_sample_auc",
        "confusion_counts",
        "dice_per_class",
        "evaluate_showers",
        "feature_edges",
        "fit_stochastic_constant",
        "frechet_distance",
        "frechet_distance_gaussians",
        "iou_per_class",
        "kernel_distance",
        "max_sic",
        "read_calo_file",
        "rejection_at_efficiency",
        "roc_auc",
        "separation_power",
        "shower_features",
        "sic_curve",
        "weighted_mean_std",
        "weighted_quantile",
        "write_evaluation",
    ],
    "labkit.sim": [
        "CaloSample",
        "DijetModel",
        "DijetSample",
        "GRFSample",
        "JetsSample",
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
        "check_range",
        "fisher_bound",
        "fisher_matrix",
        "fit_amplitude_window",
        "memory_budget",
        "options",
        "simulate",
        "simulate_calo",
        "simulate_dijet",
        "simulate_grf",
        "simulate_jets",
        "simulate_tracks",
        "write_h5",
    ],
    "labkit.tracking": [
        "DrainReport",
        "GitState",
        "RunClient",
        "SPOOL_FILE",
        "ServerError",
        "ServerOptions",
        "Spool",
        "SpoolRefused",
        "SyncResult",
        "Tracker",
        "add_user",
        "check_admin",
        "check_spool",
        "configured_uri",
        "end_abandoned_run",
        "fetch_artifact_text",
        "fetch_figures",
        "fetch_history",
        "fetch_run",
        "fetch_runs",
        "find_spools",
        "git_state",
        "grant",
        "redact_command",
        "redact_uri",
        "run_server",
        "software_versions",
        "sync",
        "sync_spool",
        "user",
    ],
    "labkit.cluster": [
        "Executor",
        "JobInfo",
        "JobRecord",
        "JobSpec",
        "Profile",
        "SBATCH_FLAGS",
        "SlurmError",
        "Submission",
        "cancel",
        "current_job_id",
        "follow_log",
        "in_slurm_job",
        "job_table",
        "load_profile",
        "log_file",
        "render_script",
        "requeue",
        "slurm_tags",
        "submit_run",
    ],
    "labkit.runner": [
        "ExportResult",
        "JobOptions",
        "PredictSummary",
        "RerunPlan",
        "RunDir",
        "RunHooks",
        "RunOptions",
        "RunResult",
        "RunSession",
        "TrainedRun",
        "compare_metrics",
        "export_run",
        "find_run_dir",
        "generate_showers",
        "load_surrogate",
        "load_trained",
        "plan_reproduction",
        "plan_rerun",
        "predict",
        "record_prediction",
        "run",
        "write_simulation",
    ],
    "labkit.tuning": [
        "Heartbeat",
        "StudyHandle",
        "StudyReport",
        "best_experiment",
        "dashboard_ui",
        "default_storage",
        "format_front",
        "is_multi_objective",
        "pareto_front",
        "point_experiment",
        "study_report",
        "submit_study",
        "summarize_study",
        "tune",
        "worker_loop",
        "write_front",
    ],
    "labkit.notify": [
        "Notice",
        "Notifier",
        "WEBHOOK_TIMEOUT",
        "headline_metric",
        "render",
        "run_link",
        "send_webhook",
    ],
    "labkit.tracking.write": [
        "DrainReport",
        "FollowedRun",
        "Follower",
        "RunClient",
        "SPOOL_FILE",
        "Spool",
        "SpoolRefused",
        "SyncResult",
        "Tracker",
        "check_spool",
        "configured_uri",
        "end_abandoned_run",
        "find_spools",
        "sync",
        "sync_spool",
    ],
    "labkit.tracking.query": [
        "RunRecord",
        "fetch_artifact_file",
        "fetch_artifact_text",
        "fetch_figures",
        "fetch_history",
        "fetch_run",
        "fetch_runs",
    ],
    "labkit.tracking.server": [
        "AuthFiles",
        "ENGINES_IN_PARENT",
        "ENGINES_PER_WORKER",
        "PERMISSIONS",
        "ServerCommand",
        "ServerError",
        "ServerOptions",
        "add_user",
        "admin_username",
        "check_admin",
        "connection_cap",
        "default_state_dir",
        "grant",
        "mlflow_ui",
        "prepare_state",
        "run_server",
        "server_command",
        "writers_per_worker",
    ],
    "labkit.report": [
        "CurveGroup",
        "HEADLINE",
        "ReportSources",
        "RunOutputs",
        "build_report",
        "compare_frame",
        "default_uri",
        "format_table",
        "group_by_seed",
        "higher_is_better",
        "history",
        "load_outputs",
        "parse_filter",
        "parse_since",
        "physics_figures",
        "plot_runs",
        "read_outputs",
        "runs",
        "runs_frame",
        "save_figures",
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


def _type_checking_imports(package: str) -> dict[str, str]:
    """``{name: module}`` of the ``if TYPE_CHECKING:`` imports in ``package``'s ``__init__``."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text())
    found: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module:
                    for alias in stmt.names:
                        found[alias.asname or alias.name] = stmt.module
    return found


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_type_checkers_see_what_runs(package: str) -> None:
    """The ``TYPE_CHECKING`` imports (what mypy sees) and the lazy map (what runs) agree: every
    lazily exported name is imported for type checkers from the module that provides it."""
    module = importlib.import_module(package)
    static = _type_checking_imports(package)
    lazy = set(module.__all__) - set(vars(module))  # not defined yet: served by __getattr__
    assert lazy <= set(static), (
        f"{package}: exported lazily but unknown to type checkers: {lazy - set(static)}"
    )
    extra = set(static) - set(module.__all__)
    assert not extra, f"{package}: imported for type checkers but not exported: {sorted(extra)}"
    for name, where in static.items():
        assert getattr(module, name) is getattr(importlib.import_module(where), name), (package, name, where)
