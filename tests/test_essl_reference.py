"""Issue 12 Sec. 1: E-SSL's own E-SimCLR (Dangovski et al., ICLR 2022; rdangovs/essl at commit 70b2cd0).

Loss against a naive formula, projector and rotation-head shapes, the rotation batch, the ImageNet rotation view,
the recipes' hyper-parameters, and every E-SSL config training a few steps on tiny synthetic data.
"""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from augself.augment import sample_params
from augself.config import ConfigError, load_config
from augself.essl import RotationPrediction, rotate_four_ways, rotation_head, rotation_view
from augself.methods import METHODS, build_method, essl_info_nce, simclr_loss
from augself.train.module import PretrainModule
from augself.train.run import run_pretrain

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
ESSL_CONFIGS = [
    "cifar10/essl_simclr.yaml",
    "cifar10/esimclr.yaml",
    "imagenet/essl_simclr.yaml",
    "imagenet/esimclr.yaml",
]


class StubBackbone(nn.Module):
    """A linear 'backbone' of output size ``dim`` (only ``.dim`` and the forward are used)."""

    def __init__(self, dim: int, in_dim: int = 12) -> None:
        super().__init__()
        self.dim = dim
        self.net = nn.Sequential(nn.Flatten(), nn.LazyLinear(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _layers(seq: nn.Sequential) -> list[tuple]:
    out: list[tuple] = []
    for m in seq:
        if isinstance(m, nn.Linear):
            out.append(("linear", m.in_features, m.out_features, m.bias is not None))
        elif isinstance(m, nn.BatchNorm1d):
            out.append(("bn", m.num_features, m.affine))
        elif isinstance(m, nn.LayerNorm):
            out.append(("ln", m.normalized_shape[0], m.elementwise_affine))
        elif isinstance(m, nn.ReLU):
            out.append(("relu",))
        else:
            raise AssertionError(f"unexpected layer {m}")
    return out


# ---- the loss ---------------------------------------------------------------------------------------------
def test_info_nce_equals_naive_formula() -> None:
    """cifar10/main.py 93-102, 284: L = (CE(z1 z2^T / T) + CE(z2 z1^T / T)) / 2 over normalised z, positives on
    the diagonal, the other view's other images as the only negatives."""
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    a, b = z1.double().tolist(), z2.double().tolist()

    def cos(u: list[float], v: list[float]) -> float:
        return sum(x * y for x, y in zip(u, v, strict=True)) / math.sqrt(sum(x * x for x in u) * sum(y * y for y in v))

    for t in (0.5, 0.2):
        total = 0.0
        for p, q in ((a, b), (b, a)):
            for i in range(5):
                den = sum(math.exp(cos(p[i], q[j]) / t) for j in range(5))
                total += -math.log(math.exp(cos(p[i], q[i]) / t) / den) / 5 / 2
        assert math.isclose(float(essl_info_nce(z1, z2, t)), total, rel_tol=1e-5)
    # not AugSelf's NT-Xent (2B anchors, intra-view negatives too) on the same inputs
    assert not math.isclose(float(essl_info_nce(z1, z2, 0.5)), float(simclr_loss(z1, z2, 0.5)), rel_tol=1e-3)


# ---- projector and rotation head shapes -------------------------------------------------------------------
def test_projector_shapes_match_the_reference() -> None:
    # CIFAR-10 (cifar10/main.py 105-112, dim_proj 2048,2048): Linear-BN-ReLU-Linear-BN(affine=False), no biases
    cifar = build_method("essl_simclr", StubBackbone(512), **load_config(CONFIGS / "cifar10/esimclr.yaml").method_args)
    assert _layers(cifar.projector) == [
        ("linear", 512, 2048, False),
        ("bn", 2048, True),
        ("relu",),
        ("linear", 2048, 2048, False),
        ("bn", 2048, False),
    ]
    assert cifar.temperature == 0.5
    # ImageNet (imagenet/simclr/main.py 179-187): 2048-2048-2048-128, BN (affine) after every linear
    inet = build_method("essl_simclr", StubBackbone(2048), **load_config(CONFIGS / "imagenet/esimclr.yaml").method_args)
    assert _layers(inet.projector) == [
        ("linear", 2048, 2048, False),
        ("bn", 2048, True),
        ("relu",),
        ("linear", 2048, 2048, False),
        ("bn", 2048, True),
        ("relu",),
        ("linear", 2048, 128, False),
        ("bn", 128, True),
    ]
    assert inet.temperature == 0.2
    assert METHODS["essl_simclr"] is type(cifar)


def test_rotation_heads_match_the_reference() -> None:
    # cifar10/main.py 146-152
    assert _layers(rotation_head(512, 2048, 0)) == [
        ("linear", 512, 2048, True),
        ("ln", 2048, True),
        ("relu",),
        ("linear", 2048, 2048, True),
        ("ln", 2048, True),
        ("relu",),
        ("linear", 2048, 4, True),
    ]
    # imagenet/simclr/main.py 192-200
    assert _layers(rotation_head(2048, 2048, 128)) == [
        ("linear", 2048, 2048, True),
        ("ln", 2048, True),
        ("relu",),
        ("linear", 2048, 2048, True),
        ("ln", 2048, True),
        ("relu",),
        ("linear", 2048, 128, True),
        ("ln", 128, True),
        ("linear", 128, 4, True),
    ]


def test_rotation_batch_holds_every_image_four_times() -> None:
    """cifar10/main.py 51-70: blocks k = 0..3, block k turned k quarter turns counter-clockwise, label k."""
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3)
    rotated, labels = rotate_four_ways(x)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    n = 3
    for k in range(4):
        for b in range(2):
            img = x[b, 0]
            want = img
            for _ in range(k):  # one counter-clockwise quarter turn: out[i][j] = in[j][n - 1 - i]
                want = torch.tensor([[float(want[j][n - 1 - i]) for j in range(n)] for i in range(n)])
            assert torch.equal(rotated[k * 2 + b, 0], want), (k, b)


def test_rotation_loss_is_weighted_cross_entropy() -> None:
    torch.manual_seed(0)
    backbone = StubBackbone(8)
    rot = RotationPrediction(8, hidden_dim=16, weight=0.4, bottleneck_dim=4)
    view = torch.rand(3, 3, 2, 2)
    loss, logs = rot(backbone, view)
    images, labels = rotate_four_ways(view)
    ce = nn.functional.cross_entropy(rot.head(backbone(images)), labels)
    torch.testing.assert_close(loss, 0.4 * ce)
    torch.testing.assert_close(logs["essl/rot_loss"], ce.detach())


# ---- the rotation views ------------------------------------------------------------------------------------
def test_imagenet_rotation_view_size_and_crop_scale() -> None:
    """imagenet/simclr/main.py 40 and 316-330: RandomResizedCrop(96, scale=(0.05, 0.14)), flip, jitter, gray,
    blur p 0.1, no solarization; the SSL views keep scale (0.08, 1)."""
    cfg = load_config(CONFIGS / "imagenet/esimclr.yaml", ["model.backbone=small_cnn"])  # same views, small net
    module = PretrainModule(cfg)
    views = module.view_cfgs
    assert len(views) == 3 and module.n_method_views == 2
    rot = views[2]
    assert (rot.size, tuple(rot.crop_scale), rot.blur_p, rot.sol_p, rot.rot_p) == (
        96,
        (0.05, 0.14),
        0.1,
        0.0,
        0,
    )
    assert (rot.flip_p, rot.color_p, rot.gray_p, rot.color_saturation) == (0.5, 0.8, 0.2, 0.2)
    assert tuple(views[0].crop_scale) == (0.08, 1.0) and views[0].size == 224
    p = sample_params(rot, 4000, generator=torch.Generator().manual_seed(0), input_size=(375, 500))
    area = p.crop[:, 2] * p.crop[:, 3]
    # pixel rounding of h and w moves the area by at most ~1 % of the crop
    assert area.min() >= 0.05 * 0.98 and area.max() <= 0.14 * 1.02
    assert area.min() < 0.055 and area.max() > 0.135
    assert module.essl is not None and module.essl.weight == 0.4
    assert _layers(module.essl.head)[-3:] == [("linear", 2048, 128, True), ("ln", 128, True), ("linear", 128, 4, True)]


def test_cifar_rotation_view_is_a_16px_copy_of_the_ssl_view() -> None:
    """cifar10/main.py 32-37: RandomResizedCrop(16, scale (0.2, 1)) + the SSL views' flip / jitter / gray."""
    cfg = load_config(CONFIGS / "cifar10/esimclr.yaml")
    base = cfg.augment.build().views[0]
    rot = rotation_view(base, cfg.essl)
    assert rot == base.with_(size=16)
    assert (base.size, tuple(base.crop_scale), base.blur_p) == (32, (0.2, 1.0), 0.0)


def test_bad_rotation_view_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"essl\.view has unknown keys"):
        load_config(None, ["essl.weight=0.4", "essl.view={crop_scael: [0.1, 0.2]}"])
    with pytest.raises(ConfigError, match="crop_scale"):
        load_config(None, ["essl.weight=0.4", "essl.view={crop_scale: [0.5, 0.1]}"])


