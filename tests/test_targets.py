"""AugSelf targets on hand-built ViewParams (reference §2.2)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from augself.augment import TARGETS, ViewConfig, ViewParams, absolute_targets, relative_targets
from augself.augment.sample import sample_params

CFG = ViewConfig(sol_p=0.5, rot_p=0.5)
ALL = tuple(TARGETS)


def _random(seed: int, n: int = 16) -> ViewParams:
    return sample_params(CFG, n, generator=torch.Generator().manual_seed(seed), input_size=(32, 32))


def test_spec_table() -> None:
    assert {k: (v.dim, v.kind) for k, v in TARGETS.items()} == {
        "crop": (4, "regression"),
        "color": (4, "regression"),
        "color_hue": (2, "regression"),
        "flip": (1, "binary"),
        "blur": (1, "regression"),
        "rot": (4, "class"),
        "sol": (1, "regression"),
        "sharp": (1, "regression"),
        "angle": (2, "regression"),
    }


def test_shapes_and_dtypes() -> None:
    t = relative_targets(_random(0), _random(1), ALL, CFG)
    for name, spec in TARGETS.items():
        if spec.kind == "class":
            assert t[name].shape == (16,) and t[name].dtype == torch.long
        else:
            assert t[name].shape == (16, spec.dim) and t[name].dtype == torch.float32
    a = absolute_targets(_random(0), ALL, CFG)
    assert a["rot"].dtype == torch.long and a["crop"].shape == (16, 4) and a["flip"].shape == (16, 1)


def test_identical_views_give_zero_regression_targets() -> None:
    p = _random(0)
    t = relative_targets(p, p, ALL, CFG)
    for name in ("crop", "color", "blur", "sol"):
        assert torch.equal(t[name], torch.zeros_like(t[name])), name
    assert (t["flip"] == 1).all() and (t["rot"] == 0).all()
    torch.testing.assert_close(t["color_hue"], torch.tensor([[0.0, 1.0]]).expand(16, 2))  # circular: angle 0


def test_swapping_views_negates_regression_targets() -> None:
    a, b = _random(0), _random(1)
    b.flip = a.flip.clone()  # crop-x frame uses view a's flip: with equal flips the swap is an exact negation
    ab = relative_targets(a, b, ALL, CFG)
    ba = relative_targets(b, a, ALL, CFG)
    for name in ("crop", "color", "blur", "sol"):
        torch.testing.assert_close(ab[name], -ba[name])
    assert torch.equal(ab["flip"], ba["flip"])
    assert torch.equal((ab["rot"] + ba["rot"]) % 4, torch.zeros_like(ab["rot"]))
    torch.testing.assert_close(ab["color_hue"][:, 0], -ba["color_hue"][:, 0])  # sin negates, cos does not
    torch.testing.assert_close(ab["color_hue"][:, 1], ba["color_hue"][:, 1])


def test_circular_hue_target_is_a_function_of_what_the_views_show() -> None:
    """Shifts that differ by a full turn look identical: the hue target agrees, the paper's linear one does not."""
    a, b = ViewParams.identity(3), ViewParams.identity(3)
    a.color_applied = b.color_applied = torch.tensor([True, True, False])
    a.color[:, 3] = torch.tensor([0.45, 0.1, 0.3])
    b.color[:, 3] = torch.tensor([-0.45, 0.1, 0.2])
    cfg = ViewConfig(color_hue=0.5)
    t = relative_targets(a, b, ["color_hue", "color"], cfg)
    # d = 0.9 turns looks like -0.1: same circular target as a -0.1 shift, not as +0.9 on a line
    torch.testing.assert_close(t["color_hue"][0], torch.tensor([math.sin(-0.2 * math.pi), math.cos(-0.2 * math.pi)]))
    torch.testing.assert_close(t["color"][0, 3], torch.tensor(0.9))  # the paper's h / Δh entry
    torch.testing.assert_close(t["color_hue"][1], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(t["color_hue"][2], torch.tensor([0.0, 1.0]))  # jitter skipped: no shift
    torch.testing.assert_close(
        absolute_targets(a, ["color_hue"], cfg)["color_hue"][0],
        torch.tensor([math.sin(0.9 * math.pi), math.cos(0.9 * math.pi)]),
    )


def test_crop_target_values_and_flip_mirroring() -> None:
    a, b = ViewParams.identity(2), ViewParams.identity(2)
    a.crop = torch.tensor([[0.1, 0.2, 0.5, 0.4], [0.1, 0.2, 0.5, 0.4]])
    b.crop = torch.tensor([[0.3, 0.0, 0.6, 0.3], [0.3, 0.0, 0.6, 0.3]])
    a.flip = torch.tensor([False, True])
    b.flip = torch.tensor([True, False])  # view b's flip must NOT enter the crop target (quirk Q1)
    t = relative_targets(a, b, ["crop"], CFG)["crop"]
    cy_a, cx_a, cy_b, cx_b = 0.1 + 0.25, 0.2 + 0.2, 0.3 + 0.3, 0.0 + 0.15
    torch.testing.assert_close(t[0], torch.tensor([cy_a - cy_b, cx_a - cx_b, -0.1, 0.1]))
    torch.testing.assert_close(t[1], torch.tensor([cy_a - cy_b, (1 - cx_a) - (1 - cx_b), -0.1, 0.1]))
    torch.testing.assert_close(t[1, 1], -t[0, 1])
    torch.testing.assert_close(absolute_targets(a, ["crop"], CFG)["crop"][0], torch.tensor([cy_a, cx_a, 0.5, 0.4]))


def test_color_target_normalisation_and_unapplied_zero() -> None:
    a, b = ViewParams.identity(3), ViewParams.identity(3)
    a.color_applied = torch.tensor([True, True, False])
    a.color = torch.tensor([[1.4, 0.6, 1.2, 0.1], [1.0, 1.0, 1.0, 0.0], [1.4, 1.4, 1.4, 0.1]])
    t = relative_targets(a, b, ["color"], CFG)["color"]
    torch.testing.assert_close(t[0], torch.tensor([0.5, -0.5, 0.25, 0.5]))
    assert torch.equal(t[1], torch.zeros(4)) and torch.equal(t[2], torch.zeros(4))  # identity / not applied
    # colour strength 2 doubles the ranges, so the same factors give half the target
    strong = ViewConfig(color_strength=2.0)
    ts = relative_targets(a, b, ["color"], strong)["color"]
    lo, hi = strong.factor_range("brightness")
    torch.testing.assert_close(ts[0, 0], torch.tensor(0.4 / (hi - lo)))
    torch.testing.assert_close(ts[0, 3], torch.tensor(0.1 / 0.4))
    # degenerate range (Δ = 0) does not divide by zero
    flat = ViewConfig(color_brightness=0.0)
    assert torch.isfinite(relative_targets(a, b, ["color"], flat)["color"]).all()


def test_flip_blur_sol_rot_values() -> None:
    a, b = ViewParams.identity(4), ViewParams.identity(4)
    a.flip = torch.tensor([True, True, False, False])
    b.flip = torch.tensor([True, False, True, False])
    a.blur = torch.tensor([True, False, True, True])
    a.blur_sigma = torch.tensor([2.0, 0.0, 0.1, 1.05])
    b.blur = torch.tensor([True, True, False, True])
    b.blur_sigma = torch.tensor([0.1, 2.0, 0.0, 1.05])
    a.sol = torch.tensor([True, False, True, False])
    a.sol_threshold = torch.tensor([0.25, 1.0, 0.9, 1.0])
    a.rot = torch.tensor([0, 1, 2, 3])
    b.rot = torch.tensor([1, 1, 3, 0])
    t = relative_targets(a, b, ["flip", "blur", "sol", "rot"], CFG)
    assert torch.equal(t["flip"].squeeze(1), torch.tensor([1.0, 0.0, 0.0, 1.0]))
    torch.testing.assert_close(t["blur"].squeeze(1), torch.tensor([1.9, -2.0, 0.1, 0.0]) / 1.9)
    torch.testing.assert_close(t["sol"].squeeze(1), torch.tensor([-0.75, 0.0, -0.1, 0.0]))
    assert torch.equal(t["rot"], torch.tensor([3, 0, 3, 3]))
    ab = absolute_targets(a, ["rot", "sol", "blur", "flip"], CFG)
    assert torch.equal(ab["rot"], a.rot) and torch.equal(ab["flip"].squeeze(1), a.flip.float())
    torch.testing.assert_close(ab["sol"].squeeze(1), a.sol_threshold)
    torch.testing.assert_close(ab["blur"].squeeze(1), a.blur_sigma / 1.9)


def test_relative_equals_difference_of_absolute_when_unflipped() -> None:
    a, b = _random(2), _random(3)
    a.flip[:] = False
    rel = relative_targets(a, b, ["crop", "color", "blur", "sol"], CFG)
    ta, tb = absolute_targets(a, rel, CFG), absolute_targets(b, rel, CFG)
    for name in rel:
        torch.testing.assert_close(rel[name], ta[name] - tb[name])


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(ValueError, match=r"'colour'.*valid names.*Did you mean 'color'"):
        relative_targets(_random(0), _random(1), ["crop", "colour"], CFG)
    with pytest.raises(ValueError, match="valid names"):
        absolute_targets(_random(0), ["xyz"], CFG)


@settings(max_examples=25, deadline=None)
@given(
    seed_a=st.integers(0, 2**31 - 1),
    seed_b=st.integers(0, 2**31 - 1),
    strength=st.sampled_from([0.5, 1.0, 2.0]),
    n=st.integers(1, 9),
)
def test_target_properties(seed_a: int, seed_b: int, strength: float, n: int) -> None:
    """For any sampled records: a vs a is zero, swapping negates (equal flips), ranges hold, and
    flipping view a mirrors only the x-centre difference."""
    cfg = CFG.with_(color_strength=strength)
    a = sample_params(cfg, n, generator=torch.Generator().manual_seed(seed_a), input_size=(29, 31))
    b = sample_params(cfg, n, generator=torch.Generator().manual_seed(seed_b), input_size=(29, 31))
    same = relative_targets(a, a, ALL, cfg)
    for name in ("crop", "color", "blur", "sol"):
        assert torch.equal(same[name], torch.zeros_like(same[name])), name
    b.flip = a.flip.clone()
    ab, ba = relative_targets(a, b, ALL, cfg), relative_targets(b, a, ALL, cfg)
    for name in ("crop", "color", "blur", "sol"):
        torch.testing.assert_close(ab[name], -ba[name])
        # normalised by the configured ranges; unapplied blur has sigma 0, below the range: bound 2.0 / 1.9
        bound = 2.0 / 1.9 if name == "blur" else 1.0
        assert ab[name].abs().max() <= bound + 1e-6, name
    assert torch.equal((ab["rot"] + ba["rot"]) % 4, torch.zeros_like(ab["rot"]))
    a.flip = ~a.flip
    mirrored = relative_targets(a, b, ["crop"], cfg)["crop"]
    torch.testing.assert_close(mirrored[:, 1], -ab["crop"][:, 1])
    torch.testing.assert_close(mirrored[:, [0, 2, 3]], ab["crop"][:, [0, 2, 3]])
