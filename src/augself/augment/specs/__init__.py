"""One self-describing spec per augmentation (issue 15) and the registry derived from them.

``REGISTRY`` maps an augmentation name (crop, flip, color, gray, blur, sol, rot, sharp, angle) to its
:class:`AugmentationSpec`; see :mod:`augself.augment.specs.registry` for how to add one.
"""

from augself.augment.specs.base import AugmentationSpec, Awareness, ConfigField, Draws, RecordField, Target
from augself.augment.specs.registry import (
    REGISTRY,
    SPECS,
    AwarenessTable,
    awareness_table,
    check_augmentations,
    invariance_params,
    isolated_view,
    strength_label,
    vocabulary,
    vocabulary_markdown,
)

__all__ = [
    "REGISTRY",
    "SPECS",
    "AugmentationSpec",
    "Awareness",
    "AwarenessTable",
    "ConfigField",
    "Draws",
    "RecordField",
    "Target",
    "awareness_table",
    "check_augmentations",
    "invariance_params",
    "isolated_view",
    "strength_label",
    "vocabulary",
    "vocabulary_markdown",
]
