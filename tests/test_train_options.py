"""Training options of issue 3 Sec. 4: optimisers, lr scaling and schedules, fixed-lr modules, weight decay
groups, mixed precision, multi-crop through the module, the kNN monitor and the online probe."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch import nn

from augself.config import load_config
from augself.data.registry import build_dataset
from augself.train.module import PretrainModule
from augself.train.monitors import KNNMonitor
from augself.train.optim import LARS, build_optimizer, param_groups, warmup_cosine

TINY = [
    "data.name=synthetic",
    "data.size=16",
    "augment.size=16",
    "model.backbone=small_cnn",
    "trainer.batch_size=32",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
]


def _module(*over: str, attach: bool = True, **trainer: object) -> PretrainModule:
    """A module on the TINY config; ``attach``: with the trainer attributes ``configure_optimizers`` reads."""
    module = PretrainModule(load_config(None, [*TINY, *over]))
    if not attach:
        return module
    fake = {"world_size": 1, "estimated_stepping_batches": 100, "max_epochs": 10, **trainer}
    module._trainer = SimpleNamespace(**fake)  # type: ignore[assignment]
    return module


def test_warmup_cosine_shape() -> None:
    """Linear warm-up to the peak, then cosine down to ``min_ratio`` at the last step."""
    total, warm = 100, 10
    assert warmup_cosine(0, total, warm) == pytest.approx(0.1)
    assert warmup_cosine(9, total, warm) == pytest.approx(1.0)
    assert warmup_cosine(10, total, warm) == pytest.approx(1.0)
    assert warmup_cosine(55, total, warm) == pytest.approx(0.5)
    assert warmup_cosine(100, total, warm, min_ratio=0.1) == pytest.approx(0.1)
    values = [warmup_cosine(s, total, warm) for s in range(warm, total + 1)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_lr_scaling_accumulation_and_world_size() -> None:
    """lr = base_lr * (batch x devices x accumulation) / 256 (Goyal et al., 2017); off with scale_lr=false."""
    module = _module("optim.base_lr=0.05", "trainer.accumulate_grad_batches=4", world_size=2)
    opt = module.configure_optimizers()["optimizer"]
    lrs = [g["initial_lr"] for g in opt.param_groups]
    assert lrs == pytest.approx([0.05 * 32 * 2 * 4 / 256] * len(lrs))
    module = _module("optim.base_lr=0.05", "optim.scale_lr=false")
    assert {g["initial_lr"] for g in module.configure_optimizers()["optimizer"].param_groups} == {0.05}


def test_no_weight_decay_on_norms_and_biases() -> None:
    """BatchNorm weights/biases and every bias sit in the weight-decay-free groups; conv / linear weights decay."""
    module = _module("optim.weight_decay=0.1", "augself.crop=1.0")
    opt = module.configure_optimizers()["optimizer"]
    decay_of = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    for name, p in module.named_parameters():
        expected = 0.0 if (p.ndim <= 1 or name.endswith(".bias")) else 0.1
        assert decay_of[id(p)] == expected, name
    n_params = sum(1 for p in module.parameters() if p.requires_grad)
    assert len(decay_of) == n_params, "every trainable parameter is optimised exactly once"
    off = _module("optim.weight_decay=0.1", "optim.exclude_norm_bias=false").configure_optimizers()
    assert {g["weight_decay"] for g in off["optimizer"].param_groups} == {0.1}


def test_simsiam_predictor_keeps_a_fixed_lr() -> None:
    """SimSiam's predictor lr stays at its initial value while the rest warms up and decays (Chen & He, Sec 4.4)."""
    module = _module(
        "method=simsiam",
        "method_args.proj_hidden_dim=32",
        "method_args.proj_dim=32",
        "method_args.pred_hidden_dim=8",
        "optim.warmup_epochs=1",
    )
    cfg = module.configure_optimizers()
    opt, sched = cfg["optimizer"], cfg["lr_scheduler"]["scheduler"]
    predictor = {id(p) for p in module.method.predictor.parameters()}
    fixed = [g for g in opt.param_groups if g["fixed_lr"]]
    assert {id(p) for g in fixed for p in g["params"]} == predictor
    peak = fixed[0]["initial_lr"]
    seen: list[tuple[float, float]] = []
    for _ in range(100):
        seen.append((fixed[0]["lr"], next(g for g in opt.param_groups if not g["fixed_lr"])["lr"]))
        opt.step()
        sched.step()
    assert all(f == pytest.approx(peak) for f, _ in seen)
    others = [o for _, o in seen]
    assert others[0] == pytest.approx(peak / 10) and max(others) == pytest.approx(peak) and others[-1] < peak / 100


