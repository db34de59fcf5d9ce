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
    aug = Augmenter(AugmentConfig.symmetric(1, size=8, color_p=1.0, sol_p=1.0, rot_p=1.0))
    x = torch.randint(0, 256, (2, 3, 12, 12), dtype=torch.uint8)
    p = aug(x, generator=torch.Generator().manual_seed(0))[0].params
    text = describe(p, 0)
    assert f"b{float(p.color[0, 0]):.2f}" in text and f"sol {float(p.sol_threshold[0]):.2f}" in text
    assert "".join("bcsh"[i] for i in p.color_perm[0].tolist()) in text


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """What the preview draws: text blocks, column titles and the shapes of the shown images (per imshow call)."""
    from matplotlib.axes import Axes

    seen: dict[str, list] = {"text": [], "title": [], "shape": []}
    text, title, imshow = Axes.text, Axes.set_title, Axes.imshow

    def spy_text(self, x, y, s, *a, **k):  # type: ignore[no-untyped-def]
        seen["text"].append(str(s))
        return text(self, x, y, s, *a, **k)

    def spy_title(self, label, *a, **k):  # type: ignore[no-untyped-def]
        seen["title"].append(str(label))
        return title(self, label, *a, **k)

    def spy_imshow(self, x, *a, **k):  # type: ignore[no-untyped-def]
        seen["shape"].append(tuple(x.shape[:2]))
        return imshow(self, x, *a, **k)

    monkeypatch.setattr(Axes, "text", spy_text)
    monkeypatch.setattr(Axes, "set_title", spy_title)
    monkeypatch.setattr(Axes, "imshow", spy_imshow)
    return seen


def _records(text: str) -> list[str]:
    """The per-view record lines of one row's text (before the targets)."""
    return text.split("targets (1 - 2):")[0].splitlines()


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  name: synthetic\n  size: 16\naugment:\n  size: 16\n" + body)
    return path


def test_preview_without_config_shows_its_own_rotation_and_solarize(tmp_path: Path, drawn: dict[str, list]) -> None:
    # the control for the config tests below: the default pipeline applies rotation and solarize
    preview_dataset("synthetic", tmp_path / "p.png", size=16, n_pairs=6, seed=0)
    rows = drawn["text"]
    assert len(rows) == 6 and all("rot:" in t and "sol:" in t for t in rows)
    assert any(" rot " in line for t in rows for line in _records(t))
    assert any(" sol " in line for t in rows for line in _records(t))


def test_preview_config_shows_that_configs_views(tmp_path: Path, drawn: dict[str, list]) -> None:
    # configs/cpu/simclr_small.yaml: generated data at 32 px, no blur, no solarize, no rotation
    out = preview_dataset(out=tmp_path / "p.png", n_pairs=6, seed=0, config=REPO / "configs/cpu/simclr_small.yaml")
    _assert_png(out, rows=6)
    rows = drawn["text"]
    assert len(rows) == 6
    for t in rows:
        assert "rot" not in t and "sol" not in t and "blur:" not in t  # neither records nor targets
        assert "crop:" in t and "color:" in t and "flip:" in t
    assert drawn["title"][:3] == ["source", "view 1", "view 2"] and len(drawn["title"]) == 3
    assert set(drawn["shape"]) == {(32, 32)}  # data.size and augment.size of the config


def test_preview_config_per_view_settings_and_overrides(tmp_path: Path, drawn: dict[str, list]) -> None:
    cfg = _config(tmp_path, "  views:\n    - {}\n    - {}\n")
    preview_dataset(out=tmp_path / "p.png", n_pairs=4, config=cfg, overrides=["augment.views=[{sol_p: 1}, {size: 8}]"])
    assert len(drawn["text"]) == 4
    for t in drawn["text"]:
        records = _records(t)  # three lines per view
        assert records[0].startswith("view 1:") and records[3].startswith("view 2:")
        assert "sol " in "\n".join(records[:3]) and "sol " not in "\n".join(records[3:])
        assert "sol:" in t  # the solarize target of views 1 and 2
    assert drawn["shape"][:3] == [(16, 16), (16, 16), (8, 8)]  # source, view 1, view 2 (the override)


def test_preview_config_with_essl_shows_the_rotation_view(tmp_path: Path, drawn: dict[str, list]) -> None:
    cfg = _config(tmp_path, "essl:\n  weight: 0.0\n")
    preview_dataset(out=tmp_path / "a.png", n_pairs=2, config=cfg)
    assert drawn["title"] == ["source", "view 1", "view 2"] * 1 and drawn["shape"][:3] == [(16, 16)] * 3
    drawn["title"].clear(), drawn["shape"].clear(), drawn["text"].clear()
    out = preview_dataset(out=tmp_path / "b.png", n_pairs=2, config=cfg, overrides=["essl.weight=0.4"])
    assert out.exists()
    titles = drawn["title"]
    assert titles[:3] == ["source", "view 1", "view 2"] and titles[3].startswith("E-SSL rotation view")
    assert drawn["shape"][:4] == [(16, 16), (16, 16), (16, 16), (8, 8)]  # E-SSL: half the view size
    for t in drawn["text"]:
        assert _records(t)[6].startswith("E-SSL rotation view") and " rot " not in _records(t)[6:]


def test_preview_cli_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from augself.cli import main

    cfg = _config(tmp_path, "")
    out = tmp_path / "p.png"
    assert main(["preview", "--config", str(cfg), "--out", str(out), "--pairs", "2", "essl.weight=0.4"]) == 0
    assert out.exists() and str(out) in capsys.readouterr().out
    bad = [
        (["--config", str(cfg), "augment.bogus=1"], "bogus"),
        (["--config", str(tmp_path / "missing.yaml")], "missing.yaml"),
        (["--config", str(cfg), "--size", "32"], "augment.size"),
        (["essl.weight=0.4"], "need a config"),
    ]
    for args, hint in bad:
        out2 = tmp_path / "never.png"
        assert main(["preview", *args, "--out", str(out2)]) == 2, args
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("augself preview: error:") and hint in err, err
        assert not out2.exists()


def test_preview_help_names_the_default_pipeline(capsys: pytest.CaptureFixture[str]) -> None:
    from augself.augment.preview import default_preview_augment
    from augself.cli import main

    with pytest.raises(SystemExit):
        main(["preview", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    v = default_preview_augment().views[0]
    lo, hi = v.crop_scale
    expect = (
        f"crop {lo:g}-{hi:g}, flip {v.flip_p:g}, jitter {v.color_p:g}, grayscale {v.gray_p:g}, blur {v.blur_p:g}) "
        f"plus solarize {v.sol_p:g} and rotation {v.rot_p:g}"
    )
    assert "--config" in text and expect in text, text