# ---- the recipes -------------------------------------------------------------------------------------------
def test_cifar10_recipe() -> None:
    """rdangovs/essl cifar10/main.py argparse defaults (457-471), README line 25 and the code lines cited."""
    e = load_config(CONFIGS / "cifar10/esimclr.yaml")
    b = load_config(CONFIGS / "cifar10/essl_simclr.yaml")
    for cfg, lr, lam in ((e, 0.06, 0.4), (b, 0.03, 0.0)):
        o, t, m = cfg.optim, cfg.trainer, cfg.model
        assert (o.name, o.base_lr, o.scale_lr, o.momentum, o.weight_decay) == ("sgd", lr, True, 0.9, 5e-4)
        assert (o.exclude_norm_bias, o.warmup_epochs, o.min_lr_ratio, o.lr_interval) == (False, 10, 0.0, "step")
        assert (t.epochs, t.batch_size, t.devices, t.precision) == (800, 512, 1, "32-true")
        assert (m.backbone, m.cifar_stem, m.zero_init_residual, m.init) == ("resnet18", True, False, "torchvision")
        assert cfg.essl.weight == lam and cfg.method == "essl_simclr" and cfg.seed == 42 and not cfg.augself
        v = cfg.augment.build().views
        assert len(v) == 2 and v[0] == v[1]
        assert (v[0].size, tuple(v[0].crop_scale), v[0].flip_p, v[0].blur_p, v[0].sol_p) == (
            32,
            (0.2, 1),
            0.5,
            0,
            0,
        )
        assert tuple(v[0].mean) == (0.4914, 0.4822, 0.4465) and tuple(v[0].std) == (0.2023, 0.1994, 0.2010)
    assert (e.essl.size, e.essl.hidden_dim, e.essl.bottleneck_dim) == (16, 2048, 0)


