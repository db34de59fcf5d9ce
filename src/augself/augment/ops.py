"""Batched functional image ops with per-sample parameters (no per-sample Python loops).

All ops take a float batch ``x`` of shape (B, C, H, W) with values in [0, 1], on any device, and per-sample
parameter tensors of shape (B,) (or (B, 4) for boxes). They reproduce the semantics of
``torchvision.transforms.v2.functional`` (the reference AugSelf pipeline, Lee et al., NeurIPS 2021, App. A,
uses torchvision-style brightness/contrast and kornia 0.4.1 hue, which follow the same formulas, and kornia's HSV
saturation, which does not: :func:`adjust_saturation_hsv`):

* :func:`crop_resize` == ``resized_crop(..., BILINEAR, antialias=False)`` for boxes on the pixel grid;
* :func:`adjust_brightness`/:func:`adjust_contrast`/:func:`adjust_saturation`/:func:`adjust_hue` and
  :func:`color_jitter` (per-sample random order), :func:`grayscale`, :func:`gaussian_blur` (reflect
  padding, odd kernel), :func:`solarize`, :func:`hflip`, :func:`rot90`, :func:`rotate` (any angle, bilinear,
  zero fill), :func:`normalize`;
* :func:`adjust_saturation_hsv`: the AugSelf reference's saturation (kornia 0.4.1 ``adjust_saturation``, an
  RGB -> HSV -> RGB round trip with ``s <- clamp(s * f, 0, 1)``), selected by ``saturation="hsv"`` in
  :func:`color_jitter`; :func:`adjust_saturation` is torchvision's blend toward the grayscale image.

Ops never loop over samples in Python: masked ops run once on the selected subset (index_select /
index_put_), per-sample parameters broadcast. All arithmetic is float32. On CPU the pipeline groups samples
by :func:`hue_slot` so that :func:`color_jitter_same_slot` runs every jitter step on whole chunks.

Learned (reparameterised) augmentations: :func:`rotate` and the colour ops are differentiable w.r.t. their
per-sample parameters; :func:`color_jitter` / :func:`color_jitter_same_slot` switch to an out-of-place path when
the factors (or the images) carry grad, and keep their in-place fast path otherwise.

Single-channel inputs: saturation, hue and grayscale are the identity on 1 channel (as in torchvision /
PIL); brightness, contrast, blur, solarize, flip and rotation act normally.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
"""ITU-R 601 luma weights as used by torchvision's ``rgb_to_grayscale``."""

IDENTITY_FACTORS = (1.0, 1.0, 1.0, 0.0)
"""Identity values of the colour factors [brightness, contrast, saturation, hue]."""


