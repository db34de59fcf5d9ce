"""The recorded ViewParams reproduce each view through an independent, per-sample torchvision path."""

from __future__ import annotations

import colorsys
import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torchvision.transforms import InterpolationMode

from augself.augment import AugmentConfig, Augmenter, ViewConfig, ViewParams, ops, sample_params

OFF = {
    "flip_p": 0.0,
    "color_p": 0.0,
    "gray_p": 0.0,
    "blur_p": 0.0,
    "sol_p": 0.0,
    "rot_p": 0.0,
    "sharp_p": 0.0,
    "angle_p": 0.0,
}


def pipeline_atol(image: torch.Tensor) -> float:
    """Two float32 evaluations of the same view (another batch split, uint8 vs float input) may differ by the
    pipeline's roundings: ~30 (crop taps, four colour ops, blur taps, normalise), doubled, at its largest value."""
    return 64 * torch.finfo(torch.float32).eps * max(1.0, float(image.abs().max()))


def naive_hsv_saturation(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Pixel by pixel in float64: RGB -> HSV (colorsys), s <- clamp(s * factor, 0, 1), HSV -> RGB; 1 channel kept.

    The AugSelf reference's saturation (kornia 0.4.1 ``adjust_saturation``), written independently of ours.
    """
    if x.shape[0] == 1:
        return x
    out = torch.empty_like(x, dtype=torch.float64)
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            h, s, v = colorsys.rgb_to_hsv(*x[:, i, j].double().tolist())
            out[:, i, j] = torch.tensor(colorsys.hsv_to_rgb(h, min(max(s * factor, 0.0), 1.0), v), dtype=torch.float64)
    return out.to(x.dtype)


def slow_view(img: torch.Tensor, p: ViewParams, b: int, cfg: ViewConfig, source_crop=None) -> torch.Tensor:
    """Re-apply sample b's recorded params to one image (C, H, W) with torchvision, op by op."""
    x = img.float() / 255.0 if img.dtype == torch.uint8 else img.float()
    C, H, W = x.shape
    top, left, h, w = p.crop[b].tolist()
    if source_crop is not None:  # recorded crop is relative to the original image
        st_, sl, sh, sw = source_crop[b].tolist()
        top, left, h, w = (top - st_) / sh, (left - sl) / sw, h / sh, w / sw
    i, j, ph, pw = round(top * H), round(left * W), round(h * H), round(w * W)
    for frac, px, n in ((top, i, H), (left, j, W), (h, ph, H), (w, pw, W)):
        assert abs(frac * n - px) < 1e-3, "crop is not on the input's pixel grid"
    x = TF.resized_crop(x, i, j, ph, pw, [cfg.size, cfg.size], antialias=False)
    if p.flip[b]:
        x = TF.horizontal_flip(x)
    if p.color_applied[b]:
        sat = naive_hsv_saturation if cfg.color_saturation_mode == "hsv" else TF.adjust_saturation
        fns = (TF.adjust_brightness, TF.adjust_contrast, sat, TF.adjust_hue)
        for op in p.color_perm[b].tolist():
            x = fns[op](x, float(p.color[b, op]))
    if p.gray[b] and C == 3:
        x = TF.rgb_to_grayscale(x, num_output_channels=3)
    if p.blur[b]:
        x = TF.gaussian_blur(x, [cfg.blur_kernel] * 2, [float(p.blur_sigma[b])] * 2)
    if p.sol[b]:
        x = TF.solarize(x, float(p.sol_threshold[b]))
    if p.rot[b]:
        x = TF.rotate(x, 90.0 * int(p.rot[b]))
    if p.sharp[b] != 1:
        x = TF.adjust_sharpness(x, float(p.sharp[b]))
    if p.angle[b] != 0:  # counter-clockwise about the centre, bilinear; fill=None is plain zero padding
        x = TF.rotate(x, math.degrees(float(p.angle[b])), interpolation=InterpolationMode.BILINEAR)
    if cfg.normalize:
        mean, std = list(cfg.mean), list(cfg.std)
        if C == 1 and len(mean) == 3:
            mean, std = [sum(mean) / 3], [sum(std) / 3]
        x = TF.normalize(x, mean, std)
    return x


def assert_reproduced(images, views, aug: Augmenter, source_crop=None) -> None:
    """Every sample of every view equals the slow path (a handful of pixels may sit on a solarize edge)."""
    for v, (view, cfg) in enumerate(zip(views, aug.views, strict=True)):
        for b in range(images.shape[0]):
            want = slow_view(images[b], view.params, b, cfg, source_crop)
            err = (view.image[b] - want).abs() * min(cfg.std)  # back to [0, 1] units
            bad = (err > 1e-4).float().mean().item()
            assert bad <= 0.005, f"view {v} sample {b}: {bad:.2%} pixels differ (max {err.max():.3g})"


def _images(b: int = 6, c: int = 3, h: int = 37, w: int = 29, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, c, h, w), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize(
    "only",
    [
        {},
        {"flip_p": 1.0},
        {"color_p": 1.0},
        {"gray_p": 1.0},
        {"blur_p": 1.0},
        {"sol_p": 1.0},
        {"rot_p": 1.0},
        {"sharp_p": 1.0},
        {"angle_p": 1.0},
    ],
    ids=["crop", "flip", "color", "gray", "blur", "sol", "rot", "sharp", "angle"],
)
def test_each_op_alone_is_reproduced(only: dict) -> None:
    aug = Augmenter(AugmentConfig.symmetric(2, size=17, **{**OFF, **only}))
    x = _images()
    views = aug(x, generator=torch.Generator().manual_seed(1))
    assert_reproduced(x, views, aug)
    if only:  # the op really fired
        name = next(iter(only))
        field = {
            "flip_p": "flip",
            "color_p": "color_applied",
            "gray_p": "gray",
            "blur_p": "blur",
            "sol_p": "sol",
            "rot_p": "rot",
            "sharp_p": "sharp",
            "angle_p": "angle",
        }[name]
        fired = views[0].params.__dict__[field]
        assert (fired != 1).all() if field == "sharp" else fired.bool().all() or field == "rot"


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    channels=st.sampled_from([1, 3]),
    hw=st.tuples(st.integers(9, 40), st.integers(9, 40)),
    size=st.integers(8, 33),
    strength=st.sampled_from([0.5, 1.0, 2.0]),
    uint8=st.booleans(),
    normalize=st.booleans(),
)
def test_random_compositions_are_reproduced(
    seed: int, channels: int, hw: tuple[int, int], size: int, strength: float, uint8: bool, normalize: bool
) -> None:
    cfg = ViewConfig(
        size=size,
        color_strength=strength,
        sol_p=0.5,
        rot_p=0.5,
        blur_p=0.5,
        sharp_p=0.5,
        angle_p=0.5,
        normalize=normalize,
    )
    aug = Augmenter(AugmentConfig(views=[cfg, cfg.with_(flip_p=0.9, color_p=1.0)]))
    x = _images(5, channels, *hw, seed=seed % 1000)
    if not uint8:
        x = x.float() / 255.0
    views = aug(x, generator=torch.Generator().manual_seed(seed))
    assert_reproduced(x, views, aug)


