"""Inspection of learned per-input augmentations (issue 16): preview labels and crop heat maps, the awareness
report's "Learned augmentation ranges" section.

The module under inspection has its heads' weights zeroed, so every input gets the distributions set by the heads'
biases; the expected numbers are computed here from the parameterisation (InstaAug ``distribution.py``: widths
``max * sigmoid(p - shift)``; crop logits + ``bias - log(n^2)``, one softmax), not read back from the module.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from matplotlib.axes import Axes

from augself.augment import AugmentConfig, Augmenter
from augself.augment.learned import LearnedAugment, parse_learned
from augself.augment.learned.crop import candidate_table
from augself.augment.preview import render_preview
from augself.augment.preview_learned import crop_levels, learned_label, render_crop_heatmaps
from augself.eval.awareness.learned import group_stats, learned_ranges
from augself.eval.report import learned_markdown, plot_learned

pytestmark = pytest.mark.usefixtures("one_thread")

PNG = b"\x89PNG\r\n\x1a\n"
GRID = [[4, 0.5, 0.0], [1, 1.0, 0.0]]
HOT = (0, 3)  # the 4x4 level's favoured cell: top row, right column
HOT_LOGIT = 5.0
ANGLE_RAW = (3.0, 1.0)  # global head outputs (hi, lo)
COLOR_RAW = (4.0, 3.0)  # brightness (hi, lo)


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _expected() -> dict[str, float]:
    """The constant module's distributions from the parameterisation (module docstring)."""
    lo_deg, hi_deg = 180.0 * _sig(ANGLE_RAW[1] - 2.0), 180.0 * _sig(ANGLE_RAW[0] - 2.0)
    # 16 cells with logit -log 16 (one of them + HOT_LOGIT), the whole image with logit 0 + 0
    w = [math.exp(-math.log(16))] * 15 + [math.exp(HOT_LOGIT - math.log(16))] + [1.0]
    z = sum(w)
    p = [x / z for x in w]
    sides = [0.5] * 16 + [1.0]
    return {
        "angle_lo_deg": lo_deg,
        "angle_hi_deg": hi_deg,
        "crop_entropy": -sum(q * math.log(q) for q in p),
        "crop_expected_side": sum(q * s for q, s in zip(p, sides, strict=True)),
        "crop_hot": p[15],
        "crop_whole": p[16],
        "color_brightness_lo": 0.8 * _sig(COLOR_RAW[1] - 4.0),
        "color_brightness_hi": 0.8 * _sig(COLOR_RAW[0] - 4.0),
    }


def _constant_module(size: int = 16) -> LearnedAugment:
    cfg = parse_learned({"crop": {"grid": GRID}, "angle": {}, "color": {"brightness": 0.8}})
    assert cfg is not None
    m = LearnedAugment(cfg, 3, size)
    with torch.no_grad():
        head = m.net.global_head
        assert head is not None and head.out_features == 5  # whole-image crop, angle (hi, lo), brightness (hi, lo)
        head.weight.zero_()
        head.bias.copy_(torch.tensor([0.0, *ANGLE_RAW, *COLOR_RAW]))
        conv, bias = m.net.local_heads[0]
        conv.weight.zero_()
        bias.bias.zero_()
        bias.bias[0, 0, HOT[0], HOT[1]] = HOT_LOGIT
    return m