def _b(v: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1, 1) for broadcasting against an image batch."""
    return v.reshape(-1, 1, 1, 1)


def to_float(images: Tensor) -> Tensor:
    """uint8 (0..255) -> float32 (0..1); float inputs are cast to float32 (or kept if already float)."""
    if images.dtype == torch.uint8:
        return images.to(torch.float32).div_(255.0)
    if images.dtype in (torch.float16, torch.bfloat16, torch.float64):
        return images.to(torch.float32)
    return images


# ---- geometry -------------------------------------------------------------------------------------------
def _snap(v: Tensor, eps: float = 1e-3) -> Tensor:
    """Round values that are within ``eps`` of an integer (pixel boxes recorded as fractions i/H)."""
    r = torch.round(v)
    return torch.where((v - r).abs() < eps, r, v)


def _source_coords(start: Tensor, length: Tensor, out_size: int) -> Tensor:
    """Bilinear source coordinates (input pixels) for resizing ``[start, start+length)`` to ``out_size``.

    PyTorch's ``upsample_bilinear2d`` (``align_corners=False``) on the cropped region:
    ``src = (dst + 0.5) * length / out - 0.5`` clamped to ``[0, length - 1]`` in the crop's frame, so samples
    never read pixels outside the crop. Returns (B, out_size).
    """
    dst = torch.arange(out_size, device=start.device, dtype=torch.float32) + 0.5
    src = dst.unsqueeze(0) * (length / out_size).unsqueeze(1) - 0.5
    hi = (length - 1).clamp_min(0).unsqueeze(1)
    return start.unsqueeze(1) + torch.minimum(src.clamp_min(0), hi)


def crop_resize(x: Tensor, boxes: Tensor, size: int | tuple[int, int], flip: Tensor | None = None) -> Tensor:
    """Crop per-sample boxes and resize them bilinearly to ``size`` (torchvision ``resized_crop``).

    ``x`` is float in [0, 1] or uint8 (scaled to [0, 1]). ``boxes`` is (B, 4) ``[top, left, height, width]``
    as fractions of the input (H, W). For boxes on the integer pixel grid the result equals
    ``resized_crop(x[b], i, j, h, w, size, antialias=False)`` up to float rounding (about 1e-5). ``flip`` (B,)
    bool mirrors the selected outputs at no extra cost (the column coordinates are reversed). Implemented as
    one ``grid_sample`` on the exact per-sample source coordinates (separable grid), O(B*C*S*S) work.
    """
    B, _, H, W = x.shape
    oh, ow = (size, size) if isinstance(size, int) else size
    boxes = boxes.to(device=x.device, dtype=torch.float32)
    py = _source_coords(_snap(boxes[:, 0] * H), _snap(boxes[:, 2] * H), oh)
    px = _source_coords(_snap(boxes[:, 1] * W), _snap(boxes[:, 3] * W), ow)
    if flip is not None:
        px = torch.where(flip.to(x.device).view(B, 1), px.flip(1), px)
    # normalised coordinates for align_corners=False: g = (2 * pos + 1) / size - 1
    gy = (2.0 * py + 1.0) / H - 1.0
    gx = (2.0 * px + 1.0) / W - 1.0
    grid = torch.stack((gx.unsqueeze(1).expand(B, oh, ow), gy.unsqueeze(2).expand(B, oh, ow)), dim=-1)
    src = x.to(torch.float32)
    out = torch.nn.functional.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.mul_(1.0 / 255.0) if x.dtype == torch.uint8 else out


def hflip(x: Tensor, mask: Tensor) -> Tensor:
    """Mirror the samples where ``mask`` (B,) is true."""
    return torch.where(_b(mask.to(x.device)), x.flip(-1), x)


def rot90(x: Tensor, k: Tensor) -> Tensor:
    """Rotate sample b by ``k[b]`` counter-clockwise quarter turns (``torch.rot90`` on dims (-2, -1)).

    Vectorised per group of equal k (at most three groups); requires square images when any k is odd.
    """
    k = k.to(x.device).remainder(4)
    out = None
    for kk in (1, 2, 3):
        idx = (k == kk).nonzero().squeeze(1)
        if idx.numel() == 0:
            continue
        if kk % 2 == 1 and x.shape[-1] != x.shape[-2]:
            raise ValueError(f"odd quarter turns need square images, got {tuple(x.shape[-2:])}")
        out = x.clone() if out is None else out
        out.index_copy_(0, idx, torch.rot90(x.index_select(0, idx), kk, dims=(-2, -1)))
    return x if out is None else out


def rotate(x: Tensor, angle: Tensor) -> Tensor:
    """Rotate sample b counter-clockwise by ``angle[b]`` radians about the image centre; bilinear, zero fill.

    ``torchvision.transforms.v2.functional.rotate(x[b], degrees(angle[b]), BILINEAR)`` with its default
    ``fill=None`` (plain zero padding, as InstaAug's ``affine_grid`` + ``grid_sample`` rotation,
    NingMiao/InstaAug ``augmentation_ConvFeature.py`` lines 461-469 with ``Generators.r`` of ``math_op.py``
    lines 46-55). torchvision's ``fill=0`` differs at the border: it multiplies the bilinear result by the
    sampled in-image mask once more. Output pixel (i, j) reads the input at the centred pixel offset
    ``R(-angle) (j - (W-1)/2, i - (H-1)/2)`` (rotation in pixel units, so non-square images are not sheared),
    one ``grid_sample`` over the batch. Differentiable with respect to ``x`` and ``angle`` (a grad-carrying
    angle gets its gradient through the sampling grid). ``angle`` 0 reproduces the image only up to float
    rounding of the grid (about 1e-7 relative); callers that need the exact identity there select the samples
    (:mod:`augself.augment.specs.angle`).
    """
    B, _, H, W = x.shape
    angle = angle.to(device=x.device, dtype=x.dtype).reshape(B, 1, 1)
    dy = (torch.arange(H, device=x.device, dtype=x.dtype) - (H - 1) / 2).view(1, H, 1)
    dx = (torch.arange(W, device=x.device, dtype=x.dtype) - (W - 1) / 2).view(1, 1, W)
    c, s = torch.cos(angle), torch.sin(angle)
    # counter-clockwise on screen (rows grow downwards): source = (c dx - s dy, s dx + c dy); normalised for
    # align_corners=False, g = (2 * (centre + offset) + 1) / size - 1 = 2 * offset / size
    gx = (c * dx - s * dy) * (2.0 / W)
    gy = (s * dx + c * dy) * (2.0 / H)
    grid = torch.stack((gx, gy), dim=-1)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# ---- colour -------------------------------------------------------------------------------------------
def rgb_to_gray(x: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma with torchvision's weights; 1-channel input is returned as is."""
    if x.shape[1] == 1:
        return x
    B, _, H, W = x.shape
    w = torch.tensor(GRAY_WEIGHTS, device=x.device, dtype=x.dtype).view(1, 1, 3)
    return torch.matmul(w, x.reshape(B, 3, H * W)).view(B, 1, H, W)  # one pass (BLAS), no temporaries