def test_imagenet_recipe() -> None:
    """rdangovs/essl imagenet/simclr/main.py (argparse 26-40, LARS 82-84 and 242-281, schedule 154-168, views
    284-336)."""
    cfg = load_config(CONFIGS / "imagenet/esimclr.yaml")
    o, t = cfg.optim, cfg.trainer
    assert (o.name, o.base_lr, o.scale_lr, o.momentum, o.lars_eta, o.weight_decay) == (
        "lars",
        4.8,
        False,
        0.9,
        1e-3,
        1e-6,
    )
    assert (o.exclude_norm_bias, o.warmup_epochs, o.min_lr_ratio, o.lr_interval) == (True, 10, 1e-3, "step")
    assert (t.epochs, t.batch_size, t.batch_scope, t.precision, t.sync_batchnorm) == (
        100,
        4096,
        "global",
        "16-mixed",
        True,
    )
    assert (cfg.model.backbone, cfg.model.zero_init_residual, cfg.monitor.online_probe) == ("resnet50", True, True)
    assert (cfg.essl.weight, cfg.essl.size, cfg.essl.bottleneck_dim) == (0.4, 96, 128)
    v1, v2 = cfg.augment.build().views
    for v in (v1, v2):
        assert (v.size, tuple(v.crop_scale), v.color_p, v.gray_p) == (224, (0.08, 1.0), 0.8, 0.2)
        assert (v.color_brightness, v.color_contrast, v.color_saturation, v.color_hue) == (0.4, 0.4, 0.2, 0.1)
        assert tuple(v.blur_sigma) == (0.1, 2.0)
    assert (v1.blur_p, v1.sol_p, v2.blur_p, v2.sol_p) == (1.0, 0.0, 0.1, 0.2)
    assert tuple(v2.sol_threshold) == (0.5, 0.5)  # PIL ImageOps.sol threshold 128 (utils.py line 71)
    base = load_config(CONFIGS / "imagenet/essl_simclr.yaml")
    assert base.essl.weight == 0 and base.optim == cfg.optim and base.method_args == cfg.method_args


# ---- every E-SSL config trains a few steps on tiny synthetic data ------------------------------------------
class Losses(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []
        self.module: PretrainModule | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.losses.append(float(outputs["loss"]))
        self.module = pl_module


@pytest.mark.parametrize("name", ESSL_CONFIGS)
def test_essl_config_trains_on_tiny_synthetic_data(name: str, tmp_path: Path) -> None:
    full = load_config(CONFIGS / name)
    over = [
        "data.name=synthetic",
        "data.n=32",
        "data.size=16",
        "data.num_workers=0",
        "augment.size=16",
        "model.backbone=small_cnn",
        "method_args.proj_hidden_dim=16",
        "method_args.proj_dim=8",
        "trainer.batch_size=8",
        "trainer.batch_scope=device",
        "trainer.max_steps=3",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.num_nodes=1",
        "trainer.strategy=auto",
        "trainer.precision=32-true",
        "trainer.progress_bar=false",
        "trainer.loggers=[]",
        "monitor.every_n_epochs=0",
        "monitor.online_probe=false",
        f"out={tmp_path / 'run'}",
    ]
    if full.augment.views and any("size" in v for v in full.augment.views):
        over.append("augment.views=[{size: 16}, {size: 16}]")
    if full.essl.weight > 0:
        over += ["essl.size=8", "essl.hidden_dim=16", f"essl.bottleneck_dim={4 if full.essl.bottleneck_dim else 0}"]
    rec = Losses()
    out = run_pretrain(load_config(CONFIGS / name, over), callbacks=[rec])
    assert len(rec.losses) == 3 and all(math.isfinite(x) for x in rec.losses)
    assert rec.module is not None and type(rec.module.method) is METHODS["essl_simclr"]
    assert (rec.module.essl is not None) == (full.essl.weight > 0)
    assert (out / "backbone.pt").is_file()
