"""Continuous rotation (an augself addition for learned, InstaAug-style augmentations; Miao et al., 2022): with
probability ``angle_p`` (default 0: off) the view is rotated counter-clockwise about its centre by theta ~
U[-angle_max, angle_max] degrees, bilinear with zero fill (:func:`augself.augment.ops.rotate`; InstaAug's
Mario-Iggy rotation, NingMiao/InstaAug ``augmentation_ConvFeature.py`` lines 461-469, ``math_op.py`` lines 46-55:
``affine_grid`` + ``grid_sample`` with zero padding). ``angle_max`` defaults to 180 (the full circle; InstaAug's
learned widths are each in (0, pi), ``distribution.py`` line 415).

Record ``angle`` (B,) float32 radians, 0 where not applied; a learned sampler may write a grad-carrying angle
(reparameterised, as InstaAug) and the op passes the gradient on. Target ``angle`` (2, regression): the
difference d = theta_a - theta_b on the circle, [sin d, cos d] (as ``color_hue``): rotation is 2 pi-periodic,
so a linear or wrapped difference would be discontinuous where the views are identical (d = +-2 pi, or +-pi
after wrapping, once angle_max > 90); identical views give (0, 1). Its absolute form is the angle on the circle,
[sin theta, cos theta].

The op runs last, after the four-fold rotation and the sharpness: a geometric op like ``rot`` (whose place at the
end of the chain it shares), and no later op smooths (blur, sharp) or thresholds (solarize) the zero-filled
corners or the border the bilinear resampling fades. Like every augmentation added after the original set it
draws random numbers only when on, so configs without it keep their views for a given seed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from augself.augment import ops
from augself.augment.specs.base import AugmentationSpec, Awareness, ConfigField, Draws, RecordField, Target

if TYPE_CHECKING:
    from augself.augment.config import ViewConfig
    from augself.augment.params import ViewParams


def _sample(d: Draws) -> dict[str, Tensor]:
    u = d.rand(2)
    half = float(d.cfg.angle_max) * math.pi / 180.0
    theta = (2.0 * u[:, 1] - 1.0) * half
    return {"angle": torch.where(u[:, 0] < d.cfg.angle_p, theta, torch.zeros_like(theta))}


def _apply(x: Tensor, p: ViewParams, cfg: ViewConfig) -> Tensor:
    """Rotate the samples whose angle is not 0 (the others stay bit-identical).

    A record may rotate while ``angle_p`` is 0 (written by a learned sampler, or its stored copy replayed
    through ``Augmenter.apply``): then one check of the record (a device sync) decides. A grad-carrying angle or
    image takes the out-of-place path, so the gradient reaches the angle.
    """
    angle = p.angle.to(x.device)
    if not cfg.angle_p > 0 and not angle.requires_grad and not bool(angle.any()):
        return x
    if angle.requires_grad or x.requires_grad:
        return torch.where((angle != 0).view(-1, 1, 1, 1), ops.rotate(x, angle), x)
    idx = (angle != 0).nonzero().squeeze(1)
    if idx.numel() == x.shape[0]:
        return ops.rotate(x, angle)
    if idx.numel():
        x.index_put_((idx,), ops.rotate(x.index_select(0, idx), angle.index_select(0, idx)))
    return x


def _circle(theta: Tensor) -> Tensor:
    return torch.stack((torch.sin(theta), torch.cos(theta)), dim=1)


def angle_vector(p: ViewParams, cfg: ViewConfig | None = None) -> Tensor:
    """(B, 2) [sin theta, cos theta] of one view's angle; (0, 1) where not applied."""
    return _circle(p.angle.detach().float())


def angle_difference(
    a: ViewParams, b: ViewParams, ca: ViewConfig | None = None, cb: ViewConfig | None = None
) -> Tensor:
    """(B, 2) [sin d, cos d] with d = theta_a - theta_b (the target ``angle``)."""
    return _circle(a.angle.detach().float() - b.angle.detach().float().to(a.angle.device))


def _check(cfg: ViewConfig) -> None:
    if not 0.0 <= float(cfg.angle_max) <= 180.0:
        raise ValueError(f"angle_max must be in [0, 180] degrees, got {cfg.angle_max!r}")


def _describe(p: ViewParams, b: int) -> str | None:
    theta = float(p.angle[b])
    return f"angle {math.degrees(theta):.0f}°" if theta != 0 else None


SPEC = AugmentationSpec(
    name="angle",
    config=(
        ConfigField("angle_p", float, 0.0, "Continuous rotation probability (0: off).", "prob"),
        ConfigField(
            "angle_max",
            float,
            180.0,
            "Rotation angle ~ U[-angle_max, angle_max] degrees, counter-clockwise, zero fill (0 <= angle_max <= 180).",
        ),
    ),
    record=(
        RecordField(
            "angle",
            lambda n, dev: torch.zeros(n, device=dev),
            "(B,) float: counter-clockwise rotation in radians; 0.0 where not applied.",
        ),
    ),
    sample=_sample,
    off={"angle_p": 0.0},
    enabled=lambda cfg: cfg.angle_p > 0,
    always_draws=False,
    apply=_apply,
    targets=(
        Target(
            "angle",
            2,
            "regression",
            angle_difference,
            angle_vector,
            dims=("sin_d_angle", "cos_d_angle"),
        ),
    ),
    awareness=Awareness(
        strengths=(30.0, 90.0, 180.0),  # angle_max in degrees, every sample rotated
        probe_strength=180.0,  # the difference covers the whole circle
        isolate=lambda s: {"angle_p": 1.0, "angle_max": float(s)},
        label="angle<={:g}deg",
        rank=7,
        default=False,
    ),
    describe=_describe,
    preview_line=0,
    validate=_check,
)
