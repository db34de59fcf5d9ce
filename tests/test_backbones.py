"""Backbones and the MLP builder: shapes, CIFAR stem, save/load round trip, clear errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from augself.models import Backbone, build_backbone, load_backbone, mlp, save_backbone

TINY_CNN = {"widths": (8, 16, 16, 32)}


pytestmark = pytest.mark.usefixtures("one_thread")


# ---- mlp ---------------------------------------------------------------------------------------------------
def test_mlp_matches_augself_load_mlp_layout() -> None:
    m = mlp(10, 32, 4, num_layers=3)
    kinds = [type(x) for x in m]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert m[0].bias is None and m[3].bias is None and m[6].bias is not None
    assert (m[0].in_features, m[0].out_features, m[6].out_features) == (10, 32, 4)
    assert m(torch.randn(5, 10)).shape == (5, 4)


def test_mlp_options() -> None:
    m = mlp(6, 16, 8, num_layers=2, last_norm=True, last_bias=False, last_norm_affine=False)
    assert isinstance(m[-1], nn.BatchNorm1d) and not m[-1].affine and m[-2].bias is None
    ln = mlp(6, 16, 4, num_layers=3, norm="ln", hidden_bias=True, relu_last=True)
    assert isinstance(ln[1], nn.LayerNorm) and ln[0].bias is not None and isinstance(ln[-1], nn.ReLU)
    plain = mlp(6, 16, 4, num_layers=2, norm=None)
    assert [type(x) for x in plain] == [nn.Linear, nn.ReLU, nn.Linear] and plain[0].bias is not None
    one = mlp(6, 999, 3, num_layers=1)
    assert len(one) == 1 and one[0].in_features == 6 and one[0].out_features == 3
    with pytest.raises(ValueError, match="num_layers"):
        mlp(6, 16, 4, num_layers=0)
    with pytest.raises(ValueError, match="norm"):
        mlp(6, 16, 4, norm="gn")  # type: ignore[arg-type]


# ---- backbones ---------------------------------------------------------------------------------------------
def test_small_cnn_dim_and_shape() -> None:
    bb = build_backbone("small_cnn")
    assert isinstance(bb, Backbone) and bb.dim == 256 and bb.name == "small_cnn"
    assert bb(torch.randn(3, 3, 32, 32)).shape == (3, 256)
    assert bb(torch.randn(2, 3, 96, 96)).shape == (2, 256)  # any resolution (global pool)
    tiny = build_backbone("small_cnn", in_channels=1, **TINY_CNN)
    assert tiny.dim == 32 and tiny(torch.randn(2, 1, 32, 32)).shape == (2, 32)


def test_small_cnn_channels_last_matches_contiguous() -> None:
    bb = build_backbone("small_cnn", **TINY_CNN).eval()
    x = torch.randn(4, 3, 32, 32)
    ref = bb(x)
    bb_cl = bb.to(memory_format=torch.channels_last)
    out = bb_cl(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_resnet18_cifar_stem() -> None:
    bb = build_backbone("resnet18", cifar_stem=True)
    conv1 = bb.net.conv1
    assert bb.dim == 512 and conv1.kernel_size == (3, 3) and conv1.stride == (1, 1) and conv1.padding == (1, 1)
    assert isinstance(bb.net.maxpool, nn.Identity) and isinstance(bb.net.fc, nn.Identity)
    feats: dict[str, torch.Size] = {}

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        feats["layer1"] = output.shape

    bb.net.layer1.register_forward_hook(hook)
    assert bb(torch.randn(2, 3, 32, 32)).shape == (2, 512)
    assert feats["layer1"] == (2, 64, 32, 32)  # no downsampling in the stem


def test_resnet18_imagenet_stem_and_zero_init() -> None:
    bb = build_backbone("resnet18")
    assert bb.net.conv1.kernel_size == (7, 7) and isinstance(bb.net.maxpool, nn.MaxPool2d)
    assert bb(torch.randn(2, 3, 64, 64)).shape == (2, 512)
    assert torch.all(bb.net.layer1[0].bn2.weight == 0)  # zero_init_residual (AugSelf default)
    assert not torch.all(build_backbone("resnet18", zero_init_residual=False).net.layer1[0].bn2.weight == 0)
    gray = build_backbone("resnet18", cifar_stem=True, in_channels=1)
    assert gray(torch.randn(2, 1, 32, 32)).shape == (2, 512)


def test_resnet50_dim() -> None:
    bb = build_backbone("resnet50", cifar_stem=True)
    assert bb.dim == 2048
    assert bb(torch.randn(2, 3, 32, 32)).shape == (2, 2048)


def test_unknown_backbone_lists_valid_names_and_closest() -> None:
    with pytest.raises(ValueError, match="resnet18") as e:
        build_backbone("resnet19")
    msg = str(e.value)
    assert "small_cnn" in msg and "Did you mean 'resnet18'" in msg and "timm:" in msg
    with pytest.raises(ValueError):
        build_backbone("timm:")


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed")
def test_timm_missing_gives_clear_error() -> None:
    with pytest.raises(ImportError, match="pip install timm"):
        build_backbone("timm:resnet18")


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm not installed")
def test_timm_backbone() -> None:
    bb = build_backbone("timm:resnet18")
    assert bb.dim == 512 and bb(torch.randn(2, 3, 32, 32)).shape == (2, 512)


@pytest.mark.parametrize(
    ("name", "kw"), [("small_cnn", TINY_CNN), ("resnet18", {"cifar_stem": True, "zero_init_residual": False})]
)
def test_save_load_roundtrip(tmp_path: Path, name: str, kw: dict) -> None:
    bb = build_backbone(name, **kw)
    bb.train()
    bb(torch.randn(8, 3, 32, 32))  # move the BN running statistics away from their init
    bb.eval()
    x = torch.randn(3, 3, 32, 32)
    path = tmp_path / "sub" / "backbone.pt"
    save_backbone(bb, path)
    loaded = load_backbone(path).eval()
    assert isinstance(loaded, Backbone) and loaded.name == name and loaded.dim == bb.dim
    torch.testing.assert_close(loaded(x), bb(x), rtol=0, atol=0)
    assert load_backbone(path, expect=name).dim == bb.dim


def test_load_backbone_errors(tmp_path: Path) -> None:
    path = tmp_path / "bb.pt"
    save_backbone(build_backbone("small_cnn", **TINY_CNN), path)
    with pytest.raises(ValueError, match="'resnet18' was expected"):
        load_backbone(path, expect="resnet18")
    # weights of one architecture under another's name
    ckpt = torch.load(path, weights_only=True)
    ckpt["name"], ckpt["kwargs"] = "resnet18", {"cifar_stem": True}
    torch.save(ckpt, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="do not fit a 'resnet18' backbone"):
        load_backbone(tmp_path / "wrong.pt")
    torch.save({"state_dict": {}, "epoch": 3}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a backbone checkpoint"):
        load_backbone(tmp_path / "other.pt")
    with pytest.raises(TypeError, match="Backbone"):
        save_backbone(nn.Linear(2, 2), tmp_path / "x.pt")  # type: ignore[arg-type]