def _blend(a: Tensor, b: Tensor, f: Tensor) -> Tensor:
    """``clamp(f * a + (1 - f) * b, 0, 1)`` with per-sample f (torchvision ``_blend``)."""
    f = _b(f.to(a.dtype))
    return torch.addcmul(b * (1.0 - f), a, f).clamp_(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    """Multiplicative brightness ``clamp(f * x, 0, 1)`` (the AugSelf override of kornia's additive one)."""
    return (x * _b(factor)).clamp_(0.0, 1.0)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Blend toward the per-image mean of the grayscale image (torchvision semantics)."""
    mean = rgb_to_gray(x).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(x, mean, factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Blend toward the grayscale image; identity on 1-channel input."""
    if x.shape[1] == 1:
        return x
    return _blend(x, rgb_to_gray(x), factor)


def adjust_saturation_hsv(x: Tensor, factor: Tensor) -> Tensor:
    """HSV saturation scaling ``s <- clamp(s * f, 0, 1)`` with hue and value kept; identity on 1 channel.

    The AugSelf reference's saturation: its ``ColorJitter`` (``transforms.py`` line 48) calls kornia 0.4.1's
    ``apply_adjust_saturation`` (``augmentation/functional/functional.py`` lines 738-758), i.e. ``rgb_to_hsv``
    -> ``adjust_saturation_raw`` (``enhance/adjust.py`` line 61: ``clamp(s * f, 0, 1)``) -> ``hsv_to_rgb``.
    In HSV every channel is ``v * (1 - s * a_c)`` with ``a_c`` a function of the hue only, so the round trip
    is, per pixel with ``M``/``m`` the max/min channel and ``d = M - m``: ``out = M + g * (x - M)`` with
    ``g = min(f, M / d)`` (``M / d = 1 / s`` is where ``s * f`` reaches 1). Gray pixels (d = 0) are unchanged
    and no clamp is needed (the new minimum ``M - g * d`` is >= 0). Five elementwise passes, no HSV detour.
    """
    if x.shape[1] == 1:
        return x
    r, g_, b = x.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g_), b).unsqueeze(1)
    minc = torch.minimum(torch.minimum(r, g_), b).unsqueeze(1)
    g = torch.minimum(torch.div(maxc, (maxc - minc).clamp_min_(1e-12)), _b(factor.to(x.dtype)))
    return torch.addcmul(maxc, x - maxc, g)