def test_apply_reproduces_forward() -> None:
    aug = Augmenter(AugmentConfig.symmetric(2, size=16, sol_p=0.3, rot_p=0.5))
    x = _images()
    views = aug(x, generator=torch.Generator().manual_seed(2))
    for i, v in enumerate(views):
        assert torch.equal(aug.apply(x, v.params, i), v.image)


def test_seeded_generator_gives_identical_views() -> None:
    aug = Augmenter(AugmentConfig.symmetric(2, size=16, sol_p=0.3, rot_p=0.5))
    x = _images()
    a = aug(x, generator=torch.Generator().manual_seed(7))
    b = aug(x, generator=torch.Generator().manual_seed(7))
    c = aug(x, generator=torch.Generator().manual_seed(8))
    for va, vb in zip(a, b, strict=True):
        assert torch.equal(va.image, vb.image)
        for k, t in va.params.as_dict().items():
            assert torch.equal(t, vb.params.as_dict()[k]), k
    assert not torch.equal(a[0].image, c[0].image)
    assert not torch.equal(a[0].image, a[1].image)  # the two views differ


def test_uint8_and_float_inputs_agree() -> None:
    aug = Augmenter(AugmentConfig.symmetric(2, size=16))
    x = _images()
    a = aug(x, generator=torch.Generator().manual_seed(0))
    b = aug(x.float() / 255.0, generator=torch.Generator().manual_seed(0))
    for va, vb in zip(a, b, strict=True):
        torch.testing.assert_close(va.image, vb.image, atol=pipeline_atol(va.image), rtol=0)


