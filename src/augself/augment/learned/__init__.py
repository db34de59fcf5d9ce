"""Learned per-input augmentations (InstaAug; Miao et al., ICML 2023) filling the same parameter record.

See :mod:`augself.augment.learned.config` for the ``augment.learned`` settings.
"""

from augself.augment.learned.config import FAMILIES, LearnedConfig, parse_learned

__all__ = ["FAMILIES", "LearnedConfig", "parse_learned"]