def adjust_hue(x: Tensor, factor: Tensor) -> Tensor:
    """Rotate the hue by ``factor`` (fraction of a full turn, in [-0.5, 0.5]); identity on 1 channel.

    Same result as torchvision's RGB -> HSV -> RGB round trip (up to float rounding, about 1e-6), computed
    with a few fast elementwise ops and no ``where``/``remainder`` (both slow on CPU): with ``m``/``M`` the
    min/max channel, ``d = M - m`` and ``u = 6 * hue`` in [0, 6), the output is ``m + d * pure(u)`` where
    ``pure`` is the fully saturated colour of that hue, R = clamp(|u-3|, 1, 2) - 1 and
    G, B = 1 - (clamp(|u-o|, 1, 2) - 1) with o = 2, 4.
    """
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    minc = torch.minimum(torch.minimum(r, g), b)
    delta = maxc - minc
    # 6 * hue * delta with torchvision's priority r > g > b for ties of the maximum, via 0/1 float masks
    # (not_r = 1 where r is not the maximum, not_g likewise): h = A + not_r * (Bv - A + not_g * (Cv - Bv))
    # with A = g - b, Bv = b - r + 2 delta, Cv = r - g + 4 delta.
    not_r = torch.sub(maxc, r).sign_()
    not_g = torch.sub(maxc, g).sign_()
    a = g - b
    bv = torch.sub(b, r).add_(delta, alpha=2.0)
    h = torch.sub(r, g).add_(delta, alpha=4.0).sub_(bv).mul_(not_g).add_(bv).sub_(a).mul_(not_r).add_(a)
    h.div_(delta.clamp_min(1e-12)).add_(factor.to(h).view(-1, 1, 1) * 6.0)
    # wrap to [0, 6): u = h - 6 floor(h / 6) (the colour function is continuous and 6-periodic)
    h.sub_(torch.mul(h, 1.0 / 6.0).floor_().mul_(6.0))
    t = torch.sub(h.unsqueeze(1), _HUE_OFFSETS.to(h)).abs_().clamp_(1.0, 2.0).sub_(1.0)
    if t.requires_grad:  # autograd: the same two addcmul, without out= (which autograd does not support)
        first = torch.addcmul(minc, delta, t[:, 0]).unsqueeze(1)
        return torch.cat((first, torch.addcmul(maxc.unsqueeze(1), delta.unsqueeze(1), t[:, 1:], value=-1.0)), dim=1)
    out = torch.empty_like(x)
    torch.addcmul(minc, delta, t[:, 0], out=out[:, 0])
    torch.addcmul(maxc.unsqueeze(1), delta.unsqueeze(1), t[:, 1:], value=-1.0, out=out[:, 1:])
    return out


_HUE_OFFSETS = torch.tensor([3.0, 2.0, 4.0]).view(1, 3, 1, 1)


COLOR_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
"""Colour ops indexed as in :attr:`ViewParams.color_perm` (0=brightness, 1=contrast, 2=saturation, 3=hue)."""


def _apply_where(x: Tensor, mask: Tensor, fn: Callable[..., Tensor], *args: Tensor, inplace: bool = False) -> Tensor:
    """Apply ``fn`` only to the samples selected by ``mask`` (batched index_select / index_put_).

    With ``inplace`` the result is written into ``x`` (the caller owns it); otherwise ``x`` is untouched.
    """
    idx = mask.nonzero().squeeze(1)
    if idx.numel() == 0:
        return x
    if idx.numel() == x.shape[0]:
        return fn(x, *args)
    sub = fn(x.index_select(0, idx), *(a.index_select(0, idx) for a in args))
    out = x if inplace else x.clone()
    return out.index_put_((idx,), sub)  # index_put_ is ~2x faster than index_copy_ on CPU


