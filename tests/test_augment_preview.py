"""`augself preview`: a PNG grid of view pairs from the generated set or an image folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from augself.augment import AugmentConfig, Augmenter
from augself.augment.preview import describe, preview_dataset


def _assert_png(path: Path, rows: int) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        im.load()
        w, h = im.size
        pixels = np.asarray(im.convert("L"))
    assert w > 500 and h > 150 * rows  # one row per pair
    assert pixels.std() > 10  # not a blank canvas


def test_preview_synthetic_writes_png(tmp_path: Path) -> None:
    out = preview_dataset("synthetic", tmp_path / "sub" / "p.png", size=16, n_pairs=2, seed=1)
    assert out == tmp_path / "sub" / "p.png"
    _assert_png(out, rows=2)


def test_preview_image_folder_with_variable_sizes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for k, (h, w) in enumerate([(40, 70), (90, 30), (33, 33)]):
        d = tmp_path / "data" / f"class{k % 2}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(d / f"img{k}.png")
    out = preview_dataset(str(tmp_path / "data"), tmp_path / "f.png", size=16, n_pairs=3)
    _assert_png(out, rows=1)


def test_preview_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_pairs"):
        preview_dataset("synthetic", tmp_path / "x.png", n_pairs=0)
    with pytest.raises(ValueError, match="unknown dataset"):
        preview_dataset("no_such_set", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_describe_shows_recorded_values() -> None:
    aug = Augmenter(AugmentConfig.symmetric(1, size=8, jitter_p=1.0, solarize_p=1.0, rotate_p=1.0))
    x = torch.randint(0, 256, (2, 3, 12, 12), dtype=torch.uint8)
    p = aug(x, generator=torch.Generator().manual_seed(0))[0].params
    text = describe(p, 0)
    assert f"b{float(p.color[0, 0]):.2f}" in text and f"sol {float(p.threshold[0]):.2f}" in text
    assert "".join("bcsh"[i] for i in p.order[0].tolist()) in text
