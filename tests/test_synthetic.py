"""Synthetic controlled-factor dataset: determinism, recorded factors match the pixels, dataset API."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
import torch

from augself.data.synthetic import (
    CHUNK,
    SHAPES,
    SYMMETRY,
    TASKS,
    SyntheticShapes,
    generate,
    make_split,
    task_labels,
)


@pytest.fixture(scope="module")
def rendered() -> tuple[torch.Tensor, dict[str, np.ndarray], torch.Tensor]:
    images, factors, mask = generate(7, 0, 600, 64, return_mask=True)
    return images, factors, mask


def test_deterministic_and_random_access() -> None:
    a, fa = make_split(CHUNK + 40, 32, seed=3)
    b, fb = make_split(CHUNK + 40, 32, seed=3)
    assert torch.equal(a, b) and all(np.array_equal(fa[k], fb[k]) for k in fa)
    part, fpart = generate(3, CHUNK - 20, CHUNK + 30, 32)  # crosses a chunk boundary
    assert torch.equal(part, a[CHUNK - 20 : CHUNK + 30])
    assert np.array_equal(fpart["hue"], fa["hue"][CHUNK - 20 : CHUNK + 30])
    small, _ = make_split(10, 32, seed=3)  # a prefix does not depend on n
    assert torch.equal(small, a[:10])
    other, _ = make_split(10, 32, seed=4)
    test, _ = make_split(10, 32, seed=3, split="test")
    assert not torch.equal(small, other) and not torch.equal(small, test)
    assert a.dtype == torch.uint8 and a.shape == (CHUNK + 40, 3, 32, 32)


def test_factor_ranges_and_labels(rendered) -> None:
    _, f, _ = rendered
    assert set(np.unique(f["shape"])) == set(range(len(SHAPES))) and len(SHAPES) >= 8
    assert ((f["hue"] >= 0) & (f["hue"] < 1)).all() and (f["angle"] < 2 * np.pi).all()
    for task, k in TASKS.items():
        y = task_labels(f, task)
        assert y.dtype == np.int64 and y.min() >= 0 and y.max() < k, task
        assert len(np.unique(y)) == k, task  # every class occurs in 600 samples
    pos = task_labels(f, "position")
    assert np.bincount(pos, minlength=9).min() > 600 / 9 / 2  # roughly balanced
    # orientation bins are over the symmetry period: a square rotated by 90 degrees keeps its label
    g = {k: v.copy() for k, v in f.items()}
    g["angle"] = np.remainder(g["angle"] + 2 * np.pi / np.asarray(SYMMETRY)[g["shape"]], 2 * np.pi)
    assert (task_labels(g, "orientation") == task_labels(f, "orientation")).mean() > 0.99


def test_position_matches_mask_centroid(rendered) -> None:
    _, f, mask = rendered
    S = mask.shape[-1]
    coords = (torch.arange(S, dtype=torch.float32) + 0.5) / S
    area = mask.sum((1, 2))
    cy = (mask.sum(2) * coords).sum(1) / area
    cx = (mask.sum(1) * coords).sum(1) / area
    central = np.isin(f["shape"], [0, 1, 2, 3, 4, 5])  # shapes whose centroid is the centre
    err = np.hypot(cy.numpy() - f["cy"], cx.numpy() - f["cx"])[central] * S
    assert err.max() < 1.0, err.max()  # pixels
    # the object is fully inside: the border is background
    border = torch.cat([mask[:, 0], mask[:, -1], mask[:, :, 0], mask[:, :, -1]], 1)
    assert border.max() < 0.05


def test_colour_matches_hue(rendered) -> None:
    images, f, mask = rendered
    for i in range(0, 600, 7):
        inside = mask[i] > 0.999
        rgb = images[i].float()[:, inside].mean(1) / 255
        h, s, v = colorsys.rgb_to_hsv(*rgb.tolist())
        dh = abs(h - f["hue"][i])
        assert min(dh, 1 - dh) < 0.01, (i, h, f["hue"][i])
        assert abs(s - f["saturation"][i]) < 0.02 and abs(v - f["value"][i]) < 0.01
    assert np.array_equal(task_labels(f, "color"), np.floor(f["hue"] * 8).astype(int))


def test_size_correlates_with_area(rendered) -> None:
    _, f, mask = rendered
    area = mask.sum((1, 2)).numpy()
    for k in range(len(SHAPES)):
        sel = f["shape"] == k
        r = np.corrcoef(f["scale"][sel] ** 2, area[sel])[0, 1]
        assert r > 0.98, (SHAPES[k], r)


def test_background_does_not_carry_colour_label(rendered) -> None:
    images, f, mask = rendered
    bg = (mask < 1e-3).unsqueeze(1)
    mean_bg = (images.float() * bg).sum((2, 3)) / bg.sum((2, 3))
    hue_bg = np.array([colorsys.rgb_to_hsv(*(m / 255).tolist())[0] for m in mean_bg])
    agree = (np.floor(hue_bg * 8) == task_labels(f, "color")).mean()
    assert agree < 0.25  # chance is 1/8


def test_dataset_api() -> None:
    ds = SyntheticShapes(50, size=64, seed=1, label="orientation")
    x = ds[3]
    assert x["image"].shape == (3, 64, 64) and x["image"].dtype == torch.uint8
    assert x["source_crop"].tolist() == [0, 0, 1, 1] and 0 <= x["label"] < 4
    assert ds.targets == ds.task_labels("orientation").tolist() and len(ds) == 50
    assert set(ds.factors) >= {"shape", "hue", "saturation", "value", "cy", "cx", "scale", "angle"}
    assert SyntheticShapes(5, label=None)[0]["label"] == -1
    assert SyntheticShapes(5, label="shape").classes == list(SHAPES)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 64, 64)
    with pytest.raises(ValueError, match="valid"):
        SyntheticShapes(5, label="texture")