def _blend_op(x: Tensor, factor: Tensor, op: Tensor) -> Tensor:
    """Per sample brightness (op 0), contrast (1) or saturation (2), all as one blend ``f*x + (1-f)*t``,
    written into ``x`` (the caller owns it).

    The target t is 0 (brightness: exactly ``f * x``), the mean of the grayscale image (contrast) or the
    grayscale image (saturation); selected with 0/1 per-sample weights (exact, no ``where``).
    """
    f = factor.to(x.dtype)
    g = 1.0 - f
    w_sat = _b((op == 2).to(x.dtype) * g)  # (1 - f) where saturation, else 0 (exact)
    w_con = _b((op == 1).to(x.dtype) * g)
    gray = rgb_to_gray(x)
    target = gray.mean(dim=(-3, -2, -1), keepdim=True).mul_(w_con)
    if x.shape[1] > 1:  # saturation is the identity on one channel (and gray is x itself there)
        target = gray.mul_(w_sat).add_(target)
    return x.mul_(_b(f)).add_(target).clamp_(0.0, 1.0)


SATURATION_MODES = ("blend", "hsv")
"""``blend``: torchvision's blend toward the grayscale image (:func:`adjust_saturation`); ``hsv``: the AugSelf
reference's kornia 0.4.1 HSV scaling (:func:`adjust_saturation_hsv`)."""


def _check_saturation(saturation: str) -> None:
    if saturation not in SATURATION_MODES:
        raise ValueError(f"unknown saturation mode {saturation!r}; valid: {', '.join(SATURATION_MODES)}")


def color_jitter(
    x: Tensor, factors: Tensor, order: Tensor, apply: Tensor, inplace: bool = False, saturation: str = "blend"
) -> Tensor:
    """Colour jitter with per-sample factors (B, 4) and per-sample op order (B, 4).

    At each of the four positions every sample runs the op that ``order[:, pos]`` selects (torchvision's
    ``ColorJitter`` with a per-sample permutation), as batched calls on the selected subsets:
    brightness-contrast-or-saturation (all three are blends, sharing one grayscale pass), HSV saturation (with
    ``saturation="hsv"``, which takes saturation out of the blend) and hue. Ops whose factor equals the
    identity are skipped, as torchvision skips ops with a zero range. Samples with ``apply`` false are
    untouched. ``inplace`` allows overwriting ``x``. Grad-carrying ``factors`` (or ``x``) take an out-of-place,
    differentiable path (:func:`_color_jitter_autograd`; ``inplace`` is then ignored).
    """
    _check_saturation(saturation)
    if torch.is_grad_enabled() and (factors.requires_grad or x.requires_grad):
        return _color_jitter_autograd(x, factors, order, apply, saturation)
    hsv = saturation == "hsv"
    factors = factors.to(device=x.device, dtype=torch.float32)
    order = order.to(x.device)
    ident = torch.tensor(IDENTITY_FACTORS, device=x.device)
    active = apply.to(x.device).unsqueeze(1) & (factors != ident)  # (B, 4) per op
    if x.shape[1] == 1:  # saturation and hue are the identity on one channel
        active[:, 2:] = False
    if not bool(active.any()):
        return x
    if not inplace:
        x = x.clone()
    for pos in range(4):
        op = order[:, pos : pos + 1]
        sel = active.gather(1, op).squeeze(1)
        f = factors.gather(1, op).squeeze(1)
        op = op.squeeze(1)
        x = _apply_where(x, sel & ((op < 2) if hsv else (op != 3)), _blend_op, f, op, inplace=True)
        if hsv:
            x = _apply_where(x, sel & (op == 2), adjust_saturation_hsv, f, inplace=True)
        x = _apply_where(x, sel & (op == 3), adjust_hue, f, inplace=True)
    return x


