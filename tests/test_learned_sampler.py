"""The learned sampler (InstaAug, issue 16): valid, reproducible records; exact categorical sampling; gradients of
the pathwise (angle, colour) and REINFORCE (crop) estimators against finite differences / the exact gradient; a
learned view's record replayed by the pipeline and by the independent torchvision slow path."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from augself.augment import AugmentConfig, Augmenter, ViewParams
from augself.augment.learned import LearnedAugment, LearnedDists, parse_learned
from augself.augment.learned import crop as crop_fam
from augself.augment.specs.crop import compose_crop
from test_augment_record import assert_reproduced, slow_view

OFF = {"flip_p": 0.0, "color_p": 0.0, "gray_p": 0.0, "blur_p": 0.0, "sol_p": 0.0, "rot_p": 0.0, "sharp_p": 0.0}


def module(raw: dict, size: int = 16, seed: int = 0) -> LearnedAugment:
    torch.manual_seed(seed)
    return LearnedAugment(parse_learned(raw), 3, size)


def images(b: int = 8, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, h, w), generator=g, dtype=torch.uint8)


def gen(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randomise_heads(m: LearnedAugment, scale: float = 1.0, seed: int = 3) -> None:
    """Move the heads off their near-zero init so per-input ranges differ visibly."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype) * p.detach().abs().mean().clamp_min(0.05))


# ---- crop ---------------------------------------------------------------------------------------------------
def test_crop_prior_and_candidate_geometry() -> None:
    """Zero heads: a level's mass is exp(bias) / sum exp(bias) (``augmentation.py:126``); boxes sit on their cells."""
    m = module({"crop": {}}, size=64)  # the reference's Tiny grid: 16x16 at 0.375, 8x8 at 0.75, whole image
    with torch.no_grad():
        for h in m.net.local_heads:
            h[0].weight.zero_()
            h[1].bias.zero_()
        m.net.global_head.weight.zero_()
        m.net.global_head.bias.zero_()
    p = m.summary(images(2, 64, 64))["crop_probs"]
    assert p.shape == (2, 16 * 16 + 8 * 8 + 1)
    mass = torch.stack((p[:, :256].sum(1), p[:, 256:320].sum(1), p[:, 320]), dim=1)
    want = torch.softmax(torch.tensor([0.0, 1.0, 3.0]), 0)
    torch.testing.assert_close(mass, want.expand(2, 3), atol=1e-6, rtol=0)
    table, _ = crop_fam.candidate_table(m.cfg.crop)
    # paper-era jitter ranges of [2, 3, -1] ([ran] in the reference: mixmo_resnet_feature.py:319-330)
    assert crop_fam.side_ranges([0.375, 0.75, 1.0]) == [(0.3, 0.5625), (0.5625, 0.875), (0.9375, 1.0)]
    # cell (row 3, col 4) of the 8x8 level: 48 px box centred on (28, 36) -> top 4, left 12
    box = crop_fam.boxes(table, torch.tensor([256 + 3 * 8 + 4, 256, 320, 5]), (64, 64))
    torch.testing.assert_close(
        box * 64, torch.tensor([[4.0, 12, 48, 48], [0, 0, 48, 48], [0, 0, 64, 64], [0, 10, 24, 24]])
    )


