"""Random sharpness (an augself addition, not in the AugSelf paper): torchvision's ``adjust_sharpness``, a blend
of the image with its 3x3 smoothed copy (kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13, border pixels kept),
``out = clamp(f * x + (1 - f) * smooth(x), 0, 1)`` with a per-sample factor f ~ U[low, high], applied with
probability ``sharp_p`` (default 0: off). f = 0 gives the smoothed image, 1 the original, 2 a sharper one.

Record ``sharp`` (B,) float factor, 1.0 where not applied. Target ``sharp`` (1, regression): the difference of
(f - 1) / (high - low), each view by its own range (0 where not applied, as the colour target). Runs after the
rotation; like every augmentation added after the original set it draws random numbers only when on, so configs
without it keep their views for a given seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from augself.augment.specs.base import AugmentationSpec, Awareness, ConfigField, Draws, RecordField, Target

if TYPE_CHECKING:
    from augself.augment.config import ViewConfig
    from augself.augment.params import ViewParams


def _sample(d: Draws) -> dict[str, Tensor]:
    u = d.rand(2)
    lo, hi = (float(v) for v in d.cfg.sharp_factor)
    return {"sharp": torch.where(u[:, 0] < d.cfg.sharp_p, lo + (hi - lo) * u[:, 1], torch.ones_like(u[:, 1]))}


def adjust_sharpness(x: Tensor, factor: Tensor) -> Tensor:
    """Per-sample ``torchvision.transforms.v2.functional.adjust_sharpness`` on a float batch in [0, 1]."""
    B, C, H, W = x.shape
    if H <= 2 or W <= 2:
        return x
    a, b = 1.0 / 13.0, 5.0 / 13.0
    kernel = torch.tensor([[a, a, a], [a, b, a], [a, a, a]], dtype=x.dtype, device=x.device).expand(C, 1, 3, 3)
    smooth = torch.nn.functional.conv2d(x, kernel, groups=C)
    out = x.clone()
    inner = out[..., 1:-1, 1:-1]
    inner.add_((smooth - inner) * (1.0 - factor.to(x.dtype)).view(B, 1, 1, 1))
    return out.clamp_(0.0, 1.0)


def _apply(x: Tensor, p: ViewParams, cfg: ViewConfig) -> Tensor:
    if not cfg.sharp_p > 0:  # off: no work, no device sync
        return x
    factor = p.sharp.to(x.device)
    idx = (factor != 1.0).nonzero().squeeze(1)
    if idx.numel() == x.shape[0]:
        return adjust_sharpness(x, factor)
    if idx.numel():
        x.index_put_((idx,), adjust_sharpness(x.index_select(0, idx), factor.index_select(0, idx)))
    return x


def _width(cfg: ViewConfig) -> float:
    lo, hi = (float(v) for v in cfg.sharp_factor)
    return hi - lo if hi > lo else 1.0


def sharp_vector(p: ViewParams, cfg: ViewConfig) -> Tensor:
    """(B, 1) normalised factor (f - 1) / width; 0 where not applied."""
    return ((p.sharp.float() - 1.0) / _width(cfg)).unsqueeze(1)


def _check(cfg: ViewConfig) -> None:
    lo, hi = (float(v) for v in cfg.sharp_factor)
    if not 0.0 <= lo <= hi:
        raise ValueError(f"sharp_factor must satisfy 0 <= low <= high, got {cfg.sharp_factor!r}")


SPEC = AugmentationSpec(
    name="sharp",
    config=(
        ConfigField("sharp_p", float, 0.0, "Random sharpness probability (0: off).", "prob"),
        ConfigField("sharp_factor", tuple[float, float], (0.0, 2.0), "Sharpness factor ~ U[low, high] (1: unchanged)."),
    ),
    record=(
        RecordField(
            "sharp",
            lambda n, dev: torch.ones(n, device=dev),
            "(B,) float: sharpness factor; 1.0 where not applied.",
        ),
    ),
    sample=_sample,
    off={"sharp_p": 0.0},
    enabled=lambda cfg: cfg.sharp_p > 0,
    always_draws=False,
    apply=_apply,
    targets=(
        Target(
            "sharp",
            1,
            "regression",
            lambda a, b, ca, cb: sharp_vector(a, ca) - sharp_vector(b, cb).to(a.device),
            sharp_vector,
            dims=("d_sharpness",),
            uses_cfg=True,
        ),
    ),
    awareness=Awareness(
        strengths=(0.5, 1.0),  # factor ~ U[1 - s, 1 + s]
        probe_strength=1.0,
        isolate=lambda s: {"sharp_p": 1.0, "sharp_factor": (max(0.0, 1.0 - float(s)), 1.0 + float(s))},
        label="factor 1+-{:g}",
        rank=6,
        default=False,
    ),
    describe=lambda p, b: f"sharp {float(p.sharp[b]):.2f}" if p.sharp[b] != 1 else None,
    validate=_check,
)