def _color_jitter_autograd(x: Tensor, factors: Tensor, order: Tensor, apply: Tensor, saturation: str) -> Tensor:
    """:func:`color_jitter` for grad-carrying factors or images (a learned colour sampler, reparameterised as
    InstaAug's colour family, NingMiao/InstaAug ``distribution.py`` lines 361-396): out of place, in ``x``'s
    dtype, each op on its subset through :func:`adjust_brightness` ... :func:`adjust_hue` and gathered back with
    an out-of-place ``index_put``. Ops at their identity factor still run (exactly or up to float rounding the
    identity), so their derivative there is kept; the values equal the fast path's up to float rounding."""
    fns = (
        adjust_brightness,
        adjust_contrast,
        adjust_saturation_hsv if saturation == "hsv" else adjust_saturation,
        adjust_hue,
    )
    factors = factors.to(device=x.device, dtype=x.dtype)
    order = order.to(x.device)
    apply = apply.to(x.device)
    for pos in range(4):
        op = order[:, pos]
        f = factors.gather(1, op.unsqueeze(1)).squeeze(1)
        for k, fn in enumerate(fns):
            if k >= 2 and x.shape[1] == 1:  # saturation and hue are the identity on one channel
                continue
            idx = (apply & (op == k)).nonzero().squeeze(1)
            if idx.numel() == x.shape[0]:
                x = fn(x, f)
            elif idx.numel():
                x = x.index_put((idx,), fn(x.index_select(0, idx), f.index_select(0, idx)))
    return x


def hue_slot(factors: Tensor, order: Tensor, apply: Tensor, channels: int) -> Tensor:
    """(B,) position (0-3) at which each sample's jitter rotates the hue; 4 when jitter is applied without
    an active hue step (zero shift or one channel), 5 when jitter is not applied (see :func:`color_jitter`)."""
    hue_active = apply & (factors[:, 3] != 0) & (channels > 1)
    pos = (order == 3).to(torch.long).argmax(dim=1)
    return torch.where(hue_active, pos, torch.where(apply, 4, 5))


def color_jitter_same_slot(x: Tensor, factors: Tensor, order: Tensor, slot: int, saturation: str = "blend") -> Tensor:
    """:func:`color_jitter` for a batch whose samples all share ``hue_slot`` ``slot`` < 5 (jitter applied),
    written into ``x``: no subsets to gather or scatter. At the hue position every sample rotates its hue;
    at the other three every sample runs its brightness, contrast or saturation blend, with factor 1 (the
    exact identity) where that op is inactive (hue at a non-hue slot, saturation on one channel). With
    ``saturation="hsv"`` the samples whose op is saturation run :func:`adjust_saturation_hsv` instead (on their
    subset; the whole chunk when the colour-op order is drawn per batch)."""
    _check_saturation(saturation)
    if torch.is_grad_enabled() and (factors.requires_grad or x.requires_grad):  # every sample is jittered here
        applied = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        return _color_jitter_autograd(x, factors, order, applied, saturation)
    hsv = saturation == "hsv" and x.shape[1] > 1
    factors = factors.to(device=x.device, dtype=torch.float32)
    order = order.to(x.device)
    for pos in range(4):
        if pos == slot:
            x = adjust_hue(x, factors[:, 3])
            continue
        op = order[:, pos]
        f = factors.gather(1, op.unsqueeze(1)).squeeze(1)
        sat = op == 2
        idle = (op == 3) | (sat & (hsv or x.shape[1] == 1))
        if not bool(idle.all()):
            x = _blend_op(x, torch.where(idle, 1.0, f), op)
        if hsv:
            x = _apply_where(x, sat & (f != 1.0), adjust_saturation_hsv, f, inplace=True)
    return x


def _gray3(x: Tensor) -> Tensor:
    return rgb_to_gray(x).expand_as(x).contiguous()


def grayscale(x: Tensor, mask: Tensor, inplace: bool = False) -> Tensor:
    """Replace the samples where ``mask`` is true by their luma (keeping C channels); identity for C=1."""
    if x.shape[1] == 1:
        return x
    return _apply_where(x, mask.to(x.device), _gray3, inplace=inplace)


