"""Batched ops vs torchvision.transforms.v2.functional applied one sample at a time."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from augself.augment import ops

B = 6


def _images(c: int = 3, h: int = 23, w: int = 19, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, c, h, w, generator=g)
    x[0] = 0.5  # constant image (hue/saturation edge case)
    x[1, :, :3] = 1.0  # saturated pixels (clamp / solarize edge)
    return x


def _per_sample(fn, x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
    return torch.stack([fn(x[b], *(float(p[b]) for p in params)) for b in range(x.shape[0])])


def _int_boxes(h: int, w: int, n: int, seed: int) -> tuple[torch.Tensor, list[tuple[int, int, int, int]]]:
    g = torch.Generator().manual_seed(seed)
    pix = []
    for _ in range(n):
        bh = int(torch.randint(1, h + 1, (1,), generator=g))
        bw = int(torch.randint(1, w + 1, (1,), generator=g))
        i = int(torch.randint(0, h - bh + 1, (1,), generator=g))
        j = int(torch.randint(0, w - bw + 1, (1,), generator=g))
        pix.append((i, j, bh, bw))
    frac = torch.tensor([[i / h, j / w, bh / h, bw / w] for i, j, bh, bw in pix])
    return frac, pix


@pytest.mark.parametrize("out", [(17, 17), (40, 31), (5, 9)])
@pytest.mark.parametrize("c", [1, 3])
def test_crop_resize_matches_torchvision(out: tuple[int, int], c: int) -> None:
    """atol: float32 source coordinates up to 37 px are rounded to 37 eps and a bilinear tap moves by at most
    1 per px on [0, 1] values, plus 4 taps' roundings: 2 (37 + 8) eps ~ 1e-5."""
    x = _images(c, 37, 29)
    frac, pix = _int_boxes(37, 29, B, seed=out[0] + c)
    frac[0] = torch.tensor([0.0, 0.0, 1.0, 1.0])
    pix[0] = (0, 0, 37, 29)
    got = ops.crop_resize(x, frac, out)
    for b, (i, j, h, w) in enumerate(pix):
        ref = TF.resized_crop(x[b], i, j, h, w, list(out), antialias=False)
        torch.testing.assert_close(got[b], ref, atol=1e-5, rtol=0)


def test_hflip_by_mask() -> None:
    x = _images()
    m = torch.tensor([True, False, True, False, False, True])
    got = ops.hflip(x, m)
    for b in range(B):
        ref = TF.horizontal_flip(x[b]) if m[b] else x[b]
        assert torch.equal(got[b], ref)


@pytest.mark.parametrize(
    ("op", "ref", "lo", "hi"),
    [
        (ops.adjust_brightness, TF.adjust_brightness, 0.0, 2.0),
        (ops.adjust_contrast, TF.adjust_contrast, 0.0, 2.0),
        (ops.adjust_saturation, TF.adjust_saturation, 0.0, 2.0),
        (ops.adjust_hue, TF.adjust_hue, -0.5, 0.5),
    ],
)
@pytest.mark.parametrize("c", [1, 3])
def test_color_ops_match_torchvision(op, ref, lo: float, hi: float, c: int) -> None:
    """atol 2e-5 (~170 float32 eps on [0, 1]): hue's rgb -> hsv -> rgb round trip divides by the chroma, which
    amplifies the other formula's few roundings; brightness/contrast/saturation need far less."""
    x = _images(c)
    f = torch.linspace(lo, hi, B)
    got = op(x, f)
    torch.testing.assert_close(got, _per_sample(ref, x, f), atol=2e-5, rtol=0)


def test_single_channel_colour_identity() -> None:
    x = _images(1)
    f = torch.full((B,), 1.7)
    assert torch.equal(ops.adjust_saturation(x, f), x)
    assert torch.equal(ops.adjust_hue(x, f * 0.1), x)
    assert torch.equal(ops.grayscale(x, torch.ones(B, dtype=torch.bool)), x)
    assert not torch.equal(ops.adjust_brightness(x, f), x)


