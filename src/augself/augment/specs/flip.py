"""Horizontal flip, p = 0.5 (SimCLR / AugSelf, Lee et al., NeurIPS 2021, App. A).

Record ``flip`` (B,) bool. Target ``flip`` (1, binary): 1 where both views share the flip state (reference
§2.2). The op is folded into the pipeline's fused crop (the column coordinates are reversed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from augself.augment.specs.base import AugmentationSpec, Awareness, ConfigField, Draws, RecordField, Target, no_flags

if TYPE_CHECKING:
    from augself.augment.config import ViewConfig
    from augself.augment.params import ViewParams


def _sample(d: Draws) -> dict[str, Tensor]:
    assert d.u is not None
    return {"flip": d.u[:, 0] < d.cfg.flip_p}


def _relative(a: ViewParams, b: ViewParams, cfg_a: ViewConfig, cfg_b: ViewConfig) -> Tensor:
    return (a.flip == b.flip.to(a.device)).float().unsqueeze(1)


def _absolute(p: ViewParams, cfg: ViewConfig) -> Tensor:
    return p.flip.float().unsqueeze(1)


SPEC = AugmentationSpec(
    name="flip",
    config=(ConfigField("flip_p", float, 0.5, "Horizontal flip probability (SimCLR / AugSelf: 0.5).", "prob"),),
    record=(RecordField("flip", no_flags, "(B,) bool: flipped (after the crop)."),),
    sample=_sample,
    off={"flip_p": 0.0},
    enabled=lambda cfg: cfg.flip_p > 0,
    columns=1,
    targets=(Target("flip", 1, "binary", _relative, _absolute),),
    awareness=Awareness(
        strengths=(1.0,),  # probability; every sample is flipped
        probe_strength=0.5,  # "same flip state" balanced
        isolate=lambda s: {"flip_p": float(s)},
        label="p={:g}",
        rank=2,
    ),
    describe=lambda p, b: f"flip {int(p.flip[b])}",
    preview_line=0,
)