def gaussian_kernel1d(sigma: Tensor, kernel_size: int) -> Tensor:
    """(B,) sigmas -> (B, k) normalised Gaussian taps ``exp(-d^2 / (2 sigma^2))`` (torchvision's kernel)."""
    r = (kernel_size - 1) / 2
    d = torch.arange(kernel_size, device=sigma.device, dtype=torch.float32) - r
    logits = -(d.unsqueeze(0) / sigma.to(torch.float32).clamp_min(1e-6).unsqueeze(1)).pow(2) / 2
    return torch.softmax(logits, dim=1)


def _blur_all(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Separable blur of every sample: reflect pad, then two depthwise convolutions (one group per image
    channel, so each sample gets its own kernel)."""
    B, C, H, W = x.shape
    k = gaussian_kernel1d(sigma, kernel_size).to(x.dtype).repeat_interleave(C, dim=0)  # (B*C, k)
    r = kernel_size // 2
    xp = torch.nn.functional.pad(x, (r, r, r, r), mode="reflect").reshape(1, B * C, H + 2 * r, W + 2 * r)
    y = torch.nn.functional.conv2d(xp, k.view(B * C, 1, kernel_size, 1), groups=B * C)
    y = torch.nn.functional.conv2d(y, k.view(B * C, 1, 1, kernel_size), groups=B * C)
    return y.view(B, C, H, W)


def gaussian_blur(
    x: Tensor, sigma: Tensor, kernel_size: int, mask: Tensor | None = None, inplace: bool = False
) -> Tensor:
    """Separable Gaussian blur with per-sample ``sigma`` (B,), odd ``kernel_size``, reflect padding.

    Only samples with ``mask`` (default ``sigma > 0``) are blurred. The kernel is shrunk to the largest odd
    size that reflect padding allows when the image is smaller than the kernel (documented deviation).
    """
    if kernel_size % 2 == 0 or kernel_size < 1:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    H, W = x.shape[-2:]
    max_k = 2 * (min(H, W) - 1) + 1
    kernel_size = min(kernel_size, max_k)
    sigma = sigma.to(x.device)
    if mask is None:
        mask = sigma > 0
    if kernel_size < 3:
        return x
    return _apply_where(x, mask.to(x.device), lambda xs, s: _blur_all(xs, s, kernel_size), sigma, inplace=inplace)


def solarize(x: Tensor, threshold: Tensor, mask: Tensor) -> Tensor:
    """``x >= t -> 1 - x`` with per-sample threshold, only where ``mask`` is true."""
    mask = mask.to(x.device)
    if not bool(mask.any()):
        return x
    t = _b(threshold.to(device=x.device, dtype=x.dtype))
    hit = (x >= t) & _b(mask)
    return torch.where(hit, 1.0 - x, x)


def normalize(
    x: Tensor, mean: Sequence[float], std: Sequence[float], inplace: bool = False, out: Tensor | None = None
) -> Tensor:
    """``(x - mean) / std`` per channel (written into ``out`` when given, else into ``x`` when ``inplace``).

    ``mean``/``std`` of length C are used as is, length 1 is broadcast; a 3-entry setting applied to a
    1-channel batch uses the average of the three entries (documented convention).
    """
    C = x.shape[1]
    if len(mean) != len(std):
        raise ValueError("mean and std must have the same length")
    if len(mean) == C or len(mean) == 1:
        m, s = list(mean), list(std)
    elif C == 1:
        m, s = [sum(mean) / len(mean)], [sum(std) / len(std)]
    else:
        raise ValueError(f"normalisation has {len(mean)} channels but the images have {C}")
    mt = torch.tensor(m, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    st = torch.tensor(s, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    if out is not None:
        return torch.sub(x, mt, out=out).div_(st)
    return x.sub_(mt).div_(st) if inplace else (x - mt) / st