@pytest.mark.parametrize("jitter", [False, True])
@pytest.mark.parametrize("hw", [(32, 32), (37, 29)])
def test_crop_boxes_are_valid_and_reproducible(jitter: bool, hw: tuple[int, int]) -> None:
    H, W = hw
    m = module({"crop": {"grid": [[4, 0.5, 0.0], [2, 0.75, 0.0], [1, 1.0, 0.0]], "jitter": jitter}})
    randomise_heads(m)
    x = images(64, H, W)
    d = m.distributions(x)
    src = torch.tensor([0.1, 0.2, 0.5, 0.6]).expand(64, 4)
    p1, p2 = ViewParams.identity(64), ViewParams.identity(64)
    draw = m.sample_into(d, p1, gen(5), source_crop=src)
    m.sample_into(d, p2, gen(5), source_crop=src)
    assert torch.equal(p1.crop, p2.crop)
    box, _, idx = crop_fam.sample_crop_boxes(d.crop_logp, m.crop_table, (H, W), gen(5), jitter)
    assert torch.equal(idx, draw.crop_index)
    torch.testing.assert_close(p1.crop, compose_crop(box, src))  # recorded in the original's frame
    torch.testing.assert_close(draw.logprob, d.crop_logp.gather(1, idx[:, None])[:, 0])
    px = box * torch.tensor([H, W, H, W])
    assert torch.allclose(px, px.round(), atol=1e-4), "boxes are on the pixel grid"
    assert bool((px[:, :2] >= 0).all() and (px[:, 0] + px[:, 2] <= H).all() and (px[:, 1] + px[:, 3] <= W).all())
    assert torch.equal(px[:, 2].round(), px[:, 3].round()), "square in pixels"
    side = m.crop_table[idx]
    short = min(H, W)
    if jitter:
        assert bool((px[:, 2] >= (side[:, 4] * short).round() - 0.5).all())
        assert bool((px[:, 2] <= (side[:, 5] * short).round() + 0.5).all())
    else:
        torch.testing.assert_close(px[:, 2], (side[:, 2] * short).round())
    assert len(set(idx.tolist())) > 3, "the randomised heads give several candidates"


def test_crop_sampling_is_exact() -> None:
    """Frequencies match p within 5 standard errors (HEAD's Exp-noise top-k gives 0.694 for p = 0.6: quirk 7.2)."""
    n = 40000
    p = torch.tensor([0.6, 0.3, 0.1])
    idx = crop_fam.sample_index(p.log().expand(n, 3), gen(0))
    freq = torch.bincount(idx, minlength=3).double() / n
    se = (p.double() * (1 - p.double()) / n).sqrt()
    assert bool(((freq - p.double()).abs() < 5 * se).all()), freq
    assert crop_fam.sample_index(torch.tensor([[0.0, -math.inf, 0.0]]).expand(2000, 3), gen(1)).ne(1).all()


# ---- angle / colour -----------------------------------------------------------------------------------------
def test_angle_record_is_in_range_and_reproducible() -> None:
    m = module({"angle": {"max_deg": 90}})
    randomise_heads(m, 1.0)
    d = m.distributions(images(256))
    lo, hi = d.angle_lo, d.angle_hi
    assert bool((lo >= 0).all() and (hi >= 0).all() and (lo <= math.pi / 2).all() and (hi <= math.pi / 2).all())
    assert float((lo - hi).detach().abs().max()) > 0.05, "per-input asymmetric ranges"
    p = ViewParams.identity(256)
    draw = m.sample_into(d, p, gen(2))
    q = ViewParams.identity(256)
    m.sample_into(d, q, gen(2))
    assert torch.equal(p.angle, q.angle) and p.angle.dtype == torch.float32 and p.angle.requires_grad
    assert bool((p.angle >= -lo - 1e-6).all() and (p.angle <= hi + 1e-6).all())
    r = (p.angle + lo) / (lo + hi)  # the reparameterised uniform
    assert abs(float(r.detach().mean()) - 0.5) < 5 * math.sqrt(1 / 12 / 256)
    torch.testing.assert_close(draw.entropy["angle"], lo + hi)
    assert torch.equal(draw.logprob, torch.zeros(256))
    s = m.summary(images(256))
    torch.testing.assert_close(s["angle_lo_deg"], torch.rad2deg(lo.detach()))


def test_color_record_is_in_range() -> None:
    m = module({"color": {"brightness": 0.8, "saturation": 0.0, "hue": 0.1}})
    randomise_heads(m, 1.0)
    x = images(128)
    d = m.distributions(x)
    assert m.color_factors == ("brightness", "hue")
    aug = Augmenter(AugmentConfig.symmetric(1, size=16, **{**OFF, "color_p": 0.0}))
    p = aug.sample(0, 128, generator=gen(0), input_size=(16, 16))
    perm = p.color_perm.clone()
    draw = m.sample_into(d, p, gen(3))
    lo, hi = d.color_lo.detach(), d.color_hi.detach()
    b, c, s, h = p.color.detach().unbind(1)
    assert bool(p.color_applied.all()) and torch.equal(p.color_perm, perm)
    assert bool((b >= 1 - lo[:, 0] - 1e-6).all() and (b <= 1 + hi[:, 0] + 1e-6).all())
    assert bool((h >= -lo[:, 1] - 1e-6).all() and (h <= hi[:, 1] + 1e-6).all())
    assert bool((lo[:, 0] <= 0.8).all() and (hi[:, 1] <= 0.1).all() and (lo > 0).any())
    assert torch.equal(c, torch.ones(128)) and torch.equal(s, torch.ones(128))
    torch.testing.assert_close(draw.entropy["color"], (d.color_lo + d.color_hi).sum(1))
    assert set(m.summary(x)) == {"color_brightness_lo", "color_brightness_hi", "color_hue_lo", "color_hue_hi"}