@pytest.mark.parametrize("c", [1, 3])
def test_shapes_dtypes_odd_sizes(c: int) -> None:
    aug = Augmenter(AugmentConfig.symmetric(3, size=17))
    views = aug(_images(4, c, 37, 29))
    assert len(views) == 3
    for v in views:
        assert v.image.shape == (4, c, 17, 17) and v.image.dtype == torch.float32
        p = v.params
        assert p.crop.shape == (4, 4) and p.color.shape == (4, 4) and p.color_perm.shape == (4, 4)
        assert p.flip.dtype == torch.bool and p.rot.dtype == torch.long
        assert torch.equal(p.color_perm.sort(dim=1).values, torch.arange(4).expand(4, 4))


def test_source_crop_composition() -> None:
    """A view of a crop of the original equals the same recorded box cut directly from the original."""
    g = torch.Generator().manual_seed(4)
    orig = torch.randint(0, 256, (6, 3, 40, 50), generator=g, dtype=torch.uint8)
    # the input shows rows 8..31 and cols 10..39 of the original at native resolution
    inp = orig[:, :, 8:32, 10:40]
    sc = torch.tensor([8 / 40, 10 / 50, 24 / 40, 30 / 50]).repeat(6, 1)
    aug = Augmenter(AugmentConfig.symmetric(2, size=12))
    views = aug(inp, source_crop=sc, generator=torch.Generator().manual_seed(5))
    for v, view in enumerate(views):
        p = view.params
        # recorded crop lies inside the source crop and on the original's pixel grid
        assert (p.crop[:, 0] >= sc[:, 0] - 1e-6).all() and (
            p.crop[:, 0] + p.crop[:, 2] <= sc[:, 0] + sc[:, 2] + 1e-6
        ).all()
        for b in range(6):
            want = slow_view(orig[b], p, b, aug.views[v])  # no source_crop: box read on the original
            torch.testing.assert_close(view.image[b], want, atol=1e-4, rtol=0)
        # apply() with the recorded (original-relative) crop and the source crop reproduces the view
        torch.testing.assert_close(aug.apply(inp, p, v, source_crop=sc), view.image, atol=1e-5, rtol=0)
    assert_reproduced(inp, views, aug, source_crop=sc)


def test_sampled_crop_distribution() -> None:
    cfg = ViewConfig(size=32)
    p = sample_params(cfg, 4000, generator=torch.Generator().manual_seed(0), input_size=(64, 48))
    top, left, h, w = p.crop.unbind(1)
    assert torch.allclose(top * 64, torch.round(top * 64), atol=1e-3)
    assert torch.allclose(w * 48, torch.round(w * 48), atol=1e-3)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 1 + 1e-6).all() and (left + w <= 1 + 1e-6).all()
    area = h * w
    assert area.min() >= 0.18 and area.max() <= 1.0 + 1e-6
    ratio = (w * 48) / (h * 64)
    assert ratio.min() >= 3 / 4 - 0.1 and ratio.max() <= 4 / 3 + 0.1
    assert abs(p.flip.float().mean() - 0.5) < 0.04
    assert abs(p.color_applied.float().mean() - 0.8) < 0.04
    assert abs(p.gray.float().mean() - 0.2) < 0.04
    assert abs(p.blur.float().mean() - 0.5) < 0.04
    assert (
        (p.blur_sigma[p.blur] >= 0.1).all()
        and (p.blur_sigma[p.blur] <= 2.0).all()
        and (p.blur_sigma[~p.blur] == 0).all()
    )
    assert torch.equal(
        p.color[~p.color_applied], torch.tensor([1.0, 1.0, 1.0, 0.0]).expand(int((~p.color_applied).sum()), 4)
    )
    col = p.color[p.color_applied]
    assert col[:, :3].min() >= 0.6 - 1e-6 and col[:, :3].max() <= 1.4 + 1e-6 and col[:, 3].abs().max() <= 0.1 + 1e-6
    assert not p.sol.any() and (p.sol_threshold == 1).all() and (p.rot == 0).all()
    # the 4! orders all occur
    assert len({tuple(o) for o in p.color_perm.tolist()}) == 24
    strong = sample_params(
        cfg.with_(color_strength=2.0, rot_p=1.0, sol_p=1.0),
        2000,
        generator=torch.Generator().manual_seed(0),
    )
    assert strong.color[strong.color_applied][:, 0].min() < 0.3 and abs(strong.gray.float().mean() - 0.4) < 0.04
    assert set(strong.rot.tolist()) == {0, 1, 2, 3} and strong.sol.all()
    assert 0.45 < strong.sol_threshold.mean() < 0.55


