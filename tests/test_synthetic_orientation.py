"""The Mario-Iggy analogue (augself.data.synthetic_orientation): labels, angle ranges, determinism, registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from augself.data.errors import DatasetError
from augself.data.registry import DATASETS, build_dataset, dataset_info
from augself.data.synthetic import SHAPES
from augself.data.synthetic_orientation import (
    CLASSES,
    KINDS,
    SyntheticOrientation,
    make_orientation_split,
    render_centred,
)

UP = {"heart-up", "arrow-up"}
DOWN = {"heart-down", "arrow-down"}
FREE = {"star", "crescent"}


def _render(shape: str, angles: list[float], size: int = 32) -> torch.Tensor:
    n = len(angles)
    k = np.full(n, SHAPES.index(shape))
    one = np.ones(n)
    return render_centred(k, np.asarray(angles), size, 0.3 * one, one, one, 0.7 * one).float()


@pytest.mark.parametrize("split", ["train", "test"])
def test_labels_balanced_and_angle_ranges(split: str) -> None:
    images, labels, f = make_orientation_split(600, 16, seed=1, split=split)
    assert images.shape == (600, 3, 16, 16) and images.dtype == torch.uint8
    assert labels.dtype == np.int64 and np.array_equal(np.bincount(labels), np.full(len(CLASSES), 100))
    eps = 1e-6
    for c, name in enumerate(CLASSES):
        a, kind = f["angle"][labels == c], f["kind"][labels == c]
        off = f["offset"][labels == c]
        if name in FREE:
            assert (kind == KINDS.index("rotation_free")).all() and np.isnan(off).all()
            if split == "test":  # the whole circle
                assert a.min() >= 0 and a.max() < 2 * math.pi and np.ptp(a) > math.pi
            else:  # training images show only the upright sector: the invariance is not in the data
                assert np.abs(a).max() <= math.pi / 4 + eps and np.ptp(a) > math.pi / 4
        else:
            assert (kind == KINDS.index("orientation_defined")).all()
            centre = 0.0 if name in UP else math.pi
            assert np.allclose(a - centre, off) and np.abs(off).max() <= math.pi / 4 + eps
            assert np.ptp(off) > math.pi / 4  # not collapsed to the canonical angle
    if split == "test":  # evenly spaced per class, as the reference's test set (mario_iggy.py:78-92)
        up = np.sort(f["offset"][labels == CLASSES.index("heart-up")])
        assert np.allclose(np.diff(up), (math.pi / 2) / 100, atol=1e-9) and math.isclose(up[0], -math.pi / 4)


def test_upright_and_upside_down_differ_and_angle_is_counter_clockwise() -> None:
    for shape in ("heart", "arrow"):
        up, down, quarter = _render(shape, [0.0, math.pi, math.pi / 2])
        # a centred object rotated by 180 degrees lands on the pixel grid: the down class is the up one flipped
        assert (torch.rot90(up, 2, dims=(1, 2)) - down).abs().max() <= 1.0
        # ... and really differs from it (object pixels of the two renderings disagree widely)
        on_up, on_down = up.amax(0) > 0, down.amax(0) > 0
        assert (on_up ^ on_down).sum() > 0.25 * on_up.sum(), shape
        # the angle is counter-clockwise on screen (torch.rot90 over (H, W) turns counter-clockwise)
        assert (torch.rot90(up, 1, dims=(1, 2)) - quarter).abs().max() <= 1.0


def test_angle_augmentation_turns_the_same_way_as_the_rendering() -> None:
    """The ``angle`` op rotating an upright image by theta gives (up to resampling blur) the image rendered at
    theta, not at -theta: the benchmark's ideal range [-45 - phi, 45 - phi] relies on the shared convention."""
    from augself.augment import ops

    up, plus, minus = _render("heart", [0.0, math.radians(30), math.radians(-30)], size=64)
    turned = ops.rotate(up[None] / 255, torch.tensor([math.radians(30)]))[0] * 255
    right, wrong = (turned - plus).abs().mean(), (turned - minus).abs().mean()
    assert right < 0.3 * wrong, (right, wrong)


def test_rotation_free_shapes_render_distinctly_at_any_angle() -> None:
    star, crescent = _render("star", [1.0]), _render("crescent", [1.0])
    assert (star.amax(0).gt(0) ^ crescent.amax(0).gt(0)).sum() > 50


def test_deterministic_and_seeded() -> None:
    a = SyntheticOrientation(60, 16, seed=3, split="train")
    b = SyntheticOrientation(60, 16, seed=3, split="train")
    assert torch.equal(a.images, b.images) and np.array_equal(a.factors["angle"], b.factors["angle"])
    other = SyntheticOrientation(60, 16, seed=4, split="train")
    test = SyntheticOrientation(60, 16, seed=3, split="test")
    assert not torch.equal(a.images, other.images) and not torch.equal(a.images, test.images)
    s = a[7]
    assert s["label"] == 7 % len(CLASSES) and torch.equal(s["image"], a.images[7])
    assert s["source_crop"].tolist() == [0.0, 0.0, 1.0, 1.0] and a.targets == a.labels.tolist()
    # black background: the corners are empty at every angle (the object is centred and fits the disk)
    assert int(a.images[:, :, 0, 0].max()) == 0


def test_registry() -> None:
    assert "synthetic_orientation" in DATASETS
    assert dataset_info("synthetic_orientation") == {"metric": "top1", "num_classes": len(CLASSES)}
    ds = build_dataset("synthetic_orientation", "test", size=16, seed=2, n=12)
    assert isinstance(ds, SyntheticOrientation) and len(ds) == 12 and ds.classes == list(CLASSES)
    assert ds.images.shape[-1] == 16 and ds.split == "test"
    assert len(build_dataset("synthetic_orientation", "train", size=8, seed=0)) == 1500  # reference's 250 a class
    with pytest.raises(DatasetError, match="unknown synthetic_orientation split"):
        build_dataset("synthetic_orientation", "unlabeled", size=16)
    with pytest.raises(TypeError, match="label"):
        build_dataset("synthetic_orientation", "train", size=16, n=6, label="shape")


def test_config_builds_a_supervised_run_dataset(tmp_path) -> None:
    """``data.name=synthetic_orientation`` with ``data.n`` reaches the reader through the pretraining driver."""
    from augself.config import load_config
    from augself.train.run import _data_kwargs

    cfg = load_config(None, ["method=supervised", "data.name=synthetic_orientation", "data.n=24", f"out={tmp_path}"])
    assert _data_kwargs(cfg) == {"n": 24}
    ds = build_dataset(cfg.data.name, "train", size=cfg.data.size, seed=cfg.seed, **_data_kwargs(cfg))
    assert len(ds) == 24 and len(ds.classes) == 6
