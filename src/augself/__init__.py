"""augself: augmentation-aware self-supervised learning (AugSelf, Lee et al., NeurIPS 2021; E-SSL)."""

from augself.models.backbones import build_backbone, load_backbone, save_backbone

__version__ = "0.1.0"
__all__ = ["__version__", "build_backbone", "load_backbone", "save_backbone"]
