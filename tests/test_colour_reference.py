"""Issue 12 Sec. 1: the AugSelf reference's colour jitter (its ``ColorJitter`` over kornia 0.4.1) op by op.

Reference: hankook/AugSelf ``transforms.py`` (commit c131db6) lines 30-56 and kornia v0.4.1
(``augmentation/functional/functional.py`` 692-782, ``enhance/adjust.py`` 33-139, ``color/hsv.py``,
``color/gray.py`` line 60, ``augmentation/random_generator/random_generator.py`` 37-77). Every expected value here
is computed naively (per pixel, float64, :mod:`colorsys`), independently of ``augself.augment.ops``.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import pytest
import torch

from augself.augment import AugmentConfig, Augmenter, ViewConfig, ops, sample_params
from augself.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _pixels(n: int = 6, size: int = 7, seed: int = 0) -> torch.Tensor:
    """Random images plus the edge cases: black, white, gray, fully saturated and one-channel-zero pixels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    x[0, :, 0, :] = 0.0  # black
    x[0, :, 1, :] = 1.0  # white
    x[0, :, 2, :] = 0.37  # gray
    x[1, 0, :, :2] = 1.0  # saturated red-ish
    x[1, 1:, :, :2] = 0.0
    x[2, 2] = 0.0  # no blue
    return x


def _naive(x: torch.Tensor, fn) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Apply ``fn(r, g, b) -> (r, g, b)`` to every pixel of a (3, H, W) image in float64."""
    out = torch.empty_like(x, dtype=torch.float64)
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            out[:, i, j] = torch.tensor(fn(*x[:, i, j].double().tolist()), dtype=torch.float64)
    return out


def hsv_saturation(f: float):  # type: ignore[no-untyped-def]
    def fn(r: float, g: float, b: float) -> tuple[float, float, float]:
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        return colorsys.hsv_to_rgb(h, min(max(s * f, 0.0), 1.0), v)

    return fn


def hsv_hue(f: float):  # type: ignore[no-untyped-def]
    def fn(r: float, g: float, b: float) -> tuple[float, float, float]:
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        return colorsys.hsv_to_rgb((h + f) % 1.0, s, v)

    return fn


# float32 arithmetic on values in [0, 1]: a few ulps of 1 per op
TOL = 1e-6


@pytest.mark.parametrize("factor", [0.0, 0.2, 0.6, 1.0, 1.4, 1.8, 5.0])
def test_hsv_saturation_equals_naive_hsv_round_trip(factor: float) -> None:
    """kornia 0.4.1 saturation: RGB -> HSV, s <- clamp(s * f, 0, 1) (adjust.py line 61), HSV -> RGB."""
    x = _pixels()
    got = ops.adjust_saturation_hsv(x, torch.full((x.shape[0],), factor))
    for b in range(x.shape[0]):
        torch.testing.assert_close(got[b].double(), _naive(x[b], hsv_saturation(factor)), atol=TOL, rtol=0)


def test_hsv_saturation_per_sample_factor_and_one_channel() -> None:
    x = _pixels()
    f = torch.tensor([0.6, 1.4, 0.9, 1.2, 0.0, 2.0])
    got = ops.adjust_saturation_hsv(x, f)
    for b in range(x.shape[0]):
        torch.testing.assert_close(got[b].double(), _naive(x[b], hsv_saturation(float(f[b]))), atol=TOL, rtol=0)
    one = x[:, :1]
    assert torch.equal(ops.adjust_saturation_hsv(one, f), one)


def test_hsv_and_blend_saturation_differ() -> None:
    """The deviation the option removes: torchvision's blend toward gray is not the HSV scaling (random pixels,
    factors ~ U[0.6, 1.4] as ColorJitter(0.4, 0.4, 0.4, 0.1) draws them)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(20000, 3, 1, 1, generator=g)
    f = 0.6 + 0.8 * torch.rand(20000, generator=g)
    d = (ops.adjust_saturation_hsv(x, f) - ops.adjust_saturation(x, f)).abs()
    assert 0.03 < float(d.mean()) < 0.06 and float(d.max()) > 0.2  # measured: mean 0.043, max 0.26


@pytest.mark.parametrize("factor", [-0.1, -0.03, 0.0, 0.07, 0.1, 0.5])
def test_hue_equals_naive_hsv_rotation(factor: float) -> None:
    """kornia 0.4.1 hue (the reference keeps it): h <- fmod(h + 2 pi f, 2 pi) in HSV (adjust.py 115-116 and
    functional.py line 780); its hsv_to_rgb wraps negative hues (hsv.py 61-62), i.e. a rotation by f turns."""
    x = _pixels()
    got = ops.adjust_hue(x, torch.full((x.shape[0],), factor))
    for b in range(x.shape[0]):
        torch.testing.assert_close(got[b].double(), _naive(x[b], hsv_hue(factor)), atol=2e-6, rtol=0)


