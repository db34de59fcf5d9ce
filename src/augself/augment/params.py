"""The typed per-view, per-sample record of sampled augmentation parameters.

Every field is a tensor whose first dimension is the batch. Unapplied augmentations hold identity values
(colour factors 1/1/1/0, sigma 0, threshold 1.0, rotation 0), as in the AugSelf reference code (quirk Q2).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass
class ViewParams:
    crop: Tensor
    """(B, 4) float: [top, left, height, width] of the crop as fractions of the *original* image."""
    flip: Tensor
    """(B,) bool: horizontally flipped (after the crop)."""
    jitter: Tensor
    """(B,) bool: colour jitter applied."""
    color: Tensor
    """(B, 4) float: [brightness, contrast, saturation, hue] factors; (1, 1, 1, 0) where not applied."""
    order: Tensor
    """(B, 4) long: permutation of the four colour ops (0=b, 1=c, 2=s, 3=h), applied left to right."""
    gray: Tensor
    """(B,) bool: converted to grayscale."""
    blur: Tensor
    """(B,) bool: Gaussian blur applied."""
    sigma: Tensor
    """(B,) float: blur sigma in pixels of the output view; 0 where not applied."""
    solarize: Tensor
    """(B,) bool: solarized."""
    threshold: Tensor
    """(B,) float: solarize threshold in [0, 1]; 1.0 where not applied."""
    rot: Tensor
    """(B,) long: number of counter-clockwise quarter turns k in {0,1,2,3}; 0 where not applied."""

    def __len__(self) -> int:
        return int(self.crop.shape[0])

    @property
    def device(self) -> torch.device:
        return self.crop.device

    def to(self, device: torch.device | str) -> ViewParams:
        return ViewParams(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __getitem__(self, index: Tensor | slice | int) -> ViewParams:
        return ViewParams(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def cat(records: list[ViewParams]) -> ViewParams:
        return ViewParams(**{f.name: torch.cat([getattr(r, f.name) for r in records]) for f in fields(ViewParams)})

    def as_dict(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @staticmethod
    def identity(batch: int, device: torch.device | str = "cpu") -> ViewParams:
        """Parameters of the identity transform (full crop, nothing applied)."""
        z = torch.zeros(batch, dtype=torch.bool, device=device)
        return ViewParams(
            crop=torch.tensor([0.0, 0.0, 1.0, 1.0], device=device).repeat(batch, 1),
            flip=z.clone(),
            jitter=z.clone(),
            color=torch.tensor([1.0, 1.0, 1.0, 0.0], device=device).repeat(batch, 1),
            order=torch.arange(4, device=device).repeat(batch, 1),
            gray=z.clone(),
            blur=z.clone(),
            sigma=torch.zeros(batch, device=device),
            solarize=z.clone(),
            threshold=torch.ones(batch, device=device),
            rot=torch.zeros(batch, dtype=torch.long, device=device),
        )
