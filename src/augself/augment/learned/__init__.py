"""Learned per-input augmentations (InstaAug; Miao et al., ICML 2023) filling the same parameter record.

See :mod:`augself.augment.learned.config` for the ``augment.learned`` settings, :mod:`.sampler` for the invariance
module (:class:`LearnedAugment`), :mod:`.objective` for its loss (:class:`LearnedObjective`); the families' maths are
in :mod:`.crop`, :mod:`.angle`, :mod:`.color` and the network in :mod:`.net`.
"""

from augself.augment.learned.config import FAMILIES, LearnedConfig, parse_learned
from augself.augment.learned.objective import LearnedObjective
from augself.augment.learned.sampler import LearnedAugment, LearnedDists, LearnedDraw

__all__ = [
    "FAMILIES",
    "LearnedAugment",
    "LearnedConfig",
    "LearnedDists",
    "LearnedDraw",
    "LearnedObjective",
    "parse_learned",
]
