"""Gaussian blur, p = 0.5, sigma ~ U[0.1, 2.0], kernel about 10 % of the view (SimCLR / AugSelf, Lee et al.,
NeurIPS 2021, App. A).

Record ``blur`` (applied) and ``blur_sigma`` (σ, drawn from the config range ``blur_sigma``; 0 where not
applied). Target ``blur`` (1, regression):
(σ_a - σ_b) / (σ_max - σ_min), each view's σ by its own range. **Deliberately normalised**, unlike the
reference (quirk Q3 regresses the raw σ difference in [-2, 2] through a tanh bounded by 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from augself.augment import ops
from augself.augment.specs.base import AugmentationSpec, Awareness, ConfigField, Draws, RecordField, Target, no_flags

if TYPE_CHECKING:
    from augself.augment.config import ViewConfig
    from augself.augment.params import ViewParams


def _sample(d: Draws) -> dict[str, Tensor]:
    assert d.u is not None
    blur = d.u[:, 0] < d.cfg.blur_p
    slo, shi = (float(v) for v in d.cfg.blur_sigma)
    sigma = torch.where(blur, slo + (shi - slo) * d.u[:, 1], torch.zeros_like(d.u[:, 1]))
    return {"blur": blur, "blur_sigma": sigma}


def _apply(x: Tensor, p: ViewParams, cfg: ViewConfig) -> Tensor:
    return ops.gaussian_blur(x, p.blur_sigma, cfg.blur_kernel, mask=p.blur, inplace=True)


def blur_scale(cfg: ViewConfig) -> float:
    """Normaliser of σ: width of the sigma range (falls back to σ_max, then 1, for a degenerate range)."""
    lo, hi = (float(v) for v in cfg.blur_sigma)
    if hi > lo:
        return hi - lo
    return hi if hi > 0 else 1.0


def _relative(a: ViewParams, b: ViewParams, cfg_a: ViewConfig, cfg_b: ViewConfig) -> Tensor:
    sa = a.blur_sigma.float() / blur_scale(cfg_a)
    sb = b.blur_sigma.float().to(a.device) / blur_scale(cfg_b)
    return (sa - sb).unsqueeze(1)


SPEC = AugmentationSpec(
    name="blur",
    config=(
        ConfigField("blur_p", float, 0.5, "Gaussian blur probability (SimCLR / AugSelf: 0.5).", "prob"),
        ConfigField(
            "blur_sigma", tuple[float, float], (0.1, 2.0), "Sigma ~ U[low, high] (pixels of the view).", "range"
        ),
        ConfigField(
            "blur_kernel_frac",
            float,
            0.1,
            "Kernel size = nearest odd integer to ``blur_kernel_frac * size`` (at least 3).",
            "nonneg",
        ),
    ),
    record=(
        RecordField("blur", no_flags, "(B,) bool: blurred."),
        RecordField(
            "blur_sigma",
            lambda n, dev: torch.zeros(n, device=dev),
            "(B,) float: blur sigma in pixels of the output view; 0 where not applied.",
        ),
    ),
    sample=_sample,
    off={"blur_p": 0.0},
    enabled=lambda cfg: cfg.blur_p > 0,
    columns=2,
    apply=_apply,
    targets=(
        Target(
            "blur",
            1,
            "regression",
            _relative,
            lambda p, cfg: (p.blur_sigma.float() / blur_scale(cfg)).unsqueeze(1),
            dims=("d_sigma",),
            uses_cfg=True,
        ),
    ),
    awareness=Awareness(
        strengths=(0.5, 1.0, 2.0),  # upper bound of sigma, drawn from U(0.1, s) (SimCLR default 2.0)
        probe_strength=2.0,
        isolate=lambda s: {"blur_p": 1.0, "blur_sigma": (min(0.1, float(s)), float(s))},
        label="sigma<={:g}",
        rank=3,
    ),
    describe=lambda p, b: f"blur {float(p.blur_sigma[b]):.2f}",
)
