"""Portable weights: a self-describing ``backbone.pt`` and ``augself export`` to plain torchvision / timm /
safetensors state_dicts that load with ``strict=True`` into the stock model and give identical features."""

from __future__ import annotations

import json
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from augself.cli import main
from augself.models import build_backbone, load_backbone, save_backbone
from augself.models.backbone_info import read_backbone_info

TINY_RUN = [
    "data.name=synthetic",
    "data.n=32",
    "data.size=16",
    "data.num_workers=0",
    "augment.size=16",
    "augment.mean=[0.4,0.5,0.6]",
    "augment.std=[0.2,0.25,0.3]",
    "model.backbone=resnet18",
    "model.cifar_stem=true",
    "trainer.epochs=1",
    "trainer.batch_size=16",
    "trainer.progress_bar=false",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "monitor.online_probe=false",
]


def _torchvision_resnet(name: str, cifar_stem: bool, in_channels: int = 3) -> nn.Module:
    """The recipe of docs/export.md, written out here (not via augself.export.stock_model)."""
    model = getattr(torchvision.models, name)()
    model.fc = nn.Identity()
    if cifar_stem:
        model.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return model


def _trained_stats(bb: nn.Module, in_channels: int = 3, size: int = 32) -> None:
    """Move BatchNorm running statistics away from their init, so eval-mode features depend on them."""
    bb.train()
    with torch.no_grad():
        bb(torch.randn(4, in_channels, size, size) * 2 + 0.3)


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("augself export: error: ")
    return err[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real (tiny) pretraining run: resnet18 with the CIFAR stem at 16 px, 2 steps."""
    from augself.config import load_config
    from augself.train.run import run_pretrain

    out = tmp_path_factory.mktemp("export") / "run"
    return run_pretrain(load_config(None, [*TINY_RUN, f"out={out}"]))


def test_pretrained_backbone_is_self_describing(run: Path) -> None:
    from augself.config import load_config, to_dict

    ckpt = torch.load(run / "backbone.pt", weights_only=True)  # plain data + tensors only
    assert ckpt["format"] == 2 and ckpt["name"] == "resnet18" and ckpt["kwargs"]["cifar_stem"] is True
    info = read_backbone_info(run / "backbone.pt")
    cfg = load_config(str(run / "config.yaml"), [])
    assert (info.architecture, info.dim, info.size) == ("resnet18", 512, 16)
    assert info.mean == (0.4, 0.5, 0.6) and info.std == (0.2, 0.25, 0.3)
    assert info.decode == getattr(cfg.data, "decode", "exact") and info.data and info.data["name"] == "synthetic"
    assert info.config == json.loads(json.dumps(to_dict(cfg)))  # the resolved config, as config.yaml holds it
    assert info.unknown == () and info.note() is None
    assert info.augself_version == __import__("augself").__version__
    bb = load_backbone(run / "backbone.pt")
    assert not bb.training and not any(m.training for m in bb.modules())
    assert bb.info.size == 16 and load_backbone(run / "backbone.pt", train=True).training


def test_export_of_a_run_matches_load_backbone_exactly(run: Path, tmp_path: Path) -> None:
    """The issue's test: the stock torchvision model from the exported file gives load_backbone's features."""
    assert main(["export", str(run), "--out", str(tmp_path / "r18.pt")]) == 0
    model = _torchvision_resnet("resnet18", cifar_stem=True)
    model.load_state_dict(torch.load(tmp_path / "r18.pt", weights_only=True), strict=True)
    model.eval()
    bb = load_backbone(run / "backbone.pt")
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        assert (model(x) - bb(x)).abs().max().item() == 0.0
    side = json.loads((tmp_path / "r18.pt.json").read_text())
    assert side["format"] == "torchvision" and side["backbone"]["size"] == 16
    assert side["preprocessing"]["mean"] == [0.4, 0.5, 0.6] and side["backbone"]["config"]["model"]["cifar_stem"]


def test_copied_backbone_evaluates_with_its_recorded_preprocessing(
    run: Path, tmp_path: Path, colour_folder: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """backbone.pt alone (no config.yaml beside it) evaluates without --size/--mean/--std; a differing --size is
    used with one warning line."""
    data = colour_folder(tmp_path / "colours", n_train=4, n_test=3)
    copy = tmp_path / "elsewhere" / "bb.pt"
    copy.parent.mkdir()
    shutil.copy(run / "backbone.pt", copy)
    out = tmp_path / "knn.json"
    args = ["eval", "knn", "--backbone", str(copy), "--data", str(data), "--k", "3", "--no-progress", "--out"]
    assert main([*args, str(out)]) == 0
    assert capsys.readouterr().err.strip() == ""
    pre = json.loads(out.read_text())["preprocessing"]
    assert pre["size"] == 16 and pre["mean"] == [0.4, 0.5, 0.6] and pre["std"] == [0.2, 0.25, 0.3]
    assert pre["source"] == "checkpoint metadata (bb.pt)"
    # the CLI prints a warning as one ``augself: warning:`` line; under pytest the warning itself is recorded
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main([*args, str(tmp_path / "knn8.json"), "--size", "8", "--std", "0.2", "0.25", "0.3"]) == 0
    said = [str(w.message) for w in caught if issubclass(w.category, UserWarning) and "recorded" in str(w.message)]
    assert len(said) == 1 and "size 8 (recorded: 16)" in said[0]
    assert "std" not in said[0].split(", not")[0]  # an equal explicit value is not reported
    assert json.loads((tmp_path / "knn8.json").read_text())["preprocessing"]["size"] == 8


@pytest.mark.parametrize(
    ("name", "kw", "size"),
    [
        ("resnet18", {}, 32),
        ("resnet18", {"cifar_stem": True, "in_channels": 1, "zero_init_residual": False}, 16),
        ("resnet50", {}, 32),
    ],
)
def test_stock_torchvision_model_gives_identical_features(tmp_path: Path, name: str, kw: dict, size: int) -> None:
    from augself.export import export_backbone, stock_model

    in_ch = kw.get("in_channels", 3)
    bb = build_backbone(name, **kw)
    _trained_stats(bb, in_ch, size)
    save_backbone(bb, tmp_path / "backbone.pt", meta={"size": size, "mean": [0.5] * in_ch, "std": [0.25] * in_ch})
    res = export_backbone(tmp_path / "backbone.pt", tmp_path / "out.pt")
    assert res.format == "torchvision" and res.container == "torch" and res.notes == ()
    state = torch.load(tmp_path / "out.pt", weights_only=True)
    assert not any(k.startswith("net.") or k.startswith("fc.") for k in state)
    model = _torchvision_resnet(name, bool(kw.get("cifar_stem")), in_ch)
    model.load_state_dict(state, strict=True)
    model.eval()
    ours = load_backbone(tmp_path / "backbone.pt")
    x = torch.randn(3, in_ch, size, size)
    with torch.no_grad():
        want = ours(x)
        assert want.shape == (3, ours.dim)
        assert (model(x) - want).abs().max().item() == 0.0
        helper = stock_model(read_backbone_info(tmp_path / "backbone.pt"))
        helper.load_state_dict(state, strict=True)
        assert not helper.training and torch.equal(helper(x), want)


def test_safetensors_export_embeds_metadata(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("safetensors")  # an optional extra; without it: test_missing_safetensors_is_one_line
    from safetensors import safe_open
    from safetensors.torch import load_file

    out = tmp_path / "sub" / "r18.safetensors"
    assert main(["export", str(run), "--out", str(out)]) == 0
    assert "safetensors" in capsys.readouterr().out
    model = _torchvision_resnet("resnet18", cifar_stem=True)
    model.load_state_dict(load_file(out), strict=True)
    model.eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), load_backbone(run / "backbone.pt")(x))
    with safe_open(str(out), "pt") as f:
        meta = json.loads(f.metadata()["augself"])
    assert meta["format"] == "torchvision" and meta["backbone"]["size"] == 16 and "resnet18" in meta["loads_into"]
    assert meta["backbone"]["config"]["augment"]["std"] == [0.2, 0.25, 0.3]
    assert sorted(p.name for p in out.parent.iterdir()) == ["r18.safetensors"]  # no sidecar: embedded


def test_small_cnn_exports_its_own_keys_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from augself.models.backbones import small_cnn

    bb = build_backbone("small_cnn", widths=(4, 8))
    _trained_stats(bb, size=16)
    save_backbone(bb, tmp_path / "backbone.pt")
    assert main(["export", str(tmp_path / "backbone.pt"), "--out", str(tmp_path / "cnn.pt")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert any("no torchvision / timm equivalent" in line and "small_cnn(widths=[4, 8])" in line for line in err)
    assert all(line.startswith("augself export: note: ") for line in err)
    net = small_cnn(3, widths=(4, 8))
    net.load_state_dict(torch.load(tmp_path / "cnn.pt", weights_only=True), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), load_backbone(tmp_path / "backbone.pt")(x))
    # asking for a stock library it has no model in: one line, nothing written
    for fmt in ("torchvision", "timm"):
        assert main(["export", str(tmp_path / "backbone.pt"), "--out", str(tmp_path / "x.pt"), "--format", fmt]) == 2
        assert "no " + fmt + " equivalent" in _one_error_line(capsys)
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "x.pt.json").exists()


def test_timm_export(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["export", str(run), "--out", str(tmp_path / "t.pt"), "--format", "timm"]
    with monkeypatch.context() as m:  # timm absent: one line naming the extra, nothing written
        m.setitem(sys.modules, "timm", None)
        assert main(args) == 2
        assert "pip install -e '.[timm]'" in _one_error_line(capsys)
        assert list(tmp_path.iterdir()) == []
    timm = pytest.importorskip("timm")
    assert main(args) == 0
    model = timm.create_model("resnet18", pretrained=False, num_classes=0)  # timm's ResNet keys are torchvision's
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    model.load_state_dict(torch.load(tmp_path / "t.pt", weights_only=True), strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), load_backbone(run / "backbone.pt")(x))


def test_missing_safetensors_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    save_backbone(build_backbone("small_cnn", widths=(4, 8)), tmp_path / "backbone.pt")
    monkeypatch.setitem(sys.modules, "safetensors", None)
    assert main(["export", str(tmp_path / "backbone.pt"), "--out", str(tmp_path / "o" / "x.safetensors")]) == 2
    line = _one_error_line(capsys)
    assert "safetensors" in line and "pip install -e '.[safetensors]'" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backbone.pt"]


@pytest.mark.parametrize("case", ["missing", "text", "state_dict", "format", "exists", "itself", "dir"])
def test_export_errors_are_one_line_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    src = tmp_path / "run" / "backbone.pt"
    save_backbone(build_backbone("small_cnn", widths=(4, 8)), src)
    out = tmp_path / "out" / "x.pt"
    extra: list[str] = []
    expect = {
        "missing": "backbone not found",
        "text": "not a readable backbone file",
        "state_dict": "is a plain state_dict",
        "format": "unknown export format 'torchvison'; valid names: augself, auto, timm, torchvision. Did you mean",
        "exists": "already exists; pass --overwrite",
        "itself": "is the backbone file itself",
        "dir": "is a directory",
    }[case]
    if case == "missing":
        src = tmp_path / "nope"
    elif case == "text":
        src = tmp_path / "notes.pt"
        src.write_text("not a checkpoint\n")
    elif case == "state_dict":
        src = tmp_path / "plain.pt"
        torch.save(build_backbone("small_cnn", widths=(4, 8)).net.state_dict(), src)
    elif case == "format":
        extra = ["--format", "torchvison"]
    elif case == "exists":
        out.parent.mkdir()
        out.write_bytes(b"keep me")
    elif case == "itself":
        out = src
        extra = ["--overwrite"]
    elif case == "dir":
        out.mkdir(parents=True)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["export", str(src), "--out", str(out), *extra]) == 2
    assert expect in _one_error_line(capsys)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    if case == "exists":
        assert out.read_bytes() == b"keep me"
        assert main(["export", str(src), "--out", str(out), "--overwrite"]) == 0
        assert isinstance(torch.load(out, weights_only=True), dict)


def test_failed_write_leaves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import augself.export

    save_backbone(build_backbone("small_cnn", widths=(4, 8)), tmp_path / "backbone.pt")

    def full_disk(obj: object, path: Path) -> None:
        Path(path).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(augself.export.torch, "save", full_disk)
    assert main(["export", str(tmp_path / "backbone.pt"), "--out", str(tmp_path / "a" / "b" / "x.pt")]) == 2
    assert "No space left" in _one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backbone.pt"]


def test_old_backbone_without_metadata_still_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A format-1 file (no ``format`` / ``meta``, as written before this change) loads, in eval mode, and says what
    it does not know; exported next to its run's config.yaml the preprocessing comes from there."""
    bb = build_backbone("small_cnn", widths=(4, 8))
    _trained_stats(bb, size=16)
    old = {"name": bb.name, "kwargs": bb.kwargs, "state_dict": bb.state_dict(), "dim": bb.dim}
    torch.save(old, tmp_path / "backbone.pt")
    loaded = load_backbone(tmp_path / "backbone.pt")
    assert not loaded.training and loaded.meta == {}
    info = read_backbone_info(tmp_path / "backbone.pt")
    assert info.format == 1 and info.unknown == ("size", "mean", "std", "decode", "config")
    assert "before augself recorded metadata" in (info.note() or "")
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), bb.eval()(x))
    assert main(["export", str(tmp_path / "backbone.pt"), "--out", str(tmp_path / "a.pt")]) == 0
    assert "does not record size, mean, std, decode, config" in capsys.readouterr().err
    assert json.loads((tmp_path / "a.pt.json").read_text())["preprocessing"] is None
    (tmp_path / "config.yaml").write_text("augment:\n  size: 24\n")
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "b.pt")]) == 0
    assert "does not record" not in capsys.readouterr().err
    pre = json.loads((tmp_path / "b.pt.json").read_text())["preprocessing"]
    assert pre["size"] == 24 and pre["source"].startswith("pretraining config")


