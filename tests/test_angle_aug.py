"""Issue 16: the continuous rotation ``angle`` (spec, op, target, label) and the differentiability of the ops a
learned (reparameterised, InstaAug) sampler drives: ``ops.rotate`` w.r.t. the angle and ``ops.color_jitter`` w.r.t.
the colour factors, checked with ``torch.autograd.gradcheck`` in float64 away from the ops' kinks."""

from __future__ import annotations

import colorsys
import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from augself.augment import AugmentConfig, Augmenter, ViewConfig, ViewParams, ops, relative_targets
from augself.augment.sample import sample_params
from augself.augment.specs import REGISTRY, isolated_view, strength_label
from augself.augment.specs.registry import describe, preview_targets
from augself.augment.targets import absolute_targets

EPS32 = torch.finfo(torch.float32).eps
EPS64 = torch.finfo(torch.float64).eps


def rotate_atol(h: int, w: int, eps: float) -> float:
    """Two bilinear rotations of an image in [0, 1] differ by (source-coordinate error) x (largest step between
    neighbouring pixels, <= 1) plus the blend's rounding. A source coordinate has magnitude <= r + max(H, W)
    pixels (r: half the diagonal, plus the grid's normalisation offset) and passes ~8 roundings in each
    implementation: 16 eps (r + max(H, W)) + 8 eps."""
    r = math.hypot((h - 1) / 2, (w - 1) / 2)
    return 16 * eps * (r + max(h, w)) + 8 * eps


def tv_rotate(img: torch.Tensor, radians: float) -> torch.Tensor:
    """torchvision's rotation (counter-clockwise for positive degrees, about the centre), bilinear, with its
    default ``fill=None``: plain zero padding (``fill=0`` multiplies the border by the in-image mask again)."""
    return TF.rotate(img, math.degrees(radians), interpolation=InterpolationMode.BILINEAR)


# ---- the op ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("hw", [(17, 17), (32, 32), (12, 19)])
def test_rotate_matches_torchvision(dtype: torch.dtype, hw: tuple[int, int]) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, *hw, generator=g, dtype=dtype)
    special = torch.tensor([math.pi / 2, -math.pi / 2, math.pi, -math.pi], dtype=dtype)
    angle = torch.cat([special, (torch.rand(4, generator=g, dtype=dtype) * 2 - 1) * math.pi])
    out = ops.rotate(x, angle)
    assert out.shape == x.shape and out.dtype == dtype
    atol = rotate_atol(*hw, EPS64 if dtype == torch.float64 else EPS32)
    for b in range(8):
        torch.testing.assert_close(out[b], tv_rotate(x[b], float(angle[b])), atol=atol, rtol=0)


def test_rotate_direction_centre_and_zero_fill() -> None:
    """+90 deg turns the right edge to the top (counter-clockwise, as torch.rot90 k=1); the centre pixel of an
    odd image stays; a constant image rotated by 45 deg keeps its centre and has black (zero) corners."""
    x = torch.rand(2, 3, 9, 9, generator=torch.Generator().manual_seed(1))
    quarter = ops.rotate(x, torch.full((2,), math.pi / 2))
    torch.testing.assert_close(quarter, torch.rot90(x, 1, dims=(-2, -1)), atol=rotate_atol(9, 9, EPS32), rtol=0)
    dot = torch.zeros(1, 1, 9, 9)
    dot[0, 0, 4, 8] = 1.0  # right of the centre
    up = ops.rotate(dot, torch.tensor([math.pi / 2]))
    assert up[0, 0, 0, 4] > 0.99 and up.sum() < 1.0 + 1e-5  # now above the centre
    ones = ops.rotate(torch.ones(1, 1, 15, 15), torch.tensor([math.pi / 4]))
    assert ones[0, 0, 7, 7] == pytest.approx(1.0, abs=1e-6)
    assert float(ones[0, 0, 0, 0]) == 0.0 and float(ones[0, 0, -1, -1]) == 0.0