def test_fallback_crop_for_impossible_ratio() -> None:
    cfg = ViewConfig(size=8, crop_scale=(1.0, 1.0), crop_ratio=(3.0, 4.0))
    p = sample_params(cfg, 16, generator=torch.Generator().manual_seed(0), input_size=(30, 30))
    # torchvision: in_ratio 1 < 3 -> w = W, h = round(W / 3) = 10, centred
    want = torch.tensor([10 / 30, 0.0, 10 / 30, 1.0])
    torch.testing.assert_close(p.crop, want.expand(16, 4))


@pytest.mark.parametrize(
    ("images", "source_crop", "match"),
    [
        (torch.zeros(3, 32, 32, dtype=torch.uint8), None, "B, C, H, W"),
        (torch.zeros(2, 4, 32, 32, dtype=torch.uint8), None, "1 or 3 channels"),
        (torch.zeros(2, 3, 32, 32, dtype=torch.int32), None, "uint8"),
        ([[0.0]], None, "torch.Tensor"),
        (torch.zeros(2, 3, 32, 32), torch.zeros(3, 4), "source_crop must have shape"),
        (torch.zeros(2, 3, 32, 32), torch.zeros(2, 4, dtype=torch.long), "float"),
        (torch.zeros(2, 3, 32, 32), torch.zeros(2, 4), "positive"),
    ],
)
def test_bad_input_raises(images, source_crop, match: str) -> None:
    aug = Augmenter()
    with pytest.raises(ValueError, match=match):
        aug(images, source_crop=source_crop)


def test_view_index_and_param_length_errors() -> None:
    aug = Augmenter()
    x = _images(4)
    p = aug.sample(0, 3, input_size=(37, 29))
    with pytest.raises(ValueError, match="3 samples"):
        aug.apply(x, p, 0)
    with pytest.raises(ValueError, match="view_index"):
        aug.sample(5, 4)


@pytest.mark.parametrize(
    "field", ["crop", "flip", "color_perm", "color", "blur_sigma", "sol_threshold", "rot", "gray", "sharp", "angle"]
)
def test_wrong_record_is_detected(field: str) -> None:
    """Negative control: corrupting any recorded field makes the slow path disagree."""
    cfg = ViewConfig(
        size=16, flip_p=0.5, color_p=1.0, gray_p=0.5, blur_p=1.0, sol_p=1.0, rot_p=1.0, sharp_p=1.0, angle_p=1.0
    )
    aug = Augmenter(AugmentConfig(views=[cfg]))
    x = _images(8)
    views = aug(x, generator=torch.Generator().manual_seed(11))
    p = views[0].params
    d = p.as_dict()
    bad = {
        "crop": d["crop"] + torch.tensor([1 / 37, 0.0, 0.0, 0.0]) * (d["crop"][:, 0:1] * 37 >= 1),
        "flip": ~d["flip"],
        "color_perm": d["color_perm"].flip(1),
        "color": d["color"] * torch.tensor([1.1, 1.0, 1.0, 1.0]),
        "blur_sigma": d["blur_sigma"] * 1.5,
        "sol_threshold": (d["sol_threshold"] + 0.2).clamp(max=0.99),
        "rot": (d["rot"] + 1) % 4,
        "gray": ~d["gray"],
        "sharp": torch.where(d["sharp"] > 1, d["sharp"] - 0.8, d["sharp"] + 0.8),
        "angle": d["angle"] + 0.3,
    }[field]
    corrupted = ViewParams(cfg=p.cfg, **{**d, field: bad})
    with pytest.raises(AssertionError):
        assert_reproduced(x, [views[0]._replace(params=corrupted)], aug)


