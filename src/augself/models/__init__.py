"""Backbones (ResNet-18/50, a fast small CNN, timm models) and the MLP builder."""

from augself.models.backbones import BACKBONES, Backbone, build_backbone, load_backbone, save_backbone
from augself.models.mlp import mlp

__all__ = ["BACKBONES", "Backbone", "build_backbone", "load_backbone", "mlp", "save_backbone"]