def test_metadata_must_be_plain_data(tmp_path: Path) -> None:
    bb = build_backbone("small_cnn", widths=(4, 8))
    with pytest.raises(TypeError, match=r"meta\.x: Tensor is not plain data"):
        save_backbone(bb, tmp_path / "b.pt", meta={"x": torch.zeros(1)})
    save_backbone(bb, tmp_path / "b.pt", meta={"size": 8, "note": ("a", 1.5)})
    assert torch.load(tmp_path / "b.pt", weights_only=True)["meta"]["note"] == ["a", 1.5]
    resaved = load_backbone(tmp_path / "b.pt")
    save_backbone(resaved, tmp_path / "c.pt")  # the metadata travels with the module
    assert read_backbone_info(tmp_path / "c.pt").size == 8


def test_cli_format_names_match_the_library() -> None:
    from augself.export import FORMATS
    from augself.export_cli import FORMATS as CLI_FORMATS

    assert CLI_FORMATS == FORMATS


class _Tiny(nn.Module):
    """A user's own backbone (pretrained with ``PretrainModule(cfg, backbone=net)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)).mean((2, 3))


def test_custom_backbone_exports_its_own_keys_unchecked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from augself.models.backbones import Backbone

    net = _Tiny()
    save_backbone(Backbone(net, 4, "custom:test_export._Tiny"), tmp_path / "backbone.pt")
    assert main(["export", str(tmp_path / "backbone.pt"), "--out", str(tmp_path / "mine.pt")]) == 0
    captured = capsys.readouterr()
    assert "not checked" in captured.out and "your own test_export._Tiny module" in captured.out
    assert "augself export: note: a custom backbone" in captured.err
    fresh = _Tiny()
    fresh.load_state_dict(torch.load(tmp_path / "mine.pt", weights_only=True), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), net.state_dict().values(), strict=True))
    assert main(["export", str(tmp_path / "backbone.pt"), "--out", str(tmp_path / "x.pt"), "--format", "timm"]) == 2
    assert "your own module" in _one_error_line(capsys)
    with pytest.raises(ValueError, match=r"your own module .* cannot rebuild"):
        load_backbone(tmp_path / "backbone.pt")