def test_per_view_settings_sizes_and_normalisation_are_reproduced() -> None:
    """Asymmetric views (own size, probabilities, normalisation or none) each follow their own config."""
    v1 = ViewConfig(size=15, blur_p=1.0, sol_p=0.0, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.25))
    v2 = ViewConfig(size=8, blur_p=0.0, sol_p=1.0, rot_p=1.0, normalize=False)
    aug = Augmenter(AugmentConfig(views=[v1, v2]))
    x = _images(6, 3, 21, 26)
    views = aug(x, generator=torch.Generator().manual_seed(3))
    assert views[0].image.shape == (6, 3, 15, 15) and views[1].image.shape == (6, 3, 8, 8)
    assert views[0].params.blur.all() and not views[0].params.sol.any()
    assert not views[1].params.blur.any() and views[1].params.sol.all()
    assert views[1].image.min() >= 0 and views[1].image.max() <= 1  # un-normalised view stays in [0, 1]
    assert_reproduced(x, views, aug)


def test_byol_views_and_colour_strength_sampling() -> None:
    """BYOL's asymmetric probabilities per view; colour strength s scales jitter ranges and grayscale p."""
    aug = Augmenter(AugmentConfig.byol(size=16))
    g = torch.Generator().manual_seed(0)
    p1, p2 = (aug.sample(i, 4000, generator=g, input_size=(32, 32)) for i in range(2))
    assert p1.blur.all() and not p1.sol.any()
    assert abs(p2.blur.float().mean() - 0.1) < 0.03 and abs(p2.sol.float().mean() - 0.2) < 0.03
    for s, gray in ((0.5, 0.1), (2.0, 0.4)):
        p = sample_params(ViewConfig(color_strength=s, color_p=1.0), 4000, generator=g)
        col = p.color
        for j, (lo, hi) in enumerate([(1 - 0.4 * s, 1 + 0.4 * s)] * 3 + [(-0.1 * s, 0.1 * s)]):
            assert col[:, j].min() >= lo - 1e-6 and col[:, j].max() <= hi + 1e-6, (s, j)
            assert col[:, j].min() < lo + 0.05 * (hi - lo) and col[:, j].max() > hi - 0.05 * (hi - lo), (s, j)
        assert abs(p.gray.float().mean() - gray) < 0.03


