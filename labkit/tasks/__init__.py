"""One LightningModule per task family. Each takes a plain ``nn.Module`` from
:mod:`labkit.models` and owns the loss, the metrics (torchmetrics) and the diagnostic figures.

The physics metrics also come as plain functions of numpy arrays (``roc_auc``, ``max_sic``,
``rejection_at_efficiency``, ``binned_bias_resolution``, ``shower_features``,
``separation_power`` ...), for predictions saved outside labkit."""

from __future__ import annotations

from typing import TYPE_CHECKING

from labkit._lazy import lazy_exports

__all__, _lazy_getattr = lazy_exports(
    __name__,
    {
        "labkit.tasks._anomaly": ("AnomalyTask",),
        "labkit.tasks._base": ("Task", "build_optimizer"),
        "labkit.tasks._classification": ("ClassificationTask",),
        "labkit.tasks._functional": (
            "accuracy",
            "binned_bias_resolution",
            "confusion_counts",
            "dice_per_class",
            "fit_stochastic_constant",
            "iou_per_class",
            "max_sic",
            "rejection_at_efficiency",
            "roc_auc",
            "sic_curve",
            "weighted_mean_std",
            "weighted_quantile",
        ),
        "labkit.tasks._shower_io": ("CaloFile", "read_calo_file", "write_evaluation"),
        "labkit.tasks._showers": ("ShowerEvaluation", "evaluate_showers", "kernel_distance"),
        "labkit.tasks._generative": (
            "classifier_two_sample_auc",
            "feature_edges",
            "frechet_distance",
            "frechet_distance_gaussians",
            "separation_power",
            "shower_features",
        ),
        "labkit.tasks._regression": ("RegressionTask",),
        "labkit.tasks._segmentation": ("SegmentationTask",),
        "labkit.tasks._surrogate": ("SurrogateTask",),
    },
)

if TYPE_CHECKING:  # the same names for type checkers; test_public_surface checks they agree
    from labkit.tasks._anomaly import AnomalyTask as AnomalyTask
    from labkit.tasks._base import Task as Task
    from labkit.tasks._base import build_optimizer as build_optimizer
    from labkit.tasks._classification import ClassificationTask as ClassificationTask
    from labkit.tasks._functional import accuracy as accuracy
    from labkit.tasks._functional import binned_bias_resolution as binned_bias_resolution
    from labkit.tasks._functional import confusion_counts as confusion_counts
    from labkit.tasks._functional import dice_per_class as dice_per_class
    from labkit.tasks._functional import fit_stochastic_constant as fit_stochastic_constant
    from labkit.tasks._functional import iou_per_class as iou_per_class
    from labkit.tasks._functional import max_sic as max_sic
    from labkit.tasks._functional import rejection_at_efficiency as rejection_at_efficiency
    from labkit.tasks._functional import roc_auc as roc_auc
    from labkit.tasks._functional import sic_curve as sic_curve
    from labkit.tasks._functional import weighted_mean_std as weighted_mean_std
    from labkit.tasks._functional import weighted_quantile as weighted_quantile
    from labkit.tasks._generative import classifier_two_sample_auc as classifier_two_sample_auc
    from labkit.tasks._generative import feature_edges as feature_edges
    from labkit.tasks._generative import frechet_distance as frechet_distance
    from labkit.tasks._generative import frechet_distance_gaussians as frechet_distance_gaussians
    from labkit.tasks._generative import separation_power as separation_power
    from labkit.tasks._generative import shower_features as shower_features
    from labkit.tasks._regression import RegressionTask as RegressionTask
    from labkit.tasks._segmentation import SegmentationTask as SegmentationTask
    from labkit.tasks._shower_io import CaloFile as CaloFile
    from labkit.tasks._shower_io import read_calo_file as read_calo_file
    from labkit.tasks._shower_io import write_evaluation as write_evaluation
    from labkit.tasks._showers import ShowerEvaluation as ShowerEvaluation
    from labkit.tasks._showers import evaluate_showers as evaluate_showers
    from labkit.tasks._showers import kernel_distance as kernel_distance
    from labkit.tasks._surrogate import SurrogateTask as SurrogateTask
else:
    __getattr__ = _lazy_getattr
