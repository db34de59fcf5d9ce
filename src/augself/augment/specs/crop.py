"""Random resized crop (SimCLR / AugSelf, Lee et al., NeurIPS 2021, App. A; reference §2.1-2.2).

Config: ``crop_scale`` (0.2, 1.0) and ``crop_ratio`` (3/4, 4/3), torchvision's ``RandomResizedCrop`` (10 tries,
centre-crop fallback). Record: ``crop`` (B, 4) ``[top, left, h, w]`` as fractions of the *original* image from
sampling on (the input's ``source_crop`` composed in). Target ``crop`` (4, regression): the centre and size
differences, with the x-centres mirrored where view a is flipped (reference quirk Q1). The op itself runs in the
pipeline's fused first pass (one ``grid_sample`` with the flip folded in).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from augself.augment.specs.base import AugmentationSpec, Awareness, ConfigField, Draws, RecordField, Target, uniform

if TYPE_CHECKING:
    from augself.augment.config import ViewConfig
    from augself.augment.params import ViewParams

CROP_TRIES = 10
"""Candidate boxes per sample, as torchvision's ``RandomResizedCrop.get_params``."""


def sample_crop(
    cfg: ViewConfig,
    batch: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    input_size: tuple[int, int] | None = None,
) -> Tensor:
    """RandomResizedCrop boxes (B, 4) ``[top, left, h, w]`` as fractions of the input.

    With ``input_size=(H, W)`` boxes lie on the integer pixel grid exactly like torchvision (the record is
    ``[i/H, j/W, h/H, w/W]``, as in the reference); without it boxes are continuous on a square input.
    """
    device = torch.device(device)
    u_area = uniform((batch, CROP_TRIES), generator, device)
    u_ratio = uniform((batch, CROP_TRIES), generator, device)
    u_pos = uniform((batch, 2), generator, device)
    lo, hi = (float(v) for v in cfg.crop_scale)
    rlo, rhi = (float(v) for v in cfg.crop_ratio)
    scale = lo + (hi - lo) * u_area
    ratio = torch.exp(math.log(rlo) + (math.log(rhi) - math.log(rlo)) * u_ratio)
    grid = input_size is not None
    H, W = (int(input_size[0]), int(input_size[1])) if grid else (1, 1)  # type: ignore[index]
    area = float(H * W)
    w = torch.sqrt(area * scale * ratio)
    h = torch.sqrt(area * scale / ratio)
    if grid:
        w, h = torch.round(w), torch.round(h)
    valid = (w > 0) & (w <= W) & (h > 0) & (h <= H)
    first = valid.to(torch.uint8).argmax(dim=1, keepdim=True)
    any_valid = valid.any(dim=1)
    w = w.gather(1, first).squeeze(1)
    h = h.gather(1, first).squeeze(1)
    # torchvision's fallback: central crop with the ratio clamped to the allowed range
    in_ratio = W / H
    if in_ratio < rlo:
        fw, fh = float(W), W / rlo
    elif in_ratio > rhi:
        fw, fh = H * rhi, float(H)
    else:
        fw, fh = float(W), float(H)
    if grid:
        fw, fh = float(round(fw)), float(round(fh))
    w = torch.where(any_valid, w, torch.full_like(w, fw))
    h = torch.where(any_valid, h, torch.full_like(h, fh))
    if grid:
        top = torch.minimum(torch.floor(u_pos[:, 0] * (H - h + 1)), H - h)
        left = torch.minimum(torch.floor(u_pos[:, 1] * (W - w + 1)), W - w)
        top = torch.where(any_valid, top, torch.floor((H - h) / 2))
        left = torch.where(any_valid, left, torch.floor((W - w) / 2))
    else:
        top = torch.where(any_valid, u_pos[:, 0] * (H - h), (H - h) / 2)
        left = torch.where(any_valid, u_pos[:, 1] * (W - w), (W - w) / 2)
    return torch.stack((top / H, left / W, h / H, w / W), dim=1)


def random_resized_crop_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    u: Sequence[float],
) -> tuple[int, int, int, int]:
    """One RandomResizedCrop box ``(top, left, h, w)`` in integer pixels of an ``height`` x ``width`` image.

    The scalar twin of :func:`sample_crop` with ``input_size`` (and of torchvision's
    ``RandomResizedCrop.get_params``): area ~ U(scale) and log-uniform ratio for up to ``CROP_TRIES`` candidates,
    the first that fits wins, its corner uniform on the pixel grid; else the central crop with the ratio clamped.
    ``u`` holds ``2 * CROP_TRIES + 2`` uniforms in [0, 1): the area draws, the ratio draws, then (top, left),
    the same layout as :func:`sample_crop`. Pure Python, for DataLoader workers (microseconds per box).
    """
    if len(u) != 2 * CROP_TRIES + 2:
        raise ValueError(f"need {2 * CROP_TRIES + 2} uniforms, got {len(u)}")
    H, W = int(height), int(width)
    lo, hi = float(scale[0]), float(scale[1])
    log_lo, log_hi = math.log(float(ratio[0])), math.log(float(ratio[1]))
    area = float(H * W)
    for t in range(CROP_TRIES):
        s = lo + (hi - lo) * u[t]
        r = math.exp(log_lo + (log_hi - log_lo) * u[CROP_TRIES + t])
        w, h = round(math.sqrt(area * s * r)), round(math.sqrt(area * s / r))
        if 0 < w <= W and 0 < h <= H:
            top = min(math.floor(u[2 * CROP_TRIES] * (H - h + 1)), H - h)
            left = min(math.floor(u[2 * CROP_TRIES + 1] * (W - w + 1)), W - w)
            return top, left, h, w
    in_ratio = W / H
    if in_ratio < ratio[0]:
        fw, fh = float(W), W / ratio[0]
    elif in_ratio > ratio[1]:
        fw, fh = H * ratio[1], float(H)
    else:
        fw, fh = float(W), float(H)
    w, h = round(fw), round(fh)
    return (H - h) // 2, (W - w) // 2, h, w


