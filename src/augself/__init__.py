"""augself: augmentation-aware self-supervised learning (AugSelf, Lee et al., NeurIPS 2021; E-SSL)."""

from augself._version import __version__
from augself.models.backbones import build_backbone, load_backbone, save_backbone

__all__ = ["__version__", "build_backbone", "load_backbone", "save_backbone"]
