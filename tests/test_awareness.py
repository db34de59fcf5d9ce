"""Awareness report: invariance and predictability of augmentations, on backbones with known behaviour."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from augself.augment.ops import GRAY_WEIGHTS
from augself.eval.awareness import awareness_report, run_awareness

pytestmark = pytest.mark.usefixtures("one_thread")


class ColourBlind(nn.Module):
    """Colour-blind by construction: luma (the pipeline's grayscale weights), per-image standardisation,
    then a fixed random conv + ReLU + average pool. Saturation, brightness and contrast changes leave it
    (nearly, up to clipping) unchanged; only hue's small luma changes reach it."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.register_buffer("w", torch.randn(32, 1, 3, 3, generator=g))
        self.register_buffer("luma", torch.tensor(GRAY_WEIGHTS).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (x * self.luma).sum(1, keepdim=True)
        y = (y - y.mean((2, 3), keepdim=True)) / (y.std((2, 3), keepdim=True) + 1e-3)
        return F.relu(F.conv2d(y, self.w, padding=1)).mean((2, 3))


class ChannelStats(nn.Module):
    """Colour-sensitive: per-channel mean and std of the normalised image (flip/rotation invariant)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)


def _images(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Smooth random colour images (bilinear upsampling of 4 x 4 noise), uint8."""
    g = torch.Generator().manual_seed(seed)
    x = F.interpolate(torch.rand(n, 3, 4, 4, generator=g), size=(size, size), mode="bilinear", align_corners=False)
    return (x * 255).round().to(torch.uint8)


KW = dict(mean=(0.5,) * 3, std=(0.25,) * 3, device="cpu", progress=False)


def test_colour_blind_backbone_is_colour_invariant_and_unaware() -> None:
    imgs = _images(300)
    kw = dict(augmentations=("color",), strengths={"color": (0.5, 1.0)}, probe_steps=150, **KW)
    blind = awareness_report(ColourBlind(), imgs, **kw)
    sens = awareness_report(ChannelStats(), imgs, **kw)

    b_inv, s_inv = blind["invariance"]["color"], sens["invariance"]["color"]
    assert [r["strength"] for r in b_inv] == [0.5, 1.0]
    assert all(r["positive"] > 0.99 for r in b_inv)  # f(x) ~ f(t(x))
    assert all(r["normalised"] > 0.8 for r in b_inv)
    assert all(s["normalised"] < b["normalised"] - 0.15 for s, b in zip(s_inv, b_inv, strict=True))
    assert s_inv[1]["normalised"] < b_inv[1]["normalised"] - 0.3
    assert s_inv[1]["positive"] < s_inv[0]["positive"]  # stronger jitter moves features further

    b_pred, s_pred = blind["predictability"]["color"], sens["predictability"]["color"]
    assert b_pred["metric"] == "r2" and set(b_pred["per_dim"]) == {
        "d_brightness",
        "d_contrast",
        "d_saturation",
        "d_hue",
    }
    assert b_pred["score"] <= 0.1, b_pred
    assert s_pred["score"] >= 0.4 and s_pred["per_dim"]["d_brightness"] > 0.8, s_pred
    assert s_pred["n_test"] == 2 * 60 and s_pred["n_train"] == 2 * 180  # 60/20/20 images, both orders
    json.dumps(blind)  # serialisable


def test_invariance_to_flip_and_rotation_and_class_probes() -> None:
    imgs = _images(200, seed=1)
    kw = dict(augmentations=("flip", "rot"), probe_steps=150, **KW)
    stats = awareness_report(ChannelStats(), imgs, **kw)  # exactly flip/rotation invariant
    for name in ("flip", "rot"):
        (row,) = stats["invariance"][name]
        assert row["positive"] == pytest.approx(1.0, abs=1e-6)
        assert row["shuffled"] < 0.99 and row["normalised"] == pytest.approx(1.0, abs=1e-5)
        pred = stats["predictability"][name]
        assert pred["metric"] == "accuracy" and pred["score"] < pred["chance"] + 15  # nothing to predict
    blind = awareness_report(ColourBlind(), imgs, **kw)  # spatial features: sees flips and turns
    assert blind["invariance"]["rot"][0]["positive"] < 1.0 - 1e-4
    # "same flip state" / rotation difference mod 4 need both views (XOR-like): the MLP probe gets them
    assert blind["predictability"]["flip"]["score"] > 85.0
    assert blind["predictability"]["rot"]["score"] > 70.0
    again = awareness_report(ColourBlind(), imgs, **kw)
    assert again["predictability"]["rot"]["score"] == blind["predictability"]["rot"]["score"]  # seeded


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown augmentation 'colour'"):
        awareness_report(ChannelStats(), _images(20), augmentations=("colour",), **KW)
    with pytest.raises(ValueError, match="at least 10"):
        awareness_report(ChannelStats(), _images(5), **KW)


def _write_folder(root, n_per_class: int = 12) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in ("a", "b"):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n_per_class):
                Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(d / f"{i}.png")


def test_run_awareness_writes_json_markdown_png(tmp_path) -> None:
    from augself.models.backbones import build_backbone, save_backbone

    _write_folder(tmp_path / "imgs")
    torch.manual_seed(0)
    run = tmp_path / "run_a"
    save_backbone(build_backbone("small_cnn", widths=(4, 8, 8, 16)), run / "backbone.pt")
    (run / "config.yaml").write_text("augment:\n  size: 12\n  mean: [0.4, 0.4, 0.4]\n  std: [0.2, 0.2, 0.2]\n")
    bare = tmp_path / "plain.pt"
    save_backbone(build_backbone("small_cnn", widths=(4, 8, 8, 16)), bare)
    out = tmp_path / "out"
    # a bare backbone file has no recorded preprocessing: a clear error, never a silent default
    with pytest.raises(ValueError, match="--size"):
        run_awareness([run, bare], str(tmp_path / "imgs"), tmp_path / "o0", n=16, progress=False)
    (tmp_path / "plain").mkdir()
    bare = bare.rename(tmp_path / "plain" / "backbone.pt")
    (tmp_path / "plain" / "config.yaml").write_text("augment:\n  size: 16\n")
    res = run_awareness(
        [run, bare.parent],
        str(tmp_path / "imgs"),
        out,
        n=16,
        seed=0,
        device="cpu",
        progress=False,
        augmentations=("color", "flip"),
        probe_steps=10,
    )
    assert {p.name for p in out.iterdir()} == {"awareness.json", "awareness.md", "awareness.png"}
    data = json.loads((out / "awareness.json").read_text())
    assert [r["name"] for r in data["runs"]] == ["run_a", "plain"]
    a, b = data["runs"]
    assert a["preprocessing"]["size"] == 12 and a["preprocessing"]["mean"] == [0.4] * 3  # from config.yaml
    assert b["preprocessing"]["size"] == 16 and b["preprocessing"]["mean"] == [0.5] * 3  # default mean
    assert data["n_images"] == 16 and res["runs"][0]["report"]["settings"]["size"] == 12
    md = (out / "awareness.md").read_text()
    assert "| run_a | plain |" in md and "strength 2" in md and "| flip (p=0.5) | accuracy % |" in md
    assert (out / "awareness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FileNotFoundError, match="backbone not found"):
        run_awareness([tmp_path / "nope"], str(tmp_path / "imgs"), out, n=16, progress=False)


def test_augmentations_and_their_tables_come_from_the_registry() -> None:
    import augself.eval.awareness as aw
    from augself.augment.specs import awareness_table, strength_label

    table = awareness_table()
    assert table.augmentations == aw.AUGMENTATIONS and table.strengths == aw.DEFAULT_STRENGTHS
    assert "sharp" in aw.AUGMENTATIONS and "sharp" not in aw.DEFAULT_AUGMENTATIONS  # added by its spec only
    rep = awareness_report(ChannelStats(), _images(30), augmentations=("sharp",), probe_steps=5, **KW)
    rows = rep["invariance"]["sharp"]
    assert [r["label"] for r in rows] == [strength_label("sharp", s) for s in table.strengths["sharp"]]
    pred = rep["predictability"]["sharp"]
    assert pred["setting"] == strength_label("sharp", table.probe_strength["sharp"])
    assert pred["metric"] == "r2" and list(pred["per_dim"]) == table.target_dims["sharp"]
    default = awareness_report(ChannelStats(), _images(12), predictability=False, **KW)
    assert default["settings"]["augmentations"] == list(table.defaults)
    with pytest.raises(ValueError, match=r"strengths given for unknown augmentation 'colour'.*Did you mean 'color'"):
        awareness_report(ChannelStats(), _images(12), strengths={"colour": (1.0,)}, **KW)