# ---- the pipeline -------------------------------------------------------------------------------------------
LEARN_ALL = {"crop": {"grid": [[4, 0.5, 0.0], [1, 1.0, 1.0]], "jitter": True}, "color": {"saturation": 0.5, "hue": 0.1}}


def test_learned_views_are_reproduced_by_the_slow_path() -> None:
    """Learned crop + colour on a non-square uint8 batch with every fixed op on: each view equals the torchvision
    per-sample path on its (detached) record, and ``Augmenter.apply`` replays it."""
    m = module(LEARN_ALL)
    randomise_heads(m, 2.0)
    aug = Augmenter(AugmentConfig.symmetric(2, size=17, flip_p=0.5, gray_p=0.3, blur_p=0.5, sol_p=0.3, rot_p=0.5))
    x = images(6, 37, 29)
    views = aug(x, generator=gen(4), learned=m)
    for v in views:
        assert not any(t.requires_grad for t in v.params.as_dict().values()), "records are stored detached"
        assert v.image.requires_grad and v.learned is not None
        assert bool(v.params.color_applied.all())
    assert_reproduced(x, views, aug)
    for i, v in enumerate(views):
        torch.testing.assert_close(aug.apply(x, v.params, i), v.image.detach(), atol=1e-5, rtol=0)


def test_learned_angle_view_is_reproduced_by_the_slow_path() -> None:
    """Learned angle (and crop): the slow path rotates with torchvision (bilinear, no fill) before normalising."""
    m = module({"angle": {"max_deg": 120}, "crop": {"grid": [[2, 0.75, 0.0], [1, 1.0, 0.0]]}})
    randomise_heads(m, 3.0)
    aug = Augmenter(AugmentConfig.symmetric(2, size=17, flip_p=0.5, normalize=False))
    x = images(6, 24, 24)
    views = aug(x, generator=gen(6), learned=m)
    for i, (v, cfg) in enumerate(zip(views, aug.views, strict=True)):
        assert int((v.params.angle.abs() > 1e-3).sum()) >= 4  # real rotations (a draw may land near 0)
        for b in range(6):
            p = ViewParams(cfg=cfg, **{**v.params[b : b + 1].as_dict(), "angle": torch.zeros(1)})
            want = TF.rotate(
                slow_view(x[b], p, 0, cfg), math.degrees(float(v.params.angle[b])), TF.InterpolationMode.BILINEAR
            )
            torch.testing.assert_close(v.image[b].detach(), want, atol=1e-4, rtol=0)
        torch.testing.assert_close(aug.apply(x, v.params, i), v.image.detach(), atol=1e-5, rtol=0)


def test_fixed_draws_come_first_and_learned_none_is_unchanged() -> None:
    """Each view samples its fixed parameters exactly as without ``learned`` (so view 0's other fields equal a fixed
    run's), then the learned draws; without ``learned`` views carry no draw."""
    aug = Augmenter(AugmentConfig.symmetric(2, size=12, flip_p=0.5, gray_p=0.5, color_p=0.8))
    x = images(8)
    fixed = aug(x, generator=gen(9))
    learned = aug(x, generator=gen(9), learned=module({"crop": {"grid": [[2, 0.5, 0.0]]}}))
    assert all(v.learned is None for v in fixed)
    for k in ("flip", "gray", "color", "color_perm", "color_applied"):
        assert torch.equal(getattr(fixed[0].params, k), getattr(learned[0].params, k)), k
    assert not torch.equal(fixed[0].params.crop, learned[0].params.crop)


