"""Parameter-recording, batched augmentation (AugSelf, Lee et al., NeurIPS 2021)."""

from augself.augment.config import AugmentConfig, ViewConfig
from augself.augment.params import ViewParams
from augself.augment.pipeline import Augmenter, View
from augself.augment.sample import sample_params
from augself.augment.specs import REGISTRY, AugmentationSpec, awareness_table
from augself.augment.targets import TARGETS, TargetSpec, absolute_targets, relative_targets

__all__ = [
    "REGISTRY",
    "TARGETS",
    "AugmentConfig",
    "AugmentationSpec",
    "Augmenter",
    "TargetSpec",
    "View",
    "ViewConfig",
    "ViewParams",
    "absolute_targets",
    "awareness_table",
    "relative_targets",
    "sample_params",
]
