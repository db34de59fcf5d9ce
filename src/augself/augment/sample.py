"""Vectorised sampling of per-sample augmentation parameters (:class:`ViewParams`) for one view.

Each augmentation samples its own fields (its spec's ``sample``, :mod:`augself.augment.specs`); the
distributions follow the SimCLR/AugSelf pipeline (Lee et al., NeurIPS 2021, App. A; reference §2.1):
RandomResizedCrop (area ~ U(scale), log-uniform ratio, torchvision's 10 tries + centre-crop fallback),
flip ~ Bern(p), colour jitter ~ Bern(p) with uniform factors and a random op order (per sample, or one per
batch with ``color_order: batch``), grayscale ~ Bern(p), blur ~ Bern(p) with sigma ~ U(blur_sigma), solarize ~
Bern(p) with threshold ~ U(sol_threshold), rotation k ~ U{0..3} with probability ``rot_p``. Unapplied ops
hold identity values (reference quirk Q2).

All randomness comes from the given ``torch.Generator`` (drawn on the generator's device, then moved), in a
fixed number of draws for a given config, so a seeded generator gives identical parameters: the crop's draws,
one shared uniform block (the original augmentations' columns), then each augmentation's own draws in registry
order (augmentations added later draw only when on).
"""

from __future__ import annotations

import torch
from torch import Tensor

from augself.augment.config import ViewConfig
from augself.augment.params import ViewParams
from augself.augment.specs.base import Draws, uniform
from augself.augment.specs.crop import CROP_TRIES, random_resized_crop_box, sample_crop
from augself.augment.specs.registry import SHARED_COLUMNS, SPECS

__all__ = ["CROP_TRIES", "random_resized_crop_box", "sample_crop", "sample_params"]


def sample_params(
    cfg: ViewConfig,
    batch: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    input_size: tuple[int, int] | None = None,
    source_crop: Tensor | None = None,
) -> ViewParams:
    """Sample one view's parameters for ``batch`` samples (see module docstring for the distributions).

    ``input_size`` (H, W) of the images the crop is applied to puts the crop on the pixel grid (recommended;
    :class:`~augself.augment.pipeline.Augmenter` passes it). ``crop`` is recorded relative to the original image:
    the input shows ``source_crop`` (B, 4) of it (None: the input is the original).
    """
    d = Draws(cfg, batch, torch.device(device), generator, input_size, source_crop=source_crop)
    values: dict[str, Tensor] = {}
    for s in SPECS:
        if s.first:
            values.update(s.sample(d))
    u = uniform((batch, SHARED_COLUMNS), generator, d.device)
    col = 0
    for s in SPECS:
        if s.first:
            continue
        d.u = u[:, col : col + s.columns] if s.columns else None
        col += s.columns
        if s.always_draws or s.enabled(cfg):
            values.update(s.sample(d))
    return ViewParams(cfg=cfg, **values)
