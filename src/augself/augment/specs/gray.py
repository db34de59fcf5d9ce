"""Random grayscale, p = 0.2 x colour strength (SimCLR / AugSelf, Lee et al., NeurIPS 2021, App. A).

Record ``gray`` (B,) bool. No AugSelf target (the reference ignores it, §2.2) and no awareness entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor

from augself.augment import ops
from augself.augment.specs.base import AugmentationSpec, ConfigField, Draws, RecordField, no_flags

if TYPE_CHECKING:
    from augself.augment.config import ViewConfig
    from augself.augment.params import ViewParams


def _sample(d: Draws) -> dict[str, Tensor]:
    assert d.u is not None
    return {"gray": d.u[:, 0] < d.cfg.effective_gray_p}


def _apply(x: Tensor, p: ViewParams, cfg: ViewConfig) -> Tensor:
    return ops.grayscale(x, p.gray, inplace=True)


SPEC = AugmentationSpec(
    name="gray",
    config=(ConfigField("gray_p", float, 0.2, "Grayscale probability before the colour-strength scaling.", "prob"),),
    record=(RecordField("gray", no_flags, "(B,) bool: converted to grayscale."),),
    sample=_sample,
    off={"gray_p": 0.0},
    enabled=lambda cfg: cfg.effective_gray_p > 0,
    columns=1,
    apply=_apply,
    describe=lambda p, b: f"gray {int(p.gray[b])}",
)