# ---- gradients ----------------------------------------------------------------------------------------------
def _flat_grad(m: LearnedAugment, value: torch.Tensor) -> torch.Tensor:
    params = [p for p in m.parameters() if p.requires_grad]
    grads = torch.autograd.grad(value, params, allow_unused=True, retain_graph=True)
    return torch.cat(
        [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params, strict=True)]
    )


def _shift(m: LearnedAugment, u: torch.Tensor, eps: float) -> None:
    with torch.no_grad():
        i = 0
        for p in m.parameters():
            p.add_(eps * u[i : i + p.numel()].view_as(p))
            i += p.numel()


def _pathwise_objective(m: LearnedAugment, x: torch.Tensor) -> torch.Tensor:
    """Mean over 4 draws (common random numbers: a fixed seed) of a smooth non-linear loss of the record."""
    d = m.distributions(x)
    g = gen(11)
    total = x.new_zeros((), dtype=torch.float64)
    for _ in range(4):
        p = ViewParams.identity(x.shape[0])
        m.sample_into(d, p, g)
        total = total + ((p.angle - 0.3) ** 2 + 0.5 * torch.sin(3 * p.angle)).sum()
        b, _, s, h = p.color.unbind(1)
        total = total + ((b - 1.2) ** 2 + torch.cos(2 * s) + torch.sin(7 * h)).sum()
    return total / 4


def test_pathwise_gradient_matches_finite_differences() -> None:
    """Angle and colour (reparameterised): with common random numbers the estimate is a smooth function of the
    module's parameters; autograd equals central differences along random unit directions in float64. Step 1e-4:
    truncation eps^2 |f3| / 6 ~ 2e-9 for a third directional derivative |f3| up to 1e2, rounding 1e-16 |f| / eps
    ~ 1e-12; tolerance 1e-8."""
    m = module({"angle": {"max_deg": 90}, "color": {"saturation": 0.5, "hue": 0.2, "offset_shift": 1.0}}, size=8)
    randomise_heads(m, 1.0)
    m.double()
    x = torch.rand(5, 3, 8, 8, generator=gen(0), dtype=torch.float64)
    grad = _flat_grad(m, _pathwise_objective(m, x))
    assert float(grad.norm()) > 1e-2
    g = gen(12)
    eps = 1e-4
    for _ in range(4):
        u = torch.randn(grad.numel(), generator=g, dtype=torch.float64)
        u /= u.norm()
        _shift(m, u, eps)
        fp = float(_pathwise_objective(m, x).detach())
        _shift(m, u, -2 * eps)
        fm = float(_pathwise_objective(m, x).detach())
        _shift(m, u, eps)
        fd, ad = (fp - fm) / (2 * eps), float(grad @ u)
        assert abs(fd - ad) <= 1e-8, (fd, ad)


def test_pathwise_estimator_is_unbiased() -> None:
    """The angle estimator's mean over many draws equals the exact gradient of E[(theta - c)^2] =
    (hi + lo)^2 / 12 + ((hi - lo) / 2 - c)^2, within 5 standard errors (along 3 directions)."""
    m = module({"angle": {"max_deg": 90, "offset_shift": 0.5}}, size=8)
    randomise_heads(m, 1.0)
    m.double()
    x = torch.rand(3, 3, 8, 8, generator=gen(1), dtype=torch.float64)
    c = 0.2
    d = m.distributions(x)
    exact = _flat_grad(m, ((d.angle_hi + d.angle_lo) ** 2 / 12 + ((d.angle_hi - d.angle_lo) / 2 - c) ** 2).sum())
    g = gen(13)
    groups = []
    for _ in range(30):  # 30 independent estimates, each the mean of 40 draws
        d = m.distributions(x)
        total = x.new_zeros(())
        for _ in range(40):
            p = ViewParams.identity(3)
            m.sample_into(d, p, g)
            total = total + ((p.angle - c) ** 2).sum()
        groups.append(_flat_grad(m, total / 40))
    est = torch.stack(groups)
    dirs = torch.stack([exact, *torch.randn(2, exact.numel(), generator=gen(14), dtype=torch.float64)])
    proj, want = est @ dirs.T, exact @ dirs.T
    se = proj.std(0) / math.sqrt(len(groups))
    assert bool(((proj.mean(0) - want).abs() < 5 * se).all()), (proj.mean(0), want, se)
    assert float(want[0]) > 10 * float(se[0]), "the exact gradient is resolved"


