"""Vectorised sampling of per-sample augmentation parameters (:class:`ViewParams`) for one view.

Distributions follow the SimCLR/AugSelf pipeline (Lee et al., NeurIPS 2021, App. A; reference §2.1):
RandomResizedCrop (area ~ U(scale), log-uniform ratio, torchvision's 10 tries + centre-crop fallback),
flip ~ Bern(p), colour jitter ~ Bern(p) with uniform factors and a random op order (per sample, or one per
batch with ``color_order: batch``), grayscale ~ Bern(p), blur ~ Bern(p) with sigma ~ U(blur_sigma), solarize ~
Bern(p) with threshold ~ U(solarize_threshold), rotation k ~ U{0..3}
with probability ``rotate_p``. Unapplied ops hold identity values (reference quirk Q2).

All randomness comes from the given ``torch.Generator`` (drawn on the generator's device, then moved), in a
fixed number of draws, so a seeded generator gives identical parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from augself.augment.config import ViewConfig
from augself.augment.params import ViewParams

CROP_TRIES = 10
"""Candidate boxes per sample, as torchvision's ``RandomResizedCrop.get_params``."""


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    draw_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=draw_device).to(device)


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
    u_area = _rand((batch, CROP_TRIES), generator, device)
    u_ratio = _rand((batch, CROP_TRIES), generator, device)
    u_pos = _rand((batch, 2), generator, device)
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


def sample_params(
    cfg: ViewConfig,
    batch: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    input_size: tuple[int, int] | None = None,
) -> ViewParams:
    """Sample one view's parameters for ``batch`` samples (see module docstring for the distributions).

    ``input_size`` (H, W) of the images the crop is applied to puts the crop on the pixel grid (recommended;
    :class:`~augself.augment.pipeline.Augmenter` passes it). ``crop`` is relative to that input.
    """
    device = torch.device(device)
    crop = sample_crop(cfg, batch, generator=generator, device=device, input_size=input_size)
    u = _rand((batch, 9), generator, device)
    u_factor = _rand((batch, 4), generator, device)
    u_order = _rand((batch, 4), generator, device)
    flip = u[:, 0] < cfg.flip_p
    jitter = u[:, 1] < cfg.jitter_p
    ranges = [cfg.factor_range(n) for n in ("brightness", "contrast", "saturation", "hue")]
    lo = torch.tensor([r[0] for r in ranges], device=device)
    hi = torch.tensor([r[1] for r in ranges], device=device)
    factors = lo + (hi - lo) * u_factor
    ident = torch.tensor([1.0, 1.0, 1.0, 0.0], device=device)
    color = torch.where(jitter.unsqueeze(1), factors, ident)
    order = torch.argsort(u_order, dim=1)
    if cfg.color_order == "batch":  # one permutation for the whole batch (kornia 0.4.1), same number of draws
        order = order[:1].expand(batch, 4).contiguous()
    gray = u[:, 2] < cfg.effective_gray_p
    blur = u[:, 3] < cfg.blur_p
    slo, shi = (float(v) for v in cfg.blur_sigma)
    sigma = torch.where(blur, slo + (shi - slo) * u[:, 4], torch.zeros_like(u[:, 4]))
    solarize = u[:, 5] < cfg.solarize_p
    tlo, thi = (float(v) for v in cfg.solarize_threshold)
    threshold = torch.where(solarize, tlo + (thi - tlo) * u[:, 6], torch.ones_like(u[:, 6]))
    rot_applied = u[:, 7] < cfg.rotate_p
    k = torch.floor(u[:, 8] * 4)
    rot = torch.where(rot_applied, k.long().clamp_(0, 3), torch.zeros_like(k, dtype=torch.long))
    return ViewParams(
        crop=crop,
        flip=flip,
        jitter=jitter,
        color=color,
        order=order,
        gray=gray,
        blur=blur,
        sigma=sigma,
        solarize=solarize,
        threshold=threshold,
        rot=rot,
    )
