"""Colour jitter: brightness, contrast, saturation, hue in random order, p = 0.8 (SimCLR / AugSelf, Lee et al.,
NeurIPS 2021, App. A; reference §2.1).

Config: ``color_p`` and the ranges ``color_brightness`` / ``color_contrast`` / ``color_saturation`` /
``color_hue`` (0.4, 0.4, 0.4, 0.1) scaled by ``color_strength`` s (AugSelf's ``--color-aug``),
``color_saturation_mode`` and ``color_order`` (the permutation mode). Record: ``color_applied``, ``color`` (the
four factors, (1, 1, 1, 0) where not applied) and ``color_perm`` (the op permutation; not ``color_order``, which
is the config's mode). Targets: ``color`` (4, regression: the difference of [(b-1)/Δb, (c-1)/Δc, (s-1)/Δs, h/Δh]
with each view's own ranges Δ; zeros where not applied) and ``color_hue`` (2, regression; an augself extension:
[sin 2πd, cos 2πd] of the hue-shift difference d, which the paper's linear ``h/Δh`` cannot express once shifts
wrap around: ``benchmarks/hue_target_ambiguity.py``). The op runs in the pipeline's first pass (grouped by hue
position on CPU, :func:`augself.augment.ops.hue_slot`). Old config spellings (``jitter_p``, ``brightness``, ...,
``saturation_mode``) and the old target key ``hue`` are declared as aliases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from augself.augment.specs.base import AugmentationSpec, Awareness, ConfigField, Draws, RecordField, Target, no_flags

if TYPE_CHECKING:
    from augself.augment.config import ViewConfig
    from augself.augment.params import ViewParams

FACTORS = ("brightness", "contrast", "saturation", "hue")
"""The four factors in record order (``color_perm`` indexes them: 0=b, 1=c, 2=s, 3=h); config field
``color_<factor>`` is the range of each."""


def _sample(d: Draws) -> dict[str, Tensor]:
    assert d.u is not None
    cfg, device = d.cfg, d.device
    applied = d.u[:, 0] < cfg.color_p
    u_factor = d.rand(4)
    u_order = d.rand(4)
    ranges = [cfg.factor_range(n) for n in FACTORS]
    lo = torch.tensor([r[0] for r in ranges], device=device)
    hi = torch.tensor([r[1] for r in ranges], device=device)
    factors = lo + (hi - lo) * u_factor
    ident = torch.tensor([1.0, 1.0, 1.0, 0.0], device=device)
    color = torch.where(applied.unsqueeze(1), factors, ident)
    perm = torch.argsort(u_order, dim=1)
    if cfg.color_order == "batch":  # one permutation for the whole batch (kornia 0.4.1), same number of draws
        perm = perm[:1].expand(d.batch, 4).contiguous()
    return {"color_applied": applied, "color": color, "color_perm": perm}


def _width(lo: float, hi: float) -> float:
    w = hi - lo
    return w if w > 0 else 1.0


def color_vector(p: ViewParams, cfg: ViewConfig) -> Tensor:
    """(B, 4) normalised colour parameters; zeros where jitter was not applied (quirk Q2)."""
    centre = torch.tensor([1.0, 1.0, 1.0, 0.0], device=p.color.device)
    width = torch.tensor([_width(*cfg.factor_range(n)) for n in FACTORS], device=p.color.device)
    v = (p.color.float() - centre) / width
    return torch.where(p.color_applied.unsqueeze(1), v, torch.zeros_like(v))


def hue_shift(p: ViewParams) -> Tensor:
    """(B,) hue shift in turns; 0 where jitter was not applied."""
    return torch.where(p.color_applied, p.color[:, 3].float(), torch.zeros_like(p.color[:, 3], dtype=torch.float32))


def _circle(d: Tensor) -> Tensor:
    angle = 2 * torch.pi * d
    return torch.stack((torch.sin(angle), torch.cos(angle)), dim=1)


def _describe(p: ViewParams, b: int) -> str:
    if not p.color_applied[b]:
        return "color -"
    bb, cc, ss, hh = p.color[b].tolist()
    order = "".join("bcsh"[i] for i in p.color_perm[b].tolist())
    return f"color b{bb:.2f} c{cc:.2f} s{ss:.2f} h{hh:+.2f} ({order})"


SPEC = AugmentationSpec(
    name="color",
    config=(
        ConfigField(
            "color_p", float, 0.8, "Colour jitter probability (SimCLR / AugSelf: 0.8).", "prob", aliases=("jitter_p",)
        ),
        ConfigField(
            "color_brightness",
            float,
            0.4,
            "Brightness factor range is [1 - b*s, 1 + b*s] where s = ``color_strength``.",
            "nonneg",
            aliases=("brightness",),
        ),
        ConfigField(
            "color_contrast", float, 0.4, "Contrast factor range [1 - c*s, 1 + c*s].", "nonneg", aliases=("contrast",)
        ),
        ConfigField(
            "color_saturation",
            float,
            0.4,
            "Saturation factor range [1 - v*s, 1 + v*s].",
            "nonneg",
            aliases=("saturation",),
        ),
        ConfigField(
            "color_hue",
            float,
            0.1,
            "Hue shift range is [-h*s, h*s] (fraction of a full turn).",
            "nonneg",
            aliases=("hue",),
        ),
        ConfigField(
            "color_strength",
            float,
            1.0,
            "AugSelf's colour-strength knob s (0.5 weak / 1 default / 2 strong): scales jitter ranges and gray_p.",
            "nonneg",
        ),
        ConfigField(
            "color_saturation_mode",
            str,
            "blend",
            "``blend``: torchvision's saturation, a blend toward the grayscale image (modern default; also what "
            "E-SSL's torchvision ``ColorJitter`` does, ``cifar10/main.py`` line 29). ``hsv``: the AugSelf reference's "
            "kornia 0.4.1 saturation, ``s <- clamp(s * f, 0, 1)`` in HSV (``transforms.py`` line 48 -> kornia "
            "``enhance/adjust.py`` line 61); the AugSelf paper configs select it.",
            choices=("blend", "hsv"),
            aliases=("saturation_mode",),
        ),
        ConfigField(
            "color_order",
            str,
            "sample",
            "Random order of the four colour ops: one permutation per ``sample`` (torchvision's ``ColorJitter``, "
            "called per image: E-SSL) or one per ``batch`` and view (kornia 0.4.1's ``random_color_jitter_generator`` "
            "draws one ``torch.randperm(4)`` per call, ``random_generator.py`` line 77: the AugSelf reference); the "
            "AugSelf paper configs select ``batch``.",
            choices=("sample", "batch"),
        ),
    ),
    record=(
        RecordField(
            "color_applied",
            no_flags,
            "(B,) bool: colour jitter applied.",
        ),
        RecordField(
            "color",
            lambda n, dev: torch.tensor([1.0, 1.0, 1.0, 0.0], device=dev).repeat(n, 1),
            "(B, 4) float: [brightness, contrast, saturation, hue] factors; (1, 1, 1, 0) where not applied.",
        ),
        RecordField(
            "color_perm",
            lambda n, dev: torch.arange(4, device=dev).repeat(n, 1),
            "(B, 4) long: permutation of the four colour ops (0=b, 1=c, 2=s, 3=h), applied left to right.",
        ),
    ),
    sample=_sample,
    off={"color_p": 0.0},
    enabled=lambda cfg: cfg.color_p > 0,
    columns=1,
    targets=(
        Target(
            "color",
            4,
            "regression",
            lambda a, b, ca, cb: color_vector(a, ca) - color_vector(b, cb).to(a.device),
            color_vector,
            dims=("d_brightness", "d_contrast", "d_saturation", "d_hue"),
            uses_cfg=True,
        ),
        Target(
            "color_hue",
            2,
            "regression",
            lambda a, b, ca, cb: _circle(hue_shift(a) - hue_shift(b).to(a.device)),
            lambda p, cfg: _circle(hue_shift(p)),
            dims=("sin_d_hue", "cos_d_hue"),
            preview=False,
            aliases=("hue",),
        ),
    ),
    awareness=Awareness(
        strengths=(0.5, 1.0, 2.0),  # AugSelf's colour-strength knob s (jitter ranges x s; paper Sec. 4.3)
        probe_strength=1.0,
        isolate=lambda s: {"color_p": 1.0, "color_strength": float(s)},
        label="strength {:g}",
        rank=1,
    ),
    describe=_describe,
    preview_line=1,
)