def test_grayscale_by_mask_keeps_channels() -> None:
    """atol 1e-6 (8 float32 eps on [0, 1]): a 3-term weighted sum and a clamp, at most 4 roundings each way."""
    x = _images()
    m = torch.tensor([True, True, False, False, True, False])
    got = ops.grayscale(x, m)
    assert got.shape == x.shape
    for b in range(B):
        want = TF.rgb_to_grayscale(x[b], num_output_channels=3) if m[b] else x[b]
        torch.testing.assert_close(got[b], want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("k", [3, 9, 11])
def test_gaussian_blur_per_sample_sigma(k: int) -> None:
    """atol: two separable passes of k taps on [0, 1] values, each tap's normalised weight and product rounded
    (in whatever order either implementation sums): 4 k float32 eps."""
    x = _images(3, 21, 18)
    sigma = torch.tensor([0.1, 0.5, 1.0, 0.0, 2.0, 3.3])
    got = ops.gaussian_blur(x, sigma, k)
    for b in range(B):
        want = TF.gaussian_blur(x[b], [k, k], [float(sigma[b])] * 2) if sigma[b] > 0 else x[b]
        torch.testing.assert_close(got[b], want, atol=4 * k * torch.finfo(torch.float32).eps, rtol=0)


def test_gaussian_blur_small_image_shrinks_kernel() -> None:
    """atol as above for the shrunk 7-tap kernel: 4 * 7 float32 eps."""
    x = _images(3, 4, 5)
    got = ops.gaussian_blur(x, torch.full((B,), 1.0), 9)
    want = torch.stack([TF.gaussian_blur(x[b], [7, 7], [1.0, 1.0]) for b in range(B)])
    torch.testing.assert_close(got, want, atol=4 * 7 * torch.finfo(torch.float32).eps, rtol=0)


def test_solarize_by_mask() -> None:
    x = _images()
    t = torch.tensor([0.0, 0.3, 0.5, 1.0, 0.7, 0.9])
    m = torch.tensor([True, True, False, True, True, True])
    got = ops.solarize(x, t, m)
    for b in range(B):
        want = TF.solarize(x[b], float(t[b])) if m[b] else x[b]
        assert torch.equal(got[b], want)


def test_rot90_groups() -> None:
    x = _images(3, 13, 13)
    k = torch.tensor([0, 1, 2, 3, 1, 3])
    got = ops.rot90(x, k)
    for b in range(B):
        assert torch.equal(got[b], TF.rotate(x[b], 90.0 * int(k[b])))
    with pytest.raises(ValueError, match="square"):
        ops.rot90(_images(3, 13, 12), k)


def test_color_jitter_follows_per_sample_order() -> None:
    x = _images()
    g = torch.Generator().manual_seed(3)
    factors = torch.stack(
        [
            0.6 + 0.8 * torch.rand(B, generator=g),
            0.6 + 0.8 * torch.rand(B, generator=g),
            0.6 + 0.8 * torch.rand(B, generator=g),
            -0.1 + 0.2 * torch.rand(B, generator=g),
        ],
        dim=1,
    )
    order = torch.argsort(torch.rand(B, 4, generator=g), dim=1)
    apply = torch.tensor([True, True, True, False, True, True])
    got = ops.color_jitter(x, factors, order, apply)
    fns = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for b in range(B):
        want = x[b]
        if apply[b]:
            for op in order[b].tolist():
                want = fns[op](want, float(factors[b, op]))
        torch.testing.assert_close(got[b], want, atol=5e-5, rtol=0)
    # a different order gives a different image (the order is really used)
    other = ops.color_jitter(x, factors, order.flip(1), apply)
    assert (other - got).abs().max() > 1e-3


def test_normalize_channels() -> None:
    x = _images()
    got = ops.normalize(x, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    for b in range(B):
        torch.testing.assert_close(got[b], TF.normalize(x[b], [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]))
    one = ops.normalize(_images(1), (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    torch.testing.assert_close(one, (_images(1) - 0.5) / 0.25)
    with pytest.raises(ValueError):
        ops.normalize(x, (0.5, 0.5), (0.2, 0.2))


def test_crop_resize_uint8_and_folded_flip() -> None:
    x = _images(3, 37, 29)
    xu = (x * 255).round().to(torch.uint8)
    frac, _ = _int_boxes(37, 29, B, seed=9)
    flip = torch.tensor([True, False, True, True, False, False])
    got = ops.crop_resize(xu, frac, 17, flip=flip)
    want = ops.hflip(ops.crop_resize(xu.float() / 255.0, frac, 17), flip)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