def test_brightness_and_contrast_equal_the_reference_overrides() -> None:
    """The reference replaces kornia's additive brightness / plain-multiply contrast (adjust.py 212, 243) with
    ``clamp(f * x)`` and ``clamp(f * x + (1 - f) * mean(0.2989 r + 0.587 g + 0.114 b))`` (transforms.py 30-40)."""
    x = _pixels()
    f = torch.tensor([0.6, 1.4, 0.0, 1.0, 2.0, 0.8])
    for b in range(x.shape[0]):
        xb, fb = x[b].double(), float(f[b])
        torch.testing.assert_close(ops.adjust_brightness(x, f)[b].double(), (fb * xb).clamp(0, 1), atol=TOL, rtol=0)
        mean = (0.2989 * xb[0] + 0.587 * xb[1] + 0.114 * xb[2]).mean()
        want = (fb * xb + (1 - fb) * mean).clamp(0, 1)
        torch.testing.assert_close(ops.adjust_contrast(x, f)[b].double(), want, atol=TOL, rtol=0)


def test_grayscale_weights_differ_from_kornia_by_at_most_1e4() -> None:
    """Kept deviation: kornia 0.4.1's RandomGrayscale uses 0.299 for red (color/gray.py line 60), ours
    torchvision's 0.2989 (as the reference's own contrast, transforms.py line 38): at most 1e-4 of the range,
    below one 8-bit level."""
    x = _pixels()
    got = ops.grayscale(x, torch.ones(x.shape[0], dtype=torch.bool))
    kornia = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    d = (got - kornia).abs()
    assert float(d.max()) <= 1e-4 + 1e-6 and float(d.max()) > 5e-5  # 1e-4 * red, plus float32 rounding


@pytest.mark.parametrize("order", ["sample", "batch"])
def test_jitter_with_hsv_saturation_follows_the_recorded_order(order: str) -> None:
    """Full jitter (brightness, contrast, HSV saturation, hue in the recorded order) equals the naive chain."""
    cfg = ViewConfig(size=6, color_p=1.0, color_saturation_mode="hsv", color_order=order)
    p = sample_params(cfg, 6, generator=torch.Generator().manual_seed(3))
    x = _pixels(size=6)
    got = ops.color_jitter(x, p.color, p.color_perm, p.color_applied, saturation="hsv")
    for b in range(x.shape[0]):
        want = x[b].double()
        for op in p.color_perm[b].tolist():
            f = float(p.color[b, op])
            if op == 0:
                want = (f * want).clamp(0, 1)
            elif op == 1:
                mean = (0.2989 * want[0] + 0.587 * want[1] + 0.114 * want[2]).mean()
                want = (f * want + (1 - f) * mean).clamp(0, 1)
            else:
                want = _naive(want, hsv_saturation(f) if op == 2 else hsv_hue(f))
        torch.testing.assert_close(got[b].double(), want, atol=1e-5, rtol=0)
    assert (p.color_perm == p.color_perm[0]).all() == (order == "batch")
    with pytest.raises(ValueError, match="saturation mode"):
        ops.color_jitter(x, p.color, p.color_perm, p.color_applied, saturation="hls")


def test_per_batch_order_is_drawn_per_view() -> None:
    """Two views (the reference's two kornia pipelines t1, t2, datasets.py 149-158) draw their own order."""
    aug = Augmenter(AugmentConfig.symmetric(2, size=8, color_order="batch", color_saturation_mode="hsv"))
    x = torch.randint(0, 256, (16, 3, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    pairs = []
    for _ in range(20):
        v1, v2 = aug(x, generator=g)
        assert (v1.params.color_perm == v1.params.color_perm[0]).all() and (
            v2.params.color_perm == v2.params.color_perm[0]
        ).all()
        pairs.append(torch.equal(v1.params.color_perm[0], v2.params.color_perm[0]))
    assert not all(pairs)


@pytest.mark.parametrize(
    "name",
    [
        f"{d}/{m}{s}.yaml"
        for d in ("stl10", "imagenet100")
        for m in ("simclr", "moco", "byol", "simsiam", "swav")
        for s in ("", "_augself")
    ],
)
def test_augself_paper_configs_use_the_reference_colour_jitter(name: str) -> None:
    """Paper configs: HSV saturation, one order per batch and view; ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8 and
    grayscale p 0.2 (datasets.py 119-127 and 149-158)."""
    for v in load_config(CONFIGS / name).augment.build().views:
        assert (v.color_saturation_mode, v.color_order) == ("hsv", "batch")
        assert (v.color_brightness, v.color_contrast, v.color_saturation, v.color_hue, v.color_p, v.gray_p) == (
            0.4,
            0.4,
            0.4,
            0.1,
            0.8,
            0.2,
        )
        assert v.color_strength == 1.0


@pytest.mark.parametrize("name", ["cifar10/essl_simclr.yaml", "cifar10/esimclr.yaml", "imagenet/esimclr.yaml"])
def test_essl_configs_use_torchvision_colour_jitter(name: str) -> None:
    """E-SSL uses torchvision's ColorJitter per image (cifar10/main.py 29; imagenet/simclr/main.py 289-293)."""
    for v in load_config(CONFIGS / name).augment.build().views:
        assert (v.color_saturation_mode, v.color_order) == ("blend", "sample")
