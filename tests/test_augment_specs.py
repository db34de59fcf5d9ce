"""The augmentation registry (issue 15): tables derived from the specs, per-view targets, one crop frame, and the
random sharpness added through its spec alone."""

from __future__ import annotations

from dataclasses import fields

import pytest
import torch
import torch.nn.functional as F

from augself.augment import TARGETS, AugmentConfig, Augmenter, ViewConfig, ViewParams, relative_targets
from augself.augment.sample import sample_params
from augself.augment.specs import REGISTRY, awareness_table, check_augmentations, isolated_view, strength_label
from augself.augment.specs.registry import RECORD_FIELDS, describe, invariance_params, preview_targets
from augself.augself_head import AugSelf


def test_tables_are_derived_from_the_specs() -> None:
    assert list(REGISTRY) == ["crop", "flip", "color", "gray", "blur", "sol", "rot", "sharp", "angle"]
    assert set(TARGETS) == {t.name for s in REGISTRY.values() for t in s.targets}
    assert [f.name for f in fields(ViewConfig)] == [
        "size",
        *(f.name for s in REGISTRY.values() for f in s.config),
        "mean",
        "std",
        "normalize",
    ]
    ident = ViewParams.identity(3)
    assert list(ident.as_dict()) == list(RECORD_FIELDS)
    for name, f in RECORD_FIELDS.items():
        assert torch.equal(getattr(ident, name), f.identity(3, torch.device("cpu")))


def test_awareness_table_keeps_the_report_values() -> None:
    """The six original entries hold exactly the values the awareness report's own tables held."""
    t = awareness_table()
    assert t.augmentations[:6] == ("crop", "color", "flip", "blur", "rot", "sol")
    assert t.defaults == ("crop", "color", "flip", "blur", "rot")
    legacy_strengths = {
        "crop": (0.8, 0.5, 0.2),
        "color": (0.5, 1.0, 2.0),
        "blur": (0.5, 1.0, 2.0),
        "flip": (1.0,),
        "rot": (1.0,),
        "sol": (1.0,),
    }
    assert {k: t.strengths[k] for k in legacy_strengths} == legacy_strengths
    legacy_probe = {"crop": 0.2, "color": 1.0, "blur": 2.0, "flip": 0.5, "rot": 1.0, "sol": 1.0}
    assert {k: t.probe_strength[k] for k in legacy_probe} == legacy_probe
    assert {k: t.target_dims[k] for k in ("crop", "color", "blur", "sol")} == {
        "crop": ["d_cy", "d_cx", "d_h", "d_w"],
        "color": ["d_brightness", "d_contrast", "d_saturation", "d_hue"],
        "blur": ["d_sigma"],
        "sol": ["d_threshold"],
    }
    labels = {n: strength_label(n, 0.5) for n in legacy_probe}
    assert labels == {
        "crop": "scale>=0.5",
        "color": "strength 0.5",
        "blur": "sigma<=0.5",
        "flip": "p=0.5",
        "rot": "p=0.5",
        "sol": "p=0.5",
    }
    assert "sharp" in t.augmentations and "sharp" in t.target_dims


def test_isolated_view_matches_the_report_isolation() -> None:
    off = dict(
        size=24,
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        flip_p=0.0,
        color_p=0.0,
        gray_p=0.0,
        blur_p=0.0,
        sol_p=0.0,
        rot_p=0.0,
        mean=(0.4, 0.5, 0.6),
        std=(0.2, 0.2, 0.2),
    )
    want = {
        None: {},
        "crop": {"crop_scale": (0.5, 1.0), "crop_ratio": (3 / 4, 4 / 3)},
        "color": {"color_p": 1.0, "color_strength": 0.5},
        "blur": {"blur_p": 1.0, "blur_sigma": (0.1, 0.5)},
        "flip": {"flip_p": 0.5},
        "rot": {"rot_p": 0.5},
        "sol": {"sol_p": 0.5},
        "sharp": {"sharp_p": 1.0, "sharp_factor": (0.5, 1.5)},
    }
    for name, kw in want.items():
        assert isolated_view(name, 0.5, 24, (0.4, 0.5, 0.6), (0.2, 0.2, 0.2)) == ViewConfig(**{**off, **kw}), name
    with pytest.raises(ValueError, match=r"unknown augmentation 'colour'.*Did you mean 'color'"):
        isolated_view("colour", 1.0, 24, (0.5,), (0.2,))
    assert check_augmentations(["crop", "rot", "crop"]) == ["crop", "rot"]
    with pytest.raises(ValueError, match="unknown augmentation 'gray'"):
        check_augmentations(["gray"])  # no target, no awareness entry
    with pytest.raises(ValueError, match="no augmentations"):
        check_augmentations([])