def test_lars_matches_naive_update() -> None:
    """LARS: trust ratio eta * |w| / |g + wd w| scales the update of non-excluded groups; excluded ones are SGD."""
    torch.manual_seed(0)
    w, b = nn.Parameter(torch.randn(4, 3)), nn.Parameter(torch.randn(4))
    w.grad, b.grad = torch.randn(4, 3), torch.randn(4)
    w0, b0, gw, gb = w.detach().clone(), b.detach().clone(), w.grad.clone(), b.grad.clone()
    groups = [{"params": [w], "lars_exclude": False}, {"params": [b], "lars_exclude": True, "weight_decay": 0.0}]
    opt = LARS(groups, lr=0.1, momentum=0.9, weight_decay=0.01, eta=0.02)
    opt.step()
    d = gw + 0.01 * w0
    torch.testing.assert_close(w.detach(), w0 - 0.1 * (0.02 * w0.norm() / d.norm()) * d)
    torch.testing.assert_close(b.detach(), b0 - 0.1 * gb)
    assert isinstance(build_optimizer("lars", param_groups(nn.Linear(2, 2), 0.1, True), 0.1, 0.9, 0.1), LARS)
    adamw = build_optimizer("adamw", param_groups(nn.Linear(2, 2), 0.1, True), 0.1, 0.9, 0.1, betas=(0.8, 0.9))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["betas"] == (0.8, 0.9)
    with pytest.raises(ValueError, match="valid names"):
        build_optimizer("adam", [], 0.1, 0.9, 0.0)


def test_swav_multicrop_through_the_module() -> None:
    """``augment.views`` with two extra small crops: SwAV predicts the codes from all four views."""
    module = _module(
        "method=swav",
        "method_args.proj_hidden_dim=32",
        "method_args.num_prototypes=8",
        "augself.crop=1.0",
        "augment.views=[{},{},{size: 8, crop_scale: [0.05, 0.3]},{size: 8, crop_scale: [0.05, 0.3]}]",
        attach=False,
    )
    shapes: list[tuple[int, ...]] = []
    module.method.backbone.register_forward_pre_hook(lambda _m, a: shapes.append(tuple(a[0].shape)))
    batch = {"image": torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8), "label": torch.zeros(8).long()}
    loss = module.training_step(batch, 0)
    assert math.isfinite(float(loss))
    assert [s[-1] for s in shapes] == [16, 16, 8, 8]


def test_bf16_mixed_with_monitors() -> None:
    """bf16-mixed on CPU (augmentation stays float32), AugSelf + E-SSL + online probe; the kNN monitor logs a
    top-1 accuracy in [0, 100] at the end of the epoch and the probe its accuracy."""
    cfg = load_config(
        None,
        [*TINY, "augself.crop=1.0", "augself.color=1.0", "essl.weight=0.4", "essl.hidden_dim=16", "seed=3"],
    )
    ds = build_dataset("synthetic", "train", size=16, n=64, seed=0)
    test = build_dataset("synthetic", "test", size=16, n=64, seed=0)
    module = PretrainModule(cfg, num_classes=len(ds.classes))
    monitor = KNNMonitor(ds, test, len(ds.classes), every_n_epochs=1, k=5, max_samples=64)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        precision="bf16-mixed",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[monitor],
    )
    trainer.fit(module, torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, drop_last=True))
    metrics = trainer.callback_metrics
    assert trainer.global_step == 2 and math.isfinite(float(metrics["train/loss"]))
    assert 0.0 <= float(metrics["monitor/knn_top1"]) <= 100.0
    assert 0.0 <= float(metrics["train/probe/acc"]) <= 1.0
    assert module.online_probe is not None and module.online_probe.weight.dtype == torch.float32
