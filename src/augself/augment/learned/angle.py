"""Learned rotation angle: theta ~ U[-lo(x), hi(x)] per input, reparameterised (InstaAug, Mario-Iggy).

Reference: NingMiao/InstaAug ``distribution.py:409-428`` (= ``augmentation_ConvFeature.py:208-238``): the global
head's two outputs ``p`` give ``perturbation_range = sigmoid(p - 2) * pi`` (here ``max_deg`` in radians and
``offset_shift``, :class:`LearnedAngleConfig`), output 0 the upper width ``hi`` and output 1 the lower width ``lo``
(``perturbation = r * range[:, ::2] - (1 - r) * range[:, 1::2]``), so ``theta = r * hi - (1 - r) * lo`` with
``r ~ U(0, 1)`` drawn here from the caller's generator; ``theta`` is differentiable in ``lo`` and ``hi`` (the
pathwise gradient). Positive angles turn counter-clockwise (the ``angle`` augmentation's convention); the reference
learns the range, so the sign convention only names the two widths.

Entropy: the reference's "entropy" of this family is the two widths themselves, ``entropy_every = [hi, lo]`` in
radians, each weighted ``entropy_weights = [0.1, 0.1]`` (``config_rotation_supervised.yaml``); with one weight for
both that is ``weight * (lo + hi)``, so the family's entropy here is ``lo + hi`` (B,), in radians (a target entropy
of this family is a total range width in radians).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from augself.augment.learned.config import LearnedAngleConfig
from augself.augment.specs.base import uniform

__all__ = ["OUTPUTS", "angle_entropy", "angle_range", "sample_angle"]

OUTPUTS = 2
"""Global-head outputs of the family: (hi, lo), the reference's channel order."""


def angle_range(raw: Tensor, cfg: LearnedAngleConfig) -> tuple[Tensor, Tensor]:
    """``(lo, hi)`` (B,) in radians from the head's (B, 2) outputs: ``max * sigmoid(p - offset_shift)``."""
    width = math.radians(cfg.max_deg) * torch.sigmoid(raw - cfg.offset_shift)
    return width[:, 1], width[:, 0]


def sample_angle(lo: Tensor, hi: Tensor, generator: torch.Generator | None) -> Tensor:
    """(B,) ``theta = r * hi - (1 - r) * lo`` with ``r ~ U(0, 1)`` from ``generator`` (one draw per row)."""
    r = uniform((lo.shape[0],), generator, lo.device).to(lo.dtype)
    return r * hi - (1 - r) * lo


def angle_entropy(lo: Tensor, hi: Tensor) -> Tensor:
    """(B,) the reference's entropy of the family: the total width ``lo + hi`` (module docstring)."""
    return lo + hi