def compose_crop(crop: Tensor, source_crop: Tensor | None) -> Tensor:
    """Express a crop of the input batch relative to the original image (input shows ``source_crop``)."""
    if source_crop is None:
        return crop
    s = source_crop.to(device=crop.device, dtype=crop.dtype)
    return torch.stack(
        (
            s[:, 0] + crop[:, 0] * s[:, 2],
            s[:, 1] + crop[:, 1] * s[:, 3],
            crop[:, 2] * s[:, 2],
            crop[:, 3] * s[:, 3],
        ),
        dim=1,
    )


def decompose_crop(crop: Tensor, source_crop: Tensor | None) -> Tensor:
    """Inverse of :func:`compose_crop`: crop of the original image -> crop of the input batch."""
    if source_crop is None:
        return crop
    s = source_crop.to(device=crop.device, dtype=crop.dtype)
    return torch.stack(
        (
            (crop[:, 0] - s[:, 0]) / s[:, 2],
            (crop[:, 1] - s[:, 1]) / s[:, 3],
            crop[:, 2] / s[:, 2],
            crop[:, 3] / s[:, 3],
        ),
        dim=1,
    )


def _sample(d: Draws) -> dict[str, Tensor]:
    crop = sample_crop(d.cfg, d.batch, generator=d.generator, device=d.device, input_size=d.input_size)
    return {"crop": compose_crop(crop, d.source_crop)}


def centres(p: ViewParams) -> Tensor:
    """(B, 2) crop centres ``(top + h/2, left + w/2)``."""
    c = p.crop.float()
    return torch.stack((c[:, 0] + c[:, 2] / 2, c[:, 1] + c[:, 3] / 2), dim=1)


def _relative(a: ViewParams, b: ViewParams, cfg_a: ViewConfig, cfg_b: ViewConfig) -> Tensor:
    ca, cb = centres(a), centres(b.to(a.device))
    fa = a.flip.to(ca.device)
    ca[:, 1] = torch.where(fa, 1 - ca[:, 1], ca[:, 1])
    cb[:, 1] = torch.where(fa, 1 - cb[:, 1], cb[:, 1])
    return torch.cat((ca - cb, a.crop[:, 2:].float() - b.crop[:, 2:].float().to(ca.device)), dim=1)


def _absolute(p: ViewParams, cfg: ViewConfig) -> Tensor:
    return torch.cat((centres(p), p.crop[:, 2:].float()), dim=1)


def _check(cfg: ViewConfig) -> None:
    if cfg.crop_scale[1] > 1.0:
        raise ValueError(f"crop_scale upper bound must be <= 1, got {cfg.crop_scale!r}")


def _describe(p: ViewParams, b: int) -> str:
    c = p.crop[b]
    return f"crop t{c[0]:.2f} l{c[1]:.2f} h{c[2]:.2f} w{c[3]:.2f}"


SPEC = AugmentationSpec(
    name="crop",
    config=(
        ConfigField(
            "crop_scale",
            tuple[float, float],
            (0.2, 1.0),
            "Area fraction range of the crop (AugSelf: (0.2, 1.0)).",
            "range",
        ),
        ConfigField(
            "crop_ratio", tuple[float, float], (3 / 4, 4 / 3), "Aspect-ratio range, log-uniform (torchvision).", "range"
        ),
    ),
    record=(
        RecordField(
            "crop",
            lambda n, dev: torch.tensor([0.0, 0.0, 1.0, 1.0], device=dev).repeat(n, 1),
            "(B, 4) float: [top, left, height, width] of the crop as fractions of the *original* image.",
        ),
    ),
    sample=_sample,
    off={"crop_scale": (1.0, 1.0), "crop_ratio": (1.0, 1.0)},
    first=True,
    targets=(Target("crop", 4, "regression", _relative, _absolute, dims=("d_cy", "d_cx", "d_h", "d_w")),),
    awareness=Awareness(
        strengths=(0.8, 0.5, 0.2),  # lower bound of the crop area fraction (AugSelf / SimCLR default 0.2)
        probe_strength=0.2,
        isolate=lambda s: {"crop_scale": (float(s), 1.0), "crop_ratio": (3 / 4, 4 / 3)},
        label="scale>={:g}",
        rank=0,
    ),
    describe=_describe,
    preview_line=0,
    validate=_check,
)
