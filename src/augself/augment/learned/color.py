"""Learned colour jitter: per-input uniform ranges of brightness, saturation and hue, reparameterised (InstaAug).

Reference: NingMiao/InstaAug ``distribution.py:361-396`` (RawFooT): the global head gives two outputs per factor,
``range = max_range * sigmoid(p - 4)`` (here each factor's maximum and ``offset_shift``,
:class:`LearnedColorConfig`), the first of each pair the upper width ``hi`` and the second the lower width ``lo``,
and ``delta = r * hi - (1 - r) * lo`` with ``r ~ U(0, 1)`` per factor (drawn here from the caller's generator;
differentiable in ``lo`` and ``hi``). Only the factors whose maximum is > 0 are learned, in the order brightness,
saturation, hue (the reference's h and s maxima are 0, so it learns brightness alone). The record gets the colour
factors ``1 + delta`` (brightness, saturation) and the hue shift ``delta`` (turns), contrast 1, ``color_applied``
True; the op order is the view's sampled ``color_perm`` (kept). The reference applies ``V' = clip((1 + d) V)``,
``S' = clip((1 + d) S)``, ``H' = H + d`` in HSV (``augmentation.py:323-356``); brightness here scales RGB (the same
below saturation), saturation is the view's saturation op (``color_saturation_mode``), hue the same shift.

Entropy: the reference's entropy of the family is the widths themselves (``entropy_every``, weights ``[0.3, 0.3,
0.1, 0.1, 0.1, 0.1]`` with only V's non-zero, ``config_color_jittering_supervised.yaml``); here one weight per family
multiplies the sum of all widths ``sum_f (lo_f + hi_f)`` (B,).
"""

from __future__ import annotations

import torch
from torch import Tensor

from augself.augment.learned.config import LearnedColorConfig
from augself.augment.specs.base import uniform

__all__ = [
    "LEARNABLE",
    "RECORD_INDEX",
    "active_factors",
    "color_entropy",
    "color_range",
    "color_record",
    "sample_delta",
]

LEARNABLE = ("brightness", "saturation", "hue")
"""The factors with a learned range, in head order."""

RECORD_INDEX = {"brightness": 0, "contrast": 1, "saturation": 2, "hue": 3}
"""Column of each factor in the ``color`` record (``specs/color.py`` ``FACTORS``)."""


def active_factors(cfg: LearnedColorConfig) -> tuple[str, ...]:
    """The learned factors (maximum > 0), in :data:`LEARNABLE` order."""
    return tuple(f for f in LEARNABLE if getattr(cfg, f) > 0)


def color_range(raw: Tensor, cfg: LearnedColorConfig) -> tuple[Tensor, Tensor]:
    """``(lo, hi)`` (B, k) per active factor from the head's (B, 2k) outputs ``(hi_0, lo_0, hi_1, lo_1, ...)``."""
    names = active_factors(cfg)
    top = torch.tensor([getattr(cfg, f) for f in names], dtype=raw.dtype, device=raw.device)
    width = torch.sigmoid(raw - cfg.offset_shift)
    return width[:, 1::2] * top, width[:, 0::2] * top


def sample_delta(lo: Tensor, hi: Tensor, generator: torch.Generator | None) -> Tensor:
    """(B, k) ``delta = r * hi - (1 - r) * lo``, ``r ~ U(0, 1)`` from ``generator`` (k draws per row)."""
    r = uniform(tuple(lo.shape), generator, lo.device).to(lo.dtype)
    return r * hi - (1 - r) * lo


def color_record(delta: Tensor, cfg: LearnedColorConfig) -> Tensor:
    """(B, 4) ``[brightness, contrast, saturation, hue]``: ``1 + delta`` / ``delta`` for the active factors, the
    identity (1, 1, 1, 0) for the others; carries ``delta``'s gradient."""
    names = active_factors(cfg)
    cols = [torch.ones_like(delta[:, 0]) for _ in range(3)] + [torch.zeros_like(delta[:, 0])]
    for k, f in enumerate(names):
        cols[RECORD_INDEX[f]] = delta[:, k] if f == "hue" else 1 + delta[:, k]
    return torch.stack(cols, dim=1)


def color_entropy(lo: Tensor, hi: Tensor) -> Tensor:
    """(B,) the sum of the widths of the active factors (module docstring)."""
    return (lo + hi).sum(dim=1)
