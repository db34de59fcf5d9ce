"""AugSelf targets from recorded :class:`ViewParams` (Lee et al., NeurIPS 2021, Sec. 3; reference §2.2).

``relative_targets(a, b, names, cfg)`` gives the difference targets ω_a - ω_b in view a's frame:

* ``crop`` (4, regression): [cy_a - cy_b, cx_a - cx_b, h_a - h_b, w_a - w_b], centres ``top + h/2`` and
  ``left + w/2``; where view a is flipped, cx <- 1 - cx for *both* views (reference quirk Q1).
* ``color`` (4, regression): difference of [(b-1)/Δb, (c-1)/Δc, (s-1)/Δs, h/Δh], Δ = width of the configured
  factor range (0.8, 0.8, 0.8, 0.2 by default, scaled by ``color_strength``); zeros where jitter was skipped.
* ``hue`` (2, regression; an augself extension, not in the paper): the hue-shift difference on the circle,
  [sin 2πd, cos 2πd] with d = h_a - h_b (0 where jitter was skipped). The paper's linear ``h/Δh`` entry of
  ``color`` wraps around the hue circle once shifts exceed ±0.25, and for ±0.5 its conditional mean given the
  two views is exactly 0 (``benchmarks/hue_target_ambiguity.py``): no head can predict it. The circular
  encoding is a function of what the views show, whatever the range. Identical views give (0, 1).
* ``flip`` (1, binary): 1.0 if both views share the flip state.
* ``blur`` (1, regression): (σ_a - σ_b) / (σ_max - σ_min). **Deliberately normalised**, unlike the reference
  (quirk Q3, which regresses the raw σ difference in [-2, 2] through a tanh bounded by 1).
* ``rot`` (4 classes): (k_a - k_b) mod 4, long (B,).
* ``sol`` (1, regression): t_a - t_b (unapplied threshold 1.0, quirk Q2).

``absolute_targets(p, names, cfg)`` gives one view's ω (e.g. E-SSL's rotation class k).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from augself.augment.config import ViewConfig
from augself.augment.params import ViewParams


@dataclass(frozen=True)
class TargetSpec:
    dim: int
    """Output dimension of the head (number of classes for ``class``)."""
    kind: Literal["regression", "binary", "class"]


TARGETS: dict[str, TargetSpec] = {
    "crop": TargetSpec(4, "regression"),
    "color": TargetSpec(4, "regression"),
    "hue": TargetSpec(2, "regression"),
    "flip": TargetSpec(1, "binary"),
    "blur": TargetSpec(1, "regression"),
    "rot": TargetSpec(4, "class"),
    "sol": TargetSpec(1, "regression"),
}


def check_names(names: Iterable[str]) -> list[str]:
    """Validate target names; unknown ones raise ``ValueError`` with the valid names and closest match."""
    names = [names] if isinstance(names, str) else list(names)
    for n in names:
        if n not in TARGETS:
            close = difflib.get_close_matches(str(n), list(TARGETS), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown augmentation target {n!r}; valid names: {sorted(TARGETS)}.{hint}")
    return names


def _width(lo: float, hi: float) -> float:
    w = hi - lo
    return w if w > 0 else 1.0


def color_vector(p: ViewParams, cfg: ViewConfig) -> Tensor:
    """(B, 4) normalised colour parameters; zeros where jitter was not applied (quirk Q2)."""
    names = ("brightness", "contrast", "saturation", "hue")
    centre = torch.tensor([1.0, 1.0, 1.0, 0.0], device=p.color.device)
    width = torch.tensor([_width(*cfg.factor_range(n)) for n in names], device=p.color.device)
    v = (p.color.float() - centre) / width
    return torch.where(p.jitter.unsqueeze(1), v, torch.zeros_like(v))


def hue_shift(p: ViewParams) -> Tensor:
    """(B,) hue shift in turns; 0 where jitter was not applied."""
    return torch.where(p.jitter, p.color[:, 3].float(), torch.zeros_like(p.color[:, 3], dtype=torch.float32))


def _circle(d: Tensor) -> Tensor:
    angle = 2 * torch.pi * d
    return torch.stack((torch.sin(angle), torch.cos(angle)), dim=1)


def blur_scale(cfg: ViewConfig) -> float:
    """Normaliser of σ: width of the sigma range (falls back to σ_max, then 1, for a degenerate range)."""
    lo, hi = (float(v) for v in cfg.blur_sigma)
    if hi > lo:
        return hi - lo
    return hi if hi > 0 else 1.0


def _centres(p: ViewParams) -> Tensor:
    c = p.crop.float()
    return torch.stack((c[:, 0] + c[:, 2] / 2, c[:, 1] + c[:, 3] / 2), dim=1)


def relative_targets(
    a: ViewParams,
    b: ViewParams,
    names: Iterable[str],
    cfg: ViewConfig,
    cfg_b: ViewConfig | None = None,
) -> dict[str, Tensor]:
    """AugSelf difference targets ω_a - ω_b in view a's frame (see module docstring).

    ``cfg`` normalises view a (and view b unless ``cfg_b`` is given). Regression targets are float (B, dim),
    ``flip`` is float (B, 1), ``rot`` is long (B,).
    """
    names = check_names(names)
    cfg_b = cfg if cfg_b is None else cfg_b
    if len(a) != len(b):
        raise ValueError(f"views have different batch sizes: {len(a)} vs {len(b)}")
    out: dict[str, Tensor] = {}
    for n in names:
        if n == "crop":
            ca, cb = _centres(a), _centres(b.to(a.device))
            fa = a.flip.to(ca.device)
            ca[:, 1] = torch.where(fa, 1 - ca[:, 1], ca[:, 1])
            cb[:, 1] = torch.where(fa, 1 - cb[:, 1], cb[:, 1])
            out[n] = torch.cat((ca - cb, a.crop[:, 2:].float() - b.crop[:, 2:].float().to(ca.device)), dim=1)
        elif n == "color":
            out[n] = color_vector(a, cfg) - color_vector(b, cfg_b).to(a.device)
        elif n == "hue":
            out[n] = _circle(hue_shift(a) - hue_shift(b).to(a.device))
        elif n == "flip":
            out[n] = (a.flip == b.flip.to(a.device)).float().unsqueeze(1)
        elif n == "blur":
            sa = a.sigma.float() / blur_scale(cfg)
            sb = b.sigma.float().to(a.device) / blur_scale(cfg_b)
            out[n] = (sa - sb).unsqueeze(1)
        elif n == "rot":
            out[n] = (a.rot.long() - b.rot.long().to(a.device)).remainder(4)
        elif n == "sol":
            out[n] = (a.threshold.float() - b.threshold.float().to(a.device)).unsqueeze(1)
    return out


def absolute_targets(p: ViewParams, names: Iterable[str], cfg: ViewConfig) -> dict[str, Tensor]:
    """One view's ω: crop [cy, cx, h, w] (un-mirrored image frame), normalised colour vector, flip flag
    (float (B, 1)), σ / blur_scale(cfg), solarize threshold, rotation class k (long (B,), E-SSL)."""
    names = check_names(names)
    out: dict[str, Tensor] = {}
    for n in names:
        if n == "crop":
            out[n] = torch.cat((_centres(p), p.crop[:, 2:].float()), dim=1)
        elif n == "color":
            out[n] = color_vector(p, cfg)
        elif n == "hue":
            out[n] = _circle(hue_shift(p))
        elif n == "flip":
            out[n] = p.flip.float().unsqueeze(1)
        elif n == "blur":
            out[n] = (p.sigma.float() / blur_scale(cfg)).unsqueeze(1)
        elif n == "rot":
            out[n] = p.rot.long().remainder(4)
        elif n == "sol":
            out[n] = p.threshold.float().unsqueeze(1)
    return out