def test_reinforce_estimator_matches_the_exact_gradient() -> None:
    """Crop (REINFORCE, no baseline): the mean of l(c) * grad log p(c) over N draws equals the exact gradient of
    sum_k p_k(phi) L_k for a fixed table of per-crop losses, within 5 standard errors along several directions (the
    estimator's variance computed exactly from the K per-candidate score vectors); and it is the same sum written
    with the draw counts (the log-probability is the drawn candidate's)."""
    m = module({"crop": {"grid": [[2, 0.5, 0.0], [1, 1.0, 0.5]]}}, size=8)
    randomise_heads(m, 1.0)
    m.double()
    x = torch.rand(2, 3, 8, 8, generator=gen(2), dtype=torch.float64)
    table = torch.tensor([0.3, -0.2, 1.0, 0.1, 0.6], dtype=torch.float64)  # 2x2 cells, then the whole image
    d = m.distributions(x)
    logp = d.crop_logp[:1]  # the first input
    exact = _flat_grad(m, (logp.exp()[0] * table).sum())
    score = torch.stack([_flat_grad(m, logp[0, k]) for k in range(5)])  # grad log p_k
    n = 20000
    draw = m.sample_into(LearnedDists(d.input_size, crop_logp=logp.expand(n, 5)), ViewParams.identity(n), gen(3))
    est = _flat_grad(m, (table[draw.crop_index] * draw.logprob).mean())
    counts = torch.bincount(draw.crop_index, minlength=5).double()
    torch.testing.assert_close(est, ((counts / n * table)[:, None] * score).sum(0), rtol=1e-9, atol=1e-12)
    p = logp.detach().exp()[0]
    dirs = torch.stack([exact, *torch.randn(3, exact.numel(), generator=gen(4), dtype=torch.float64)])
    proj_k = score @ dirs.T * table[:, None]  # (K, D): the estimator's value along each direction per candidate
    var = (p[:, None] * proj_k**2).sum(0) - (exact @ dirs.T) ** 2
    se = (var / n).sqrt()
    err = (est - exact) @ dirs.T
    assert bool((err.abs() < 5 * se).all()), (err, se)
    assert float(exact @ exact) > 10 * float(se[0]), "the exact gradient is resolved"


def test_gradient_through_the_pipeline_matches_finite_differences() -> None:
    """Learned angle + colour applied by ``Augmenter`` (rotation, colour jitter, flip, normalise in float32): the
    gradient of a loss of the view images reaches the module and matches central differences (common random
    numbers) along random unit directions. Smooth images keep the bilinear sampling's and clamps' kinks rare; step
    3e-3: float32 rounding of the ~6000-term loss / step ~ 3e-5, kink and truncation error a few % of the slope."""
    m = module({"angle": {"max_deg": 90, "offset_shift": 0.0}, "color": {"saturation": 0.5, "offset_shift": 1.0}})
    randomise_heads(m, 0.5)
    aug = Augmenter(AugmentConfig.symmetric(2, size=16, flip_p=0.5, color_p=0.0))
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 16), torch.linspace(0, 1, 16), indexing="ij")
    waves = torch.stack(
        [0.5 + 0.3 * torch.sin(2 * math.pi * (a * xx + b * yy)) for a, b in ((1, 0.5), (0.5, 1), (1, 1))]
    )
    x = waves * torch.rand(4, 3, 1, 1, generator=gen(0)) + 0.1
    ramp = torch.linspace(-1, 1, 16)

    def f() -> torch.Tensor:
        return sum((v.image * ramp).sum() for v in aug(x, generator=gen(3), learned=m)) / 100

    grad = _flat_grad(m, f())
    assert float(grad.norm()) > 1e-2
    g, eps = gen(7), 3e-3
    for _ in range(4):
        u = torch.randn(grad.numel(), generator=g)
        u /= u.norm()
        _shift(m, u, eps)
        fp = float(f().detach())
        _shift(m, u, -2 * eps)
        fm = float(f().detach())
        _shift(m, u, eps)
        fd, ad = (fp - fm) / (2 * eps), float(grad @ u)
        assert abs(fd - ad) <= 0.03 * abs(ad) + 1e-4, (fd, ad)