def _images(n: int = 6, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_label_shows_the_learned_numbers() -> None:
    e = _expected()
    summary = _constant_module().summary(_images())
    text = learned_label(summary, 2)
    assert f"angle -{e['angle_lo_deg']:.1f}..+{e['angle_hi_deg']:.1f}°" in text  # -48.4..+131.6
    assert f"crop H={e['crop_entropy']:.2f} nats, E[side]={e['crop_expected_side']:.2f}" in text
    assert f"bright -{e['color_brightness_lo']:.2f}..+{e['color_brightness_hi']:.2f}" in text


def test_preview_draws_views_from_the_learned_distributions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    e = _expected()
    texts: list[str] = []
    original = Axes.text

    def spy(self, x, y, s, *a, **k):  # type: ignore[no-untyped-def]
        texts.append(str(s))
        return original(self, x, y, s, *a, **k)

    monkeypatch.setattr(Axes, "text", spy)
    aug = Augmenter(AugmentConfig.symmetric(2, size=8, angle_p=1.0))
    images = _images(4)
    out = render_preview(images, aug, tmp_path / "p.png", n_pairs=4, seed=3, learned=_constant_module())
    assert out.read_bytes()[:8] == PNG
    assert len(texts) == 4 and all(f"angle -{e['angle_lo_deg']:.1f}..+{e['angle_hi_deg']:.1f}°" in t for t in texts)
    # the records the preview describes are the learned draws: same seed, same views
    views = aug(images, generator=torch.Generator().manual_seed(3), learned=_constant_module())
    for v in views:
        theta = torch.rad2deg(v.params.angle)
        assert bool(((theta >= -e["angle_lo_deg"] - 1e-3) & (theta <= e["angle_hi_deg"] + 1e-3)).all())
        b = v.params.color[:, 0]
        assert bool(((b >= 1 - e["color_brightness_lo"] - 1e-6) & (b <= 1 + e["color_brightness_hi"] + 1e-6)).all())
        side = v.params.crop[:, 2]  # 8 px boxes (half of 16) or the whole image
        assert bool(((side - 0.5).abs() < 1e-6).logical_or((side - 1).abs() < 1e-6).all())


def test_crop_heat_map_layout_matches_the_candidates(tmp_path: Path) -> None:
    e = _expected()
    m = _constant_module()
    summary = m.summary(_images(3))
    levels = crop_levels(summary["crop_probs"][0], GRID)
    (n4, s4, mass4), (n1, _, mass1) = levels
    assert (n4, s4, n1) == (4, 0.5, 1) and mass4.shape == (4, 4)
    assert divmod(int(mass4.argmax()), 4) == HOT
    assert float(mass4[HOT]) == pytest.approx(e["crop_hot"], rel=1e-5)
    assert float(mass1.sum()) == pytest.approx(e["crop_whole"], rel=1e-5)
    # the favoured cell of the heat map is the candidate whose crop is centred top right
    table, _ = candidate_table(m.cfg.crop)  # type: ignore[arg-type]
    k = int(summary["crop_probs"][0].argmax())
    assert table[k, 0].item() == pytest.approx(0.125) and table[k, 1].item() == pytest.approx(0.875)
    with pytest.raises(ValueError, match="17 candidates"):
        crop_levels(summary["crop_probs"][0], [[3, 0.5, 0.0]])
    out = render_crop_heatmaps(_images(3), summary, GRID, tmp_path / "c.png")
    assert out.read_bytes()[:8] == PNG


def test_group_stats_per_class() -> None:
    summary = {
        "angle_lo_deg": torch.tensor([10.0, 20.0, 30.0, 5.0, 5.0]),
        "angle_hi_deg": torch.tensor([1.0, 2.0, 3.0, 4.0, 6.0]),
        "crop_probs": torch.ones(5, 3) / 3,  # per-candidate values are not a per-input quantity
    }
    groups, overall = group_stats(summary, torch.tensor([0, 0, 0, 2, 2]), ["a", "b", "c"])
    assert [(g["name"], g["n"]) for g in groups] == [("a", 3), ("c", 2)]
    assert set(groups[0]["stats"]) == {"angle_lo_deg", "angle_hi_deg"}
    assert groups[0]["stats"]["angle_lo_deg"] == {"mean": pytest.approx(20.0), "std": pytest.approx(10.0)}
    assert groups[1]["stats"]["angle_hi_deg"] == {"mean": pytest.approx(5.0), "std": pytest.approx(math.sqrt(2))}
    assert overall["n"] == 5 and overall["stats"]["angle_lo_deg"]["mean"] == pytest.approx(14.0)
    # unlabelled images: only the overall row
    groups, overall = group_stats(summary, torch.full((5,), -1), [])
    assert groups == [] and overall["n"] == 5


def test_report_section_and_png(tmp_path: Path) -> None:
    e = _expected()
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    sec = learned_ranges(_constant_module(), _images(6), labels, ["up", "down"], file="run/learned.pt")
    assert sec["families"] == ["crop", "angle", "color"] and [g["name"] for g in sec["groups"]] == ["up", "down"]
    up = sec["groups"][0]["stats"]
    assert up["angle_hi_deg"]["mean"] == pytest.approx(e["angle_hi_deg"], rel=1e-5)
    assert up["crop_expected_side"]["mean"] == pytest.approx(e["crop_expected_side"], rel=1e-5)
    assert up["angle_hi_deg"]["std"] == pytest.approx(0.0, abs=1e-4)  # the same distribution for every input
    hist = sec["crop_side_hist"]
    assert len(hist["edges"]) == 21 and sum(hist["counts"]["up"]) == 3 and sum(hist["counts"]["all"]) == 6
    result = {"runs": [{"name": "plain"}, {"name": "learned", "learned": sec}]}
    md = learned_markdown(result)
    assert md.startswith("## Learned augmentation ranges") and "### learned" in md and "plain" not in md
    assert f"| up | 3 | {e['angle_lo_deg']:.2f} ± 0.00 |" in md
    assert "| **all** | 6 |" in md
    assert plot_learned(result, tmp_path / "l.png") == tmp_path / "l.png"
    assert (tmp_path / "l.png").read_bytes()[:8] == PNG
    assert learned_markdown({"runs": [{"name": "plain"}]}) == ""
    assert plot_learned({"runs": [{"name": "plain"}]}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def _learned_run(root: Path, size: int = 16) -> Path:
    """A run folder as ``augself pretrain`` leaves it with ``augment.learned``: config.yaml, backbone.pt and the
    constant module saved as learned.pt (augself.augment.learned.io format)."""
    from augself.augment.learned.io import save_learned
    from augself.models.backbones import build_backbone, save_backbone

    run = root / "run"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(
        "method: supervised\n"  # one view, as configs/learned/rotation_supervised.yaml: no AugSelf targets shown
        f"data: {{name: synthetic_orientation, size: {size}}}\n"
        f"augment:\n  size: {size}\n  views: [{{}}]\n  angle_p: 1.0\n"
        f"  learned: {{crop: {{grid: {GRID}}}, angle: {{}}, color: {{brightness: 0.8}}}}\n"
    )
    torch.manual_seed(0)
    save_backbone(build_backbone("small_cnn", widths=(4, 8, 8, 16)), run / "backbone.pt")
    save_learned(_constant_module(size), run / "learned.pt")
    return run


def test_cli_preview_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from augself.cli import main

    run = _learned_run(tmp_path)
    out = tmp_path / "pv" / "p.png"
    assert main(["preview", "--run", str(run), "--out", str(out), "--pairs", "2"]) == 0
    printed = capsys.readouterr().out.split()
    crop = tmp_path / "pv" / "p-crop.png"
    assert str(out) in printed and str(crop) in printed
    assert out.read_bytes()[:8] == PNG and crop.read_bytes()[:8] == PNG
    # a run without learned.pt, a clash with --config: one line, exit 2, nothing written
    (run / "learned.pt").unlink()
    assert main(["preview", "--run", str(run), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "has no learned.pt" in err and "--config" in err and len(err.strip().splitlines()) == 1
    assert main(["preview", "--run", str(run), "--config", "c.yaml", "--out", str(tmp_path / "x.png")]) == 2
    assert "--run previews the run's own config" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_awareness_report_of_a_learned_run(tmp_path: Path) -> None:
    import json

    from augself.eval.awareness import run_awareness

    e = _expected()
    run = _learned_run(tmp_path)
    out = tmp_path / "aw"
    run_awareness(
        [run], "synthetic_orientation", out, n=12, device="cpu", progress=False, augmentations=("flip",), probe_steps=5
    )
    assert {p.name for p in out.iterdir()} == {
        "awareness.json",
        "awareness.md",
        "awareness.png",
        "awareness-learned.png",
    }
    learned = json.loads((out / "awareness.json").read_text())["runs"][0]["learned"]
    names = [g["name"] for g in learned["groups"]]
    assert names == ["star", "crescent", "heart-up", "heart-down", "arrow-up", "arrow-down"]  # the eval set's classes
    assert sum(g["n"] for g in learned["groups"]) == 12 and learned["image_size"] == 16
    assert learned["groups"][2]["stats"]["angle_lo_deg"]["mean"] == pytest.approx(e["angle_lo_deg"], rel=1e-5)
    md = (out / "awareness.md").read_text()
    assert "## Learned augmentation ranges" in md and f"| heart-up | 2 | {e['angle_lo_deg']:.2f} ± 0.00 |" in md
