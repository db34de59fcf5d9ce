"""Four-fold rotation k * 90 deg, k ~ U{0, 1, 2, 3} (AugSelf's ``stl10_rot``: ``RandomRotation(p=0.5)``).

Config ``rot_p`` (old spelling ``rotate_p``). Record ``rot`` (B,) long, 0 where not applied. Target ``rot``
(4 classes): (k_a - k_b) mod 4; its absolute form k is E-SSL's rotation class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from augself.augment import ops
from augself.augment.specs.base import AugmentationSpec, Awareness, ConfigField, Draws, RecordField, Target

if TYPE_CHECKING:
    from augself.augment.config import ViewConfig
    from augself.augment.params import ViewParams


def _sample(d: Draws) -> dict[str, Tensor]:
    assert d.u is not None
    applied = d.u[:, 0] < d.cfg.rot_p
    k = torch.floor(d.u[:, 1] * 4)
    return {"rot": torch.where(applied, k.long().clamp_(0, 3), torch.zeros_like(k, dtype=torch.long))}


def _apply(x: Tensor, p: ViewParams, cfg: ViewConfig) -> Tensor:
    return ops.rot90(x, p.rot)


def _real_turn(p: ViewParams, cfg: ViewConfig, g: torch.Generator) -> ViewParams:
    """Invariance to an actual turn: k in {1, 2, 3} when every sample is rotated."""
    if cfg.rot_p >= 1.0:
        p.rot = 1 + torch.randint(0, 3, (len(p),), generator=g)
    return p


SPEC = AugmentationSpec(
    name="rot",
    config=(
        ConfigField(
            "rot_p",
            float,
            0.0,
            "Probability of a four-fold rotation k*90 deg, k ~ U{0,1,2,3} (AugSelf's `rot`).",
            "prob",
            aliases=("rotate_p",),
        ),
    ),
    record=(
        RecordField(
            "rot",
            lambda n, dev: torch.zeros(n, dtype=torch.long, device=dev),
            "(B,) long: counter-clockwise quarter turns k in {0,1,2,3}; 0 where not applied.",
        ),
    ),
    sample=_sample,
    off={"rot_p": 0.0},
    enabled=lambda cfg: cfg.rot_p > 0,
    columns=2,
    apply=_apply,
    targets=(
        Target(
            "rot",
            4,
            "class",
            lambda a, b, ca, cb: (a.rot.long() - b.rot.long().to(a.device)).remainder(4),
            lambda p, cfg: p.rot.long().remainder(4),
        ),
    ),
    awareness=Awareness(
        strengths=(1.0,),  # probability; quarter turns k in {1, 2, 3} for invariance
        probe_strength=1.0,  # the difference is uniform over the four classes
        isolate=lambda s: {"rot_p": float(s)},
        label="p={:g}",
        rank=4,
        invariance=_real_turn,
    ),
    describe=lambda p, b: f"rot {int(p.rot[b])}" if p.rot[b] else None,
)
