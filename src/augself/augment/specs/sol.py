"""Solarize ``x >= t -> 1 - x`` (AugSelf's ``stl10_sol``: kornia ``RandomSolarize(0.5, 0.0)``, t ~ U[0, 1];
BYOL's second view: p = 0.2, fixed t = 0.5).

Config ``sol_p`` and ``sol_threshold`` (the range t is drawn from; old spellings ``solarize_p`` /
``solarize_threshold``). Record ``sol`` (applied) and ``sol_threshold`` (t; 1.0 where not applied, quirk Q2).
Target ``sol`` (1, regression): t_a - t_b.
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
    applied = d.u[:, 0] < d.cfg.sol_p
    tlo, thi = (float(v) for v in d.cfg.sol_threshold)
    threshold = torch.where(applied, tlo + (thi - tlo) * d.u[:, 1], torch.ones_like(d.u[:, 1]))
    return {"sol": applied, "sol_threshold": threshold}


def _apply(x: Tensor, p: ViewParams, cfg: ViewConfig) -> Tensor:
    return ops.solarize(x, p.sol_threshold, p.sol)


def _check(cfg: ViewConfig) -> None:
    lo, hi = (float(v) for v in cfg.sol_threshold)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"sol_threshold must satisfy 0 <= low <= high <= 1, got {cfg.sol_threshold!r}")


def _describe(p: ViewParams, b: int) -> str | None:
    return f"sol {float(p.sol_threshold[b]):.2f}" if p.sol[b] else None


SPEC = AugmentationSpec(
    name="sol",
    config=(
        ConfigField(
            "sol_p",
            float,
            0.0,
            "Solarize probability (BYOL uses 0.0 / 0.2 for its two views).",
            "prob",
            aliases=("solarize_p",),
        ),
        ConfigField(
            "sol_threshold",
            tuple[float, float],
            (0.0, 1.0),
            "Threshold ~ U[low, high]: (0, 1) as kornia's ``RandomSolarize(0.5, 0.0)`` in AugSelf's ``stl10_sol``; "
            "(0.5, 0.5) is PIL's fixed ``ImageOps.solarize`` threshold 128 on 8-bit values (BYOL, E-SSL ImageNet "
            "``utils.py`` line 71).",
            aliases=("solarize_threshold",),
        ),
    ),
    record=(
        RecordField("sol", no_flags, "(B,) bool: solarized."),
        RecordField(
            "sol_threshold",
            lambda n, dev: torch.ones(n, device=dev),
            "(B,) float: solarize threshold in [0, 1]; 1.0 where not applied.",
        ),
    ),
    sample=_sample,
    off={"sol_p": 0.0},
    enabled=lambda cfg: cfg.sol_p > 0,
    columns=2,
    apply=_apply,
    targets=(
        Target(
            "sol",
            1,
            "regression",
            lambda a, b, ca, cb: (a.sol_threshold.float() - b.sol_threshold.float().to(a.device)).unsqueeze(1),
            lambda p, cfg: p.sol_threshold.float().unsqueeze(1),
            dims=("d_threshold",),
        ),
    ),
    awareness=Awareness(
        strengths=(1.0,),  # probability; threshold ~ U[0, 1] (BYOL)
        probe_strength=1.0,
        isolate=lambda s: {"sol_p": float(s)},
        label="p={:g}",
        rank=5,
        default=False,
    ),
    describe=_describe,
    validate=_check,
)