@pytest.mark.parametrize(
    ("channels", "extra"),
    [
        (3, {}),
        (3, {"color_hue": 0.0, "color_p": 0.6}),  # jitter without a hue step (slot 4) next to unjittered samples
        (3, {"color_brightness": 0.0, "color_saturation": 0.0}),  # identity blends inside jittered samples
        (1, {}),  # saturation and hue are the identity on one channel
    ],
)
def test_cpu_chunking_matches_single_pass(monkeypatch: pytest.MonkeyPatch, channels: int, extra: dict) -> None:
    """A view produced in CPU chunks (grouped by hue position: no subsets gathered) equals the one-pass
    masked result and is still reproduced by the slow path."""
    import augself.augment.pipeline as pipeline

    base = {"color_p": 1.0, "gray_p": 0.5, "blur_p": 0.5, "sol_p": 0.3, "rot_p": 0.5}
    cfg = ViewConfig(size=12, **{**base, **extra})
    aug = Augmenter(AugmentConfig(views=[cfg, cfg.with_(normalize=False)]))
    x = _images(23, channels, 20, 17, seed=3)
    whole = aug(x, generator=torch.Generator().manual_seed(9))
    monkeypatch.setattr(pipeline, "CPU_CHUNK_BYTES", 4 * channels * 12 * 12 * 3)  # 3 samples per chunk
    assert pipeline.chunk_size(23, channels, 12, torch.device("cpu")) == 3
    chunked = aug(x, generator=torch.Generator().manual_seed(9))
    slots = ops.hue_slot(
        chunked[0].params.color, chunked[0].params.color_perm, chunked[0].params.color_applied, channels
    )
    assert len(slots.unique()) >= (1 if channels == 1 else 2)  # groups, split into several chunks
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(a.image, b.image, atol=pipeline_atol(a.image), rtol=0)
        assert a.image.shape == b.image.shape == (23, channels, 12, 12)
    assert_reproduced(x, chunked, aug)
    for i, v in enumerate(chunked):
        assert torch.equal(aug.apply(x, v.params, i), v.image)


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("order", ["sample", "batch"])
def test_reference_colour_jitter_is_reproduced(monkeypatch: pytest.MonkeyPatch, order: str, channels: int) -> None:
    """HSV saturation (the AugSelf reference's kornia 0.4.1 ColorJitter) with per-sample or per-batch op order:
    one pass and CPU chunks both equal the slow path with a naive per-pixel HSV round trip."""
    import augself.augment.pipeline as pipeline

    cfg = ViewConfig(
        size=9, color_p=0.8, color_saturation=0.8, color_saturation_mode="hsv", color_order=order, gray_p=0.2
    )
    aug = Augmenter(AugmentConfig(views=[cfg, cfg.with_(normalize=False)]))
    x = _images(10, channels, 15, 13, seed=5)
    whole = aug(x, generator=torch.Generator().manual_seed(4))
    p = whole[0].params
    assert p.color_applied.any() and (p.color[p.color_applied, 2] != 1).all()
    if order == "batch":  # one permutation per view and batch (kornia's torch.randperm(4) per call)
        assert (p.color_perm == p.color_perm[0]).all() and (
            whole[1].params.color_perm == whole[1].params.color_perm[0]
        ).all()
    assert_reproduced(x, whole, aug)
    monkeypatch.setattr(pipeline, "CPU_CHUNK_BYTES", 4 * channels * 9 * 9 * 3)  # 3 samples per chunk
    chunked = aug(x, generator=torch.Generator().manual_seed(4))
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(a.image, b.image, atol=pipeline_atol(a.image), rtol=0)
    # negative control: the blend saturation is not what was recorded
    blend = Augmenter(AugmentConfig(views=[v.with_(color_saturation_mode="blend") for v in aug.views]))
    if channels == 3:
        with pytest.raises(AssertionError):
            assert_reproduced(x, whole, blend)


def test_colour_order_per_batch_keeps_the_other_draws() -> None:
    """``color_order: batch`` changes only the order record: every other parameter is drawn identically, and
    the single permutation is uniform over the 24 orders across batches."""
    cfg = ViewConfig(size=8, sol_p=0.5, rot_p=0.5)
    a = sample_params(cfg, 16, generator=torch.Generator().manual_seed(1), input_size=(20, 20))
    b = sample_params(
        cfg.with_(color_order="batch"), 16, generator=torch.Generator().manual_seed(1), input_size=(20, 20)
    )
    for k, t in a.as_dict().items():
        if k != "color_perm":
            assert torch.equal(t, b.as_dict()[k]), k
    assert (
        torch.equal(b.color_perm, a.color_perm[:1].expand(16, 4)) and len({tuple(o) for o in a.color_perm.tolist()}) > 1
    )
    g = torch.Generator().manual_seed(2)
    seen = [
        tuple(sample_params(cfg.with_(color_order="batch"), 2, generator=g).color_perm[0].tolist()) for _ in range(240)
    ]
    assert len(set(seen)) == 24 and max(seen.count(o) for o in set(seen)) < 25  # expected 10 each


def test_fixed_solarize_threshold() -> None:
    """``sol_threshold: [0.5, 0.5]`` (PIL's fixed 128 of 8-bit pixels: BYOL, E-SSL ImageNet) is recorded and
    reproduced; the default range stays U[0, 1]."""
    cfg = ViewConfig(size=10, sol_p=1.0, sol_threshold=(0.5, 0.5))
    p = sample_params(cfg, 50, generator=torch.Generator().manual_seed(0))
    assert (p.sol_threshold == 0.5).all()
    aug = Augmenter(AugmentConfig(views=[cfg]))
    x = _images(6)
    assert_reproduced(x, aug(x, generator=torch.Generator().manual_seed(0)), aug)
    with pytest.raises(ValueError, match="sol_threshold"):
        ViewConfig(sol_threshold=(0.6, 0.4))
    with pytest.raises(ValueError, match="color_saturation_mode"):
        ViewConfig(color_saturation_mode="hls")
    with pytest.raises(ValueError, match="color_order"):
        ViewConfig(color_order="view")