# ---- the spec: sampling, seeds, apply, target, labels ---------------------------------------------------
def test_angle_sampling_and_checks() -> None:
    cfg = ViewConfig(angle_p=0.5, angle_max=60.0)
    p = sample_params(cfg, 4000, generator=torch.Generator().manual_seed(0))
    assert p.angle.dtype == torch.float32 and p.angle.shape == (4000,)
    on = p.angle != 0
    assert abs(on.float().mean() - 0.5) < 0.04  # Bernoulli(0.5): sd 0.008
    deg = torch.rad2deg(p.angle[on])
    assert deg.abs().max() <= 60.0 + 1e-4 and deg.min() < -57 and deg.max() > 57
    assert abs(float(deg.mean())) < 2.0  # U[-60, 60]: sd of the mean of ~2000 is 0.8
    assert (ViewParams.identity(3).angle == 0).all()
    assert (sample_params(ViewConfig(angle_p=1.0, angle_max=0.0), 50).angle == 0).all()
    for bad, match in (
        ({"angle_max": 181.0}, "angle_max"),
        ({"angle_max": -1.0}, "angle_max"),
        ({"angle_p": 1.5}, "angle_p"),
    ):
        with pytest.raises(ValueError, match=match):
            ViewConfig(**bad)


def test_angle_off_keeps_views_and_unrotated_samples_are_exact() -> None:
    """The angle draws come after every other draw of the view: with the same seed, a view with angle_p > 0
    has the same record apart from ``angle``, and its samples with angle 0 are bit-identical to the view
    without rotation."""
    base = ViewConfig(size=15, sol_p=0.3, rot_p=0.5, sharp_p=0.5)
    x = torch.randint(0, 256, (12, 3, 21, 18), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    off = Augmenter(AugmentConfig(views=[base, base]))(x, generator=torch.Generator().manual_seed(3))
    on = Augmenter(AugmentConfig(views=[base.with_(angle_p=0.5), base]))(x, generator=torch.Generator().manual_seed(3))
    a, b = off[0], on[0]
    for k, t in a.params.as_dict().items():
        if k != "angle":
            assert torch.equal(t, b.params.as_dict()[k]), k
    rotated = b.params.angle != 0
    assert rotated.any() and (~rotated).any()
    assert torch.equal(a.image[~rotated], b.image[~rotated])
    assert not torch.equal(a.image[rotated], b.image[rotated])
    # the second view draws after the first view's angle: it differs from the all-off run's second view
    assert not torch.equal(off[1].params.crop, on[1].params.crop)


def test_learned_record_is_applied_with_angle_p_zero() -> None:
    """A record written by a learned sampler rotates even when the view's ``angle_p`` is 0 (apply reads the
    record), and a grad-carrying angle goes through the differentiable path with the same values."""
    cfg = ViewConfig(size=11, angle_p=0.0)
    aug = Augmenter(AugmentConfig(views=[cfg]))
    x = torch.randint(0, 256, (4, 3, 11, 11), generator=torch.Generator().manual_seed(4), dtype=torch.uint8)
    p = aug.sample(0, 4, generator=torch.Generator().manual_seed(0), input_size=(11, 11))
    plain = aug.apply(x, p, 0)
    p.angle = torch.tensor([0.0, 0.4, -1.2, 2.9])
    fast = aug.apply(x, p, 0)
    assert torch.equal(fast[0], plain[0]) and not torch.equal(fast[1:], plain[1:])
    p.angle = p.angle.clone().requires_grad_(True)
    slow = aug.apply(x, p, 0)
    torch.testing.assert_close(slow, fast, atol=0, rtol=0)
    slow.square().sum().backward()
    assert p.angle.grad is not None and p.angle.grad[0] == 0 and (p.angle.grad[1:] != 0).all()


def test_angle_target_label_and_awareness() -> None:
    v1 = ViewConfig(size=8, angle_p=1.0, angle_max=180.0)
    v2 = ViewConfig(size=8, angle_p=0.5, angle_max=30.0)
    g = torch.Generator().manual_seed(5)
    p1, p2 = sample_params(v1, 64, generator=g), sample_params(v2, 64, generator=g)
    t = relative_targets(p1, p2, ["angle"])["angle"]
    d = p1.angle.double() - p2.angle.double()
    torch.testing.assert_close(t.double(), torch.stack((d.sin(), d.cos()), 1), atol=4 * EPS32 * math.pi, rtol=0)
    torch.testing.assert_close(relative_targets(p1, p1, ["angle"])["angle"], torch.tensor([[0.0, 1.0]]).expand(64, 2))
    # a full turn apart is the same image and the same target
    q = ViewParams(cfg=v1, **{**p1.as_dict(), "angle": p1.angle - 2 * math.pi})
    torch.testing.assert_close(relative_targets(q, p1, ["angle"])["angle"][:, 1], torch.ones(64), atol=1e-5, rtol=0)
    ab = absolute_targets(p1, ["angle"])["angle"]
    torch.testing.assert_close(ab, torch.stack((p1.angle.sin(), p1.angle.cos()), 1))
    p = ViewParams(crop=torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 2), angle=torch.tensor([math.radians(23.0), 0.0]))
    assert "angle 23°" in describe(p, 0) and "angle" not in describe(p, 1)
    assert "angle" in preview_targets([ViewConfig(), v2]) and "angle" not in preview_targets([ViewConfig()])
    assert REGISTRY["angle"].targets[0].dims == ("sin_d_angle", "cos_d_angle")
    iso = isolated_view("angle", 90.0, 8, (0.5,), (0.2,))
    assert iso.angle_p == 1.0 and iso.angle_max == 90.0 and iso.rot_p == 0.0 and iso.color_p == 0.0
    assert strength_label("angle", 90.0) == "angle<=90deg"