def test_rotation_invariance_uses_real_turns() -> None:
    cfg = isolated_view("rot", 1.0, 8, (0.5,), (0.2,))
    p = sample_params(cfg, 200, generator=torch.Generator().manual_seed(0))
    q = invariance_params("rot", p, cfg, torch.Generator().manual_seed(1))
    assert set(q.rot.tolist()) == {1, 2, 3}
    same = sample_params(cfg.with_(rot_p=0.5), 50, generator=torch.Generator().manual_seed(0))
    assert invariance_params("rot", same, cfg.with_(rot_p=0.5), torch.Generator()) is same


def test_original_draw_stream_is_kept_when_new_augmentations_are_off() -> None:
    """A view without the later augmentations consumes exactly the original draws: the crop's (10 + 10 + 2
    per sample), one shared block of 9, then colour's 4 + 4, so seeds keep their views."""
    B = 7
    g = torch.Generator().manual_seed(3)
    sample_params(ViewConfig(sol_p=0.5, rot_p=0.5), B, generator=g, input_size=(20, 20))
    ref = torch.Generator().manual_seed(3)
    for width in (10, 10, 2, 9, 4, 4):
        torch.rand((B, width), generator=ref)
    assert torch.equal(g.get_state(), ref.get_state())
    on = torch.Generator().manual_seed(3)
    sample_params(ViewConfig(sharp_p=0.5), B, generator=on, input_size=(20, 20))
    assert not torch.equal(on.get_state(), ref.get_state())  # the sharpness draws come after


