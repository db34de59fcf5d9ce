"""AugSelf targets from recorded :class:`ViewParams` (Lee et al., NeurIPS 2021, Sec. 3; reference §2.2).

Each target is declared by its augmentation's spec (:mod:`augself.augment.specs`); :data:`TARGETS` is derived:

* ``crop`` (4, regression): [cy_a - cy_b, cx_a - cx_b, h_a - h_b, w_a - w_b], centres ``top + h/2`` and
  ``left + w/2``; where view a is flipped, cx <- 1 - cx for *both* views (reference quirk Q1).
* ``color`` (4, regression): difference of [(b-1)/Δb, (c-1)/Δc, (s-1)/Δs, h/Δh], Δ = width of each view's
  configured factor range (0.8, 0.8, 0.8, 0.2 by default, scaled by ``color_strength``); zeros where jitter was
  skipped.
* ``color_hue`` (2, regression; an augself extension, not in the paper): the hue-shift difference on the circle,
  [sin 2πd, cos 2πd] with d = h_a - h_b (0 where jitter was skipped). The paper's linear ``h/Δh`` entry of
  ``color`` wraps around the hue circle once shifts exceed ±0.25, and for ±0.5 its conditional mean given the
  two views is exactly 0 (``benchmarks/hue_target_ambiguity.py``): no head can predict it. The circular
  encoding is a function of what the views show, whatever the range. Identical views give (0, 1).
* ``flip`` (1, binary): 1.0 if both views share the flip state.
* ``blur`` (1, regression): σ_a / (σ_max - σ_min)_a - σ_b / (σ_max - σ_min)_b. **Deliberately normalised**, unlike
  the reference (quirk Q3, which regresses the raw σ difference in [-2, 2] through a tanh bounded by 1).
* ``rot`` (4 classes): (k_a - k_b) mod 4, long (B,).
* ``sol`` (1, regression): t_a - t_b (unapplied threshold 1.0, quirk Q2).
* ``sharp`` (1, regression; augself's random sharpness): difference of (f - 1) / (f_max - f_min).
* ``angle`` (2, regression; augself's continuous rotation): [sin d, cos d] of the angle difference d.

Each view is normalised with its *own* settings: the record's ``cfg`` (the ViewConfig it was sampled with).
``absolute_targets(p, names)`` gives one view's ω (single-view analyses and tests; E-SSL labels its four rotations
itself, :func:`augself.essl.rotate_four_ways`).
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor

from augself.augment.config import ViewConfig
from augself.augment.params import ViewParams
from augself.augment.specs.base import Target
from augself.augment.specs.blur import blur_scale
from augself.augment.specs.color import color_vector, hue_shift
from augself.augment.specs.crop import centres
from augself.augment.specs.registry import TARGET_TABLE
from augself.names import check_name

__all__ = [
    "TARGETS",
    "TargetSpec",
    "absolute_targets",
    "blur_scale",
    "centres",
    "check_names",
    "color_vector",
    "hue_shift",
    "relative_targets",
]

TargetSpec = Target
"""A target's declaration: ``dim``, ``kind`` (regression / binary / class) and its relative / absolute forms."""

TARGETS: dict[str, Target] = TARGET_TABLE
"""AugSelf target name -> :class:`TargetSpec`, from the augmentation specs."""


def check_names(names: Iterable[str] | str) -> list[str]:
    """Validate target names; unknown ones raise ``ValueError`` with the valid names and closest match."""
    names = [names] if isinstance(names, str) else list(names)
    for n in names:
        check_name(n, TARGETS, "augmentation target")
    return names


def _cfg(p: ViewParams, given: ViewConfig | None, arg: str) -> ViewConfig | None:
    """The settings that normalise a view: its record's own; a given one must agree with it."""
    if given is not None and p.cfg is not None and given != p.cfg:
        raise ValueError(
            f"{arg} differs from the ViewConfig the view was sampled with; targets use each view's own settings "
            f"(leave {arg} out)"
        )
    return p.cfg if p.cfg is not None else given


def _need(cfg: ViewConfig | None, name: str) -> ViewConfig:
    if cfg is None:
        raise ValueError(f"target {name!r} needs the view's ViewConfig: the record has none, pass cfg")
    return cfg


def relative_targets(
    a: ViewParams,
    b: ViewParams,
    names: Iterable[str],
    cfg: ViewConfig | None = None,
    cfg_b: ViewConfig | None = None,
) -> dict[str, Tensor]:
    """AugSelf difference targets ω_a - ω_b in view a's frame (see module docstring).

    Each view is normalised by its record's ``cfg``; ``cfg`` / ``cfg_b`` are only needed for records without
    one (``cfg`` then serves view b too unless ``cfg_b`` is given). Regression targets are float (B, dim),
    ``flip`` is float (B, 1), ``rot`` is long (B,).
    """
    names = check_names(names)
    if len(a) != len(b):
        raise ValueError(f"views have different batch sizes: {len(a)} vs {len(b)}")
    ca = _cfg(a, cfg, "cfg")
    cb = _cfg(b, cfg_b, "cfg_b") if cfg_b is not None or b.cfg is not None else ca  # legacy: cfg serves both
    out: dict[str, Tensor] = {}
    for n in names:
        t = TARGETS[n]
        if t.uses_cfg:
            out[n] = t.relative(a, b, _need(ca, n), _need(cb, n))
        else:
            out[n] = t.relative(a, b, ca, cb)  # type: ignore[arg-type]
    return out


def absolute_targets(p: ViewParams, names: Iterable[str], cfg: ViewConfig | None = None) -> dict[str, Tensor]:
    """One view's ω: crop [cy, cx, h, w] (un-mirrored image frame), normalised colour vector, flip flag
    (float (B, 1)), σ / blur_scale(cfg), solarize threshold, rotation class k (long (B,)), ...; normalised
    by the record's ``cfg`` (``cfg`` for records without one)."""
    names = check_names(names)
    c = _cfg(p, cfg, "cfg")
    out: dict[str, Tensor] = {}
    for n in names:
        t = TARGETS[n]
        out[n] = t.absolute(p, _need(c, n) if t.uses_cfg else c)  # type: ignore[arg-type]
    return out