# ---- differentiability (float64 gradcheck) ----------------------------------------------------------------
def _image(b: int, c: int, side: int, seed: int, lo: float = 0.1, hi: float = 0.9) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(b, c, side, side, generator=g, dtype=torch.float64)


def test_rotate_gradcheck() -> None:
    x = _image(3, 2, 6, 0).requires_grad_(True)
    angle = torch.tensor([0.3, -1.1, 2.6], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(ops.rotate, (x, angle))
    odd = torch.tensor([0.7, -2.0, 1.4], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: ops.rotate(_image(3, 3, 5, 1, 0.0, 1.0), a), (odd,))


def test_brightness_gradcheck_through_the_clamp() -> None:
    """Factors that push some pixels past 1 (clamped: zero gradient) with none within 1e-3 of the clamp."""
    x = _image(3, 3, 5, 2)
    f = torch.tensor([1.6, 0.7, 1.3], dtype=torch.float64, requires_grad=True)
    scaled = x * f.detach().view(-1, 1, 1, 1)
    assert (scaled > 1).any() and ((scaled - 1).abs() > 1e-3).all()
    assert torch.autograd.gradcheck(ops.adjust_brightness, (x, f))


def test_hue_gradcheck_away_from_the_kinks() -> None:
    """``adjust_hue`` is piecewise linear in the shifted hue u = 6 (h + f) mod 6 with kinks at integers; the
    seeded pixels keep u and the channel gaps (ties move the max / min channel) at least 1e-4 (100 x gradcheck's
    step) away from them."""
    x = _image(3, 3, 4, 3)
    f = torch.tensor([0.07, -0.11, 0.31], dtype=torch.float64, requires_grad=True)
    for b in range(3):
        for px in x[b].reshape(3, -1).T.tolist():
            h, s, _ = colorsys.rgb_to_hsv(*px)
            u = (6 * (h + float(f[b].detach()))) % 6
            assert abs(u - round(u)) > 1e-4 and s > 1e-4
            r, g, bl = px
            assert min(abs(r - g), abs(g - bl), abs(r - bl)) > 1e-4
    assert torch.autograd.gradcheck(ops.adjust_hue, (x.requires_grad_(True), f))


@pytest.mark.parametrize("saturation", ["blend", "hsv"])
@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("inplace", [False, True])
def test_color_jitter_gradcheck(saturation: str, channels: int, inplace: bool) -> None:
    """Grad-carrying factors (B, 4) take the out-of-place path whatever ``inplace`` says. Pixels in [0.3, 0.6]
    and factors in [0.8, 1.2]: every blend stays inside [0.2, 0.7], away from the clamps; one sample unjittered."""
    B = 4
    x = _image(B, channels, 4, 4, 0.3, 0.6)
    g = torch.Generator().manual_seed(5)
    f = torch.cat([0.8 + 0.4 * torch.rand(B, 3, generator=g), 0.2 * torch.rand(B, 1, generator=g) - 0.1], 1)
    f = f.double().requires_grad_(True)
    perm = torch.stack([torch.randperm(4, generator=g) for _ in range(B)])
    applied = torch.tensor([True, True, True, False])

    def jitter(factors: torch.Tensor) -> torch.Tensor:
        return ops.color_jitter(x.clone(), factors, perm, applied, inplace=inplace, saturation=saturation)

    slow = saturation == "hsv" and channels == 3 and not inplace  # one full Jacobian; the rest projected
    assert torch.autograd.gradcheck(jitter, (f,), fast_mode=not slow)
    out = jitter(f)
    assert torch.equal(out[3], x[3])  # not applied: untouched
    fast = ops.color_jitter(x.float(), f.detach().float(), perm, applied, saturation=saturation)
    torch.testing.assert_close(out.float(), fast, atol=16 * EPS32, rtol=0)  # same values as the fast path


def test_color_jitter_same_slot_gradcheck() -> None:
    """The CPU-chunk kernel (every sample jittered, one hue position) delegates grad-carrying factors too."""
    x = _image(3, 3, 4, 6, 0.3, 0.6)
    perm = torch.tensor([[3, 0, 1, 2], [3, 2, 1, 0], [3, 1, 0, 2]])  # hue first for all: slot 0
    f = torch.tensor(
        [[1.1, 0.9, 1.15, 0.04], [0.85, 1.2, 0.9, -0.07], [1.05, 0.95, 1.1, 0.09]],
        dtype=torch.float64,
        requires_grad=True,
    )
    assert torch.autograd.gradcheck(lambda fs: ops.color_jitter_same_slot(x.clone(), fs, perm, 0), (f,))
    fast = ops.color_jitter_same_slot(x.float(), f.detach().float(), perm, 0)
    torch.testing.assert_close(ops.color_jitter_same_slot(x.clone(), f, perm, 0).float(), fast, atol=16 * EPS32, rtol=0)


def test_post_ops_pass_gradients_to_colour_and_angle() -> None:
    """The steps after colour jitter (grayscale, blur, rot, sharp, angle, normalise; several in place) keep the
    graph: gradcheck of jitter + the chain w.r.t. grad-carrying colour factors and angles (all nonzero: angle 0
    means not applied, its sample is selected unrotated)."""
    cfg = ViewConfig(size=5, color_p=1.0, gray_p=0.5, blur_p=0.5, rot_p=0.5, sharp_p=0.5, angle_p=1.0)
    p = sample_params(cfg, 6, generator=torch.Generator().manual_seed(0), input_size=(5, 5))
    assert p.gray.any() and p.blur.any() and (p.rot != 0).any() and (p.sharp != 1).any()
    x = _image(6, 3, 5, 7, 0.3, 0.6)
    colour = p.color.double().requires_grad_(True)
    angle = (p.angle.double() + 0.05).requires_grad_(True)

    def chain(factors: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        q = ViewParams(cfg=cfg, **{**p.as_dict(), "angle": a})
        y = ops.color_jitter(x.clone(), factors, p.color_perm, p.color_applied, inplace=True)
        return Augmenter._finish(y, q, cfg)

    assert torch.autograd.gradcheck(chain, (colour, angle), fast_mode=True)


@pytest.mark.parametrize("chunked", [False, True])
def test_pipeline_backpropagates_to_learned_colour_and_angle(monkeypatch: pytest.MonkeyPatch, chunked: bool) -> None:
    """A record whose colour factors and angles carry grad (what a learned sampler writes) gives a view with
    gradients to both, in one pass or in CPU chunks, with the values of the detached record."""
    import augself.augment.pipeline as pipeline

    cfg = ViewConfig(size=8, color_p=1.0, angle_p=1.0, gray_p=0.0)
    aug = Augmenter(AugmentConfig(views=[cfg]))
    x = torch.randint(0, 256, (6, 3, 12, 12), generator=torch.Generator().manual_seed(8), dtype=torch.uint8)
    p = aug.sample(0, 6, generator=torch.Generator().manual_seed(1), input_size=(12, 12))
    if chunked:
        monkeypatch.setattr(pipeline, "CPU_CHUNK_BYTES", 4 * 3 * 8 * 8 * 2)  # 2 samples per chunk
    want = aug.apply(x, p, 0)
    p.color = p.color.clone().requires_grad_(True)
    p.angle = p.angle.clone().requires_grad_(True)
    out = aug.apply(x, p, 0)
    torch.testing.assert_close(out, want, atol=64 * EPS32 * float(want.abs().max()), rtol=0)
    out.square().sum().backward()
    assert p.color.grad is not None and p.angle.grad is not None
    assert torch.isfinite(p.color.grad).all() and (p.color.grad.abs().sum(1) > 0).all()
    assert (p.angle.grad != 0).all()