def test_one_crop_frame_from_sampling_on() -> None:
    """``Augmenter.sample`` with ``source_crop`` records the crop in the original's frame, and ``apply`` with
    the same ``source_crop`` reproduces the view ``forward`` made from the same draws."""
    x = torch.randint(0, 256, (5, 3, 24, 30), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    sc = torch.tensor([0.25, 0.1, 0.5, 0.8]).repeat(5, 1)
    aug = Augmenter(AugmentConfig.symmetric(1, size=10))
    inner = aug.sample(0, 5, torch.Generator().manual_seed(1), input_size=(24, 30))
    outer = aug.sample(0, 5, torch.Generator().manual_seed(1), input_size=(24, 30), source_crop=sc)
    torch.testing.assert_close(outer.crop[:, :2], sc[:, :2] + inner.crop[:, :2] * sc[:, 2:], rtol=0, atol=1e-6)
    torch.testing.assert_close(outer.crop[:, 2:], inner.crop[:, 2:] * sc[:, 2:], rtol=0, atol=1e-6)
    view = aug(x, source_crop=sc, generator=torch.Generator().manual_seed(1))[0]
    assert torch.equal(view.params.crop, outer.crop)
    assert torch.equal(aug.apply(x, outer, 0, source_crop=sc), view.image)


def _colour_vector(p: ViewParams, s: float) -> torch.Tensor:
    """Normalised colour parameters by hand: ranges 0.4 s (b, c, s) and 0.1 s (h), widths twice that."""
    width = torch.tensor([0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s])
    v = (p.color - torch.tensor([1.0, 1.0, 1.0, 0.0])) / width
    return torch.where(p.color_applied.unsqueeze(1), v, torch.zeros_like(v))


def test_per_view_colour_strength_gives_each_view_its_own_target() -> None:
    """View 1 weak (s = 0.5), view 2 strong (s = 2): each view's colour vector uses its own ranges, in the
    targets and in the AugSelf head's loss (the head gets no config: the records carry them)."""
    v1, v2 = ViewConfig(size=8, color_strength=0.5, color_p=1.0), ViewConfig(size=8, color_strength=2.0, color_p=1.0)
    aug = Augmenter(AugmentConfig(views=[v1, v2]))
    x = torch.randint(0, 256, (16, 3, 12, 12), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    p1, p2 = (v.params for v in aug(x, generator=torch.Generator().manual_seed(2)))
    want12 = _colour_vector(p1, 0.5) - _colour_vector(p2, 2.0)
    got = relative_targets(p1, p2, ["color"])["color"]
    torch.testing.assert_close(got, want12, rtol=0, atol=1e-6)
    assert got.abs().max() <= 1.0 + 1e-6  # both entries in [-0.5, 0.5]
    wrong = _colour_vector(p1, 0.5) - _colour_vector(p2, 0.5)  # view 2 normalised with view 1's range (the bug)
    assert (got - wrong).abs().max() > 0.1
    with pytest.raises(ValueError, match="differs from the ViewConfig"):
        relative_targets(p1, p2, ["color"], v1, v1)
    torch.manual_seed(0)
    head = AugSelf(6, {"color": 1.0}, hidden_dim=8).eval()
    y1, y2 = torch.randn(16, 6), torch.randn(16, 6)
    loss, logs = head(y1, y2, p1, p2)
    pred = head.heads["color"](torch.cat([torch.cat([y1, y2], 1), torch.cat([y2, y1], 1)]))
    expected = F.mse_loss(torch.tanh(pred), torch.cat([want12, -want12]))
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)
    assert set(logs) == {"augself/color"}


def test_sharpness_target_and_labels() -> None:
    """The new augmentation's target, its preview label and its place in the preview's target list."""
    v1 = ViewConfig(size=8, sharp_p=1.0, sharp_factor=(0.5, 1.5))
    v2 = ViewConfig(size=8, sharp_p=0.5, sharp_factor=(0.0, 2.0))
    p1 = sample_params(v1, 64, generator=torch.Generator().manual_seed(0))
    p2 = sample_params(v2, 64, generator=torch.Generator().manual_seed(1))
    assert (p1.sharp >= 0.5).all() and (p1.sharp <= 1.5).all() and (p2.sharp == 1).any() and (p2.sharp != 1).any()
    t = relative_targets(p1, p2, ["sharp"])["sharp"]
    torch.testing.assert_close(t, ((p1.sharp - 1) / 1.0 - (p2.sharp - 1) / 2.0).unsqueeze(1))
    assert "sharp" in describe(p1, 0) and "sharp" not in describe(p2, int((p2.sharp == 1).nonzero()[0]))
    assert "sharp" in preview_targets([ViewConfig(), v2]) and "sharp" not in preview_targets([ViewConfig()])
    with pytest.raises(ValueError, match="sharp_factor"):
        ViewConfig(sharp_factor=(1.5, 0.5))
    with pytest.raises(ValueError, match="sharp_p must be a probability"):
        ViewConfig(sharp_p=1.5)


def test_record_rejects_unknown_fields_and_fills_missing_with_identity() -> None:
    with pytest.raises(TypeError, match="unknown ViewParams fields"):
        ViewParams(crop=torch.zeros(2, 4), sharpness=torch.ones(2))
    p = ViewParams(crop=torch.zeros(2, 4), rot=torch.ones(2, dtype=torch.long))
    assert (p.sharp == 1).all() and (p.sol_threshold == 1).all() and not p.flip.any() and p.cfg is None
    with pytest.raises(ValueError, match="needs the view's ViewConfig"):
        relative_targets(p, p, ["color"])
    assert torch.equal(relative_targets(p, p, ["rot"])["rot"], torch.zeros(2, dtype=torch.long))


def test_vocabulary_maps_each_name_to_one_augmentation() -> None:
    from augself.augment.specs.registry import vocabulary

    v = vocabulary()
    assert v["sol"] == {
        "config": ("sol_p", "sol_threshold"),
        "record": ("sol", "sol_threshold"),
        "targets": ("sol",),
        "logs": ("train/augself/sol",),
        "aliases": {"solarize_p": "sol_p", "solarize_threshold": "sol_threshold"},
        "target_aliases": {},
    }
    assert v["color"]["target_aliases"] == {"hue": "color_hue"}
    assert v["color"]["targets"] == ("color", "color_hue")
    assert v["color"]["record"] == ("color_applied", "color", "color_perm")
    assert v["rot"]["config"] == ("rot_p",) and v["rot"]["aliases"] == {"rotate_p": "rot_p"}
    owners = [n for names in v.values() for n in {*names["config"], *names["record"], *names["targets"]}]
    assert len(owners) == len(set(owners))  # no name claimed by two augmentations
    for name, names in v.items():  # each name is the augmentation's or starts with it
        for n in (*names["config"], *names["record"], *names["targets"]):
            assert n == name or n.startswith(name + "_"), (name, n)
