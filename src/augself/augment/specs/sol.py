"""Solarize ``x >= t -> 1 - x`` (AugSelf's ``stl10_sol``: kornia ``RandomSolarize(0.5, 0.0)``, t ~ U[0, 1];
BYOL's second view: p = 0.2, fixed t = 0.5).

Record ``solarize`` (applied) and ``threshold`` (1.0 where not applied, quirk Q2). Target ``sol``
(1, regression): t_a - t_b.
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
    solarize = d.u[:, 0] < d.cfg.solarize_p
    tlo, thi = (float(v) for v in d.cfg.solarize_threshold)
    threshold = torch.where(solarize, tlo + (thi - tlo) * d.u[:, 1], torch.ones_like(d.u[:, 1]))
    return {"solarize": solarize, "threshold": threshold}


def _apply(x: Tensor, p: ViewParams, cfg: ViewConfig) -> Tensor:
    return ops.solarize(x, p.threshold, p.solarize)


def _check(cfg: ViewConfig) -> None:
    lo, hi = (float(v) for v in cfg.solarize_threshold)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"solarize_threshold must satisfy 0 <= low <= high <= 1, got {cfg.solarize_threshold!r}")


def _describe(p: ViewParams, b: int) -> str | None:
    return f"sol {float(p.threshold[b]):.2f}" if p.solarize[b] else None


SPEC = AugmentationSpec(
    name="sol",
    config=(
        ConfigField("solarize_p", float, 0.0, "Solarize probability (BYOL uses 0.0 / 0.2 for its two views).", "prob"),
        ConfigField(
            "solarize_threshold",
            tuple[float, float],
            (0.0, 1.0),
            "Threshold ~ U[low, high]: (0, 1) as kornia's ``RandomSolarize(0.5, 0.0)`` in AugSelf's ``stl10_sol``; "
            "(0.5, 0.5) is PIL's fixed ``ImageOps.solarize`` threshold 128 on 8-bit values (BYOL, E-SSL ImageNet "
            "``utils.py`` line 71).",
        ),
    ),
    record=(
        RecordField("solarize", lambda n, dev: torch.zeros(n, dtype=torch.bool, device=dev), "(B,) bool: solarized."),
        RecordField(
            "threshold",
            lambda n, dev: torch.ones(n, device=dev),
            "(B,) float: solarize threshold in [0, 1]; 1.0 where not applied.",
        ),
    ),
    sample=_sample,
    off={"solarize_p": 0.0},
    enabled=lambda cfg: cfg.solarize_p > 0,
    columns=2,
    apply=_apply,
    targets=(
        Target(
            "sol",
            1,
            "regression",
            lambda a, b, ca, cb: (a.threshold.float() - b.threshold.float().to(a.device)).unsqueeze(1),
            lambda p, cfg: p.threshold.float().unsqueeze(1),
            dims=("d_threshold",),
        ),
    ),
    awareness=Awareness(
        strengths=(1.0,),  # probability; threshold ~ U[0, 1] (BYOL)
        probe_strength=1.0,
        isolate=lambda s: {"solarize_p": float(s)},
        label="p={:g}",
        rank=5,
        default=False,
    ),
    describe=_describe,
    validate=_check,
)
