"""Issue 12 Sec. 1/4: the paper configs (configs/stl10, configs/imagenet100) select the AugSelf reference's
training settings, and each setting behaves as the reference code (hankook/AugSelf) does.

Reference lines cited below are those of hankook/AugSelf at commit c131db6 (pretrain.py, trainers.py, models.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augself.augment import ViewConfig
from augself.augment.sample import sample_params
from augself.augself_head import AugSelf
from augself.config import ConfigError, load_config
from augself.data.registry import build_dataset
from augself.methods import build_method
from augself.models import build_backbone
from augself.train.module import PretrainModule
from augself.train.run import run_pretrain
from augself.train.scaling import batch_plan

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
METHODS = ("simclr", "moco", "byol", "simsiam", "swav")
PAPER = [CONFIGS / ds / f"{m}{s}.yaml" for ds in ("stl10", "imagenet100") for m in METHODS for s in ("", "_augself")]
TINY = [
    "data.name=synthetic",
    "data.size=16",
    "augment.size=16",
    "model.backbone=small_cnn",
    "trainer.batch_size=8",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "monitor.online_probe=false",
]


def _attach(module: PretrainModule, **trainer: object) -> PretrainModule:
    """Give ``module`` the trainer attributes ``configure_optimizers`` reads."""
    fake = {"world_size": 1, "estimated_stepping_batches": 100, "max_epochs": 10, **trainer}
    module._trainer = SimpleNamespace(**fake)  # type: ignore[assignment]
    return module


# ---- the paper configs ask for the reference behaviour -------------------------------------------------
@pytest.mark.parametrize("path", PAPER, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_paper_configs_select_the_reference_settings(path: Path) -> None:
    cfg = load_config(path)
    o, t = cfg.optim, cfg.trainer
    assert (o.name, o.momentum, o.scale_lr, o.warmup_epochs, o.min_lr_ratio) == ("sgd", 0.9, True, 0.0, 0.0)
    assert not o.exclude_norm_bias  # pretrain.py 51-53: one SGD over every parameter
    assert (o.lr_interval, o.ema_interval) == ("epoch", "epoch")  # pretrain.py 55, 345-348; trainers.py 282
    assert t.precision == "32-true" and cfg.model.init == "pytorch"  # no autocast; models.py 10-20, 30
    assert t.accumulate_grad_batches == 1 and t.sync_batchnorm  # pretrain.py 35: sync_bn=True
    if path.parent.name == "stl10":  # README.md 28-38: one GPU, batch 256, 200 epochs, pretrain.py defaults
        assert (t.batch_size, t.batch_scope, t.devices, t.epochs) == (256, "device", 1, 200)
        assert (o.base_lr, o.weight_decay, cfg.model.backbone) == (0.03, 5e-4, "resnet18")
        lam = 1.0
    else:  # README.md 42-55: --batch-size 256 (global, split by auto_dataloader), 500 epochs, lr 0.05, wd 1e-4
        assert (t.batch_size, t.batch_scope, t.epochs) == (256, "global", 500)
        assert (o.base_lr, o.weight_decay, cfg.model.backbone) == (0.05, 1e-4, "resnet50")
        lam = 0.5
    assert cfg.augself == ({"crop": lam, "color": lam} if "augself" in path.stem else {})
    assert batch_plan(t, o.base_lr, o.scale_lr, 1).describe().startswith("global batch 256 (256 x 1 device")
    expected_args: dict[str, dict] = {"moco": {"enqueue": "query"}}  # trainers.py 172-175
    if path.parent.name == "imagenet100":
        expected_args["simsiam"] = {"proj_layers": 3}  # pretrain.py line 40
    assert cfg.method_args == expected_args.get(cfg.method, {})


# ---- SimSiam: 3-layer projector on ImageNet-100 (pretrain.py line 40) ---------------------------------
@pytest.mark.parametrize(("dataset", "layers", "dim"), [("imagenet100", 3, 2048), ("stl10", 2, 512)])
def test_simsiam_projector_depth(dataset: str, layers: int, dim: int) -> None:
    cfg = load_config(CONFIGS / dataset / "simsiam_augself.yaml")
    method = build_method("simsiam", build_backbone(cfg.model.backbone, init=cfg.model.init), **cfg.method_args)
    mods = list(method.projector)
    linears = [m for m in mods if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(dim, 2048)] + [(2048, 2048)] * (layers - 1)
    assert all(m.bias is None for m in linears)  # load_mlp: hidden bias=False, last bias=not last_bn
    # load_mlp(..., last_bn=True): Linear, BN, ReLU, ..., Linear, BN
    assert [type(m) for m in mods] == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * (layers - 1) + [nn.Linear, nn.BatchNorm1d]


# ---- SwAV: the reference's loss scale (trainers.py lines 292-308, 365-373) -----------------------------
def _reference_sinkhorn(q: Tensor, iters: int) -> Tensor:
    """trainers.py::distributed_sinkhorn on one device, in float64: Q (K, B)."""
    q = q / q.sum()
    r = torch.ones(q.shape[0], dtype=q.dtype) / q.shape[0]
    c = torch.ones(q.shape[1], dtype=q.dtype) / q.shape[1]
    for _ in range(iters):
        q = q * (r / q.sum(dim=1)).unsqueeze(1)
        q = q * (c / q.sum(dim=0)).unsqueeze(0)
    return (q / q.sum(dim=0, keepdim=True)).t()


def _reference_swav_loss(p1: Tensor, p2: Tensor, eps: float = 0.05, iters: int = 3, t: float = 0.1) -> Tensor:
    """trainers.py lines 365-373: ``loss1 + loss2`` with softmax / log written out."""
    p1, p2 = p1.double(), p2.double()
    q1 = _reference_sinkhorn(torch.exp(p1 / eps).t(), iters)
    q2 = _reference_sinkhorn(torch.exp(p2 / eps).t(), iters)
    s1, s2 = F.softmax(p1 / t, dim=1), F.softmax(p2 / t, dim=1)
    loss1 = -torch.mean(torch.sum(q1 * torch.log(s2), dim=1))
    loss2 = -torch.mean(torch.sum(q2 * torch.log(s1), dim=1))
    return loss1 + loss2


def test_swav_loss_equals_the_reference_formula() -> None:
    cfg = load_config(CONFIGS / "stl10" / "swav_augself.yaml")
    small = {"proj_hidden_dim": 32, "proj_dim": 16, "num_prototypes": 10}
    method = build_method("swav", build_backbone("small_cnn", widths=(8, 16, 16, 32)), **cfg.method_args, **small)
    views = [torch.rand(12, 3, 16, 16), torch.rand(12, 3, 16, 16)]
    loss = method(views).loss  # training mode: prototypes re-normalised first, as trainers.py 353-356
    with torch.no_grad():  # the same forward by hand (train-mode BN gives the same batch statistics)
        z1, z2 = (F.normalize(method.projector(method.backbone(v)), dim=1) for v in views)
        p1, p2 = method.prototypes(z1), method.prototypes(z2)
    ref = _reference_swav_loss(p1, p2)
    # float32 forward (eps 1.2e-7) through a handful of reductions over 12 x 10 entries: 1e-5 relative is ample
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=0)
    mean = build_method("swav", method.backbone, **small, assign_reduction="mean")
    mean.load_state_dict(method.state_dict())
    assert float(method(views).loss) / float(mean(views).loss) == pytest.approx(2.0, rel=1e-6)


# ---- MoCo: the queue receives the online queries (trainers.py lines 147, 172-175) ---------------------
@pytest.mark.parametrize("dataset", ["stl10", "imagenet100"])
def test_moco_paper_queue_holds_the_normalised_queries(dataset: str) -> None:
    cfg = load_config(CONFIGS / dataset / "moco_augself.yaml")
    small = {"proj_hidden_dim": 32, "proj_dim": 16, "queue_size": 24}
    moco = build_method("moco", build_backbone("small_cnn", widths=(8, 16, 16, 32)), **cfg.method_args, **small)
    before = moco.queue.clone()
    views = [torch.rand(8, 3, 16, 16), torch.rand(8, 3, 16, 16)]
    moco(views)
    with torch.no_grad():
        q = F.normalize(moco.projector(moco.backbone(views[0])), dim=1)
        k = F.normalize(moco.momentum_projector(moco.momentum_backbone(views[1])), dim=1)
    torch.testing.assert_close(moco.queue[:, :8], q.T, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(moco.queue[:, :8], k.T, atol=1e-2)  # not the keys (standard MoCo)
    assert torch.equal(moco.queue[:, 8:], before[:, 8:]) and int(moco.queue_ptr) == 8


# ---- weight decay on every parameter (pretrain.py lines 51-53) ----------------------------------------
@pytest.mark.parametrize("dataset", ["stl10", "imagenet100"])
def test_paper_configs_decay_batchnorm_weights(dataset: str) -> None:
    cfg = load_config(CONFIGS / dataset / "simsiam_augself.yaml", ["model.backbone=small_cnn"])
    module = _attach(PretrainModule(cfg))
    opt = module.configure_optimizers()["optimizer"]
    decay_of = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    bn = [m for m in module.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) and m.affine]
    assert len(bn) > 10
    assert all(decay_of[id(m.weight)] == cfg.optim.weight_decay for m in bn)
    assert all(decay_of[id(m.bias)] == cfg.optim.weight_decay for m in bn)
    assert set(decay_of.values()) == {cfg.optim.weight_decay}
    assert len(decay_of) == sum(1 for p in module.parameters() if p.requires_grad)
    # the predictor (its own constant-lr SGD in the reference, pretrain.py 54) is decayed too
    fixed = [g for g in opt.param_groups if g["fixed_lr"]]
    assert fixed and all(g["weight_decay"] == cfg.optim.weight_decay for g in fixed)


# ---- initialisation: PyTorch's default for every conv (models.py lines 10-20, 24-31) -------------------
def _reference_backbone(name: str) -> nn.Module:
    """models.py::load_backbone: torchvision ResNet(zero_init_residual=True), fc = Identity, reset_parameters."""
    import torchvision

    net = getattr(torchvision.models, name)(zero_init_residual=True)
    net.fc = nn.Identity()
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            m.reset_parameters()
        if isinstance(m, nn.Linear):
            bound = 1 / math.sqrt(nn.init._calculate_fan_in_and_fan_out(m.weight)[0])
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.uniform_(m.bias, -bound, bound)
    return net


def test_pytorch_init_equals_the_reference_procedure() -> None:
    torch.manual_seed(5)
    ref = _reference_backbone("resnet18").state_dict()
    torch.manual_seed(5)
    ours = build_backbone("resnet18", init="pytorch").net.state_dict()
    assert ref.keys() == ours.keys()
    assert all(torch.equal(ref[k], ours[k]) for k in ref)
    torch.manual_seed(5)
    default = build_backbone("resnet18").net.state_dict()
    assert not torch.equal(default["layer1.0.conv1.weight"], ours["layer1.0.conv1.weight"])


def _exceeds_default_bound(net: nn.Module) -> list[bool]:
    """For each conv: does a weight lie outside U(+-1/sqrt(fan_in)), the support of PyTorch's default init?"""
    out = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            bound = 1 / math.sqrt(nn.init._calculate_fan_in_and_fan_out(m.weight)[0])
            out.append(bool((m.weight.abs() > bound).any()))
    return out


def test_paper_config_backbone_uses_the_pytorch_init() -> None:
    cfg = load_config(CONFIGS / "stl10" / "simclr_augself.yaml")
    module = PretrainModule(cfg)
    assert not any(_exceeds_default_bound(module.method.backbone))
    # teeth: torchvision's kaiming-normal (fan_out) init leaves that support in (almost) every conv
    torchvision_init = load_config(CONFIGS / "stl10" / "simclr_augself.yaml", ["model.init=torchvision"])
    assert sum(_exceeds_default_bound(PretrainModule(torchvision_init).method.backbone)) > 15
    with pytest.raises(ConfigError, match=r"model\.init"):
        PretrainModule(load_config(None, [*TINY, "model.init=kaiming"]))


# ---- bf16: the AugSelf loss is computed in float32 ----------------------------------------------------
def test_augself_loss_is_float32_under_bf16_autocast() -> None:
    """Heads whose bf16 outputs equal their fp32 outputs exactly (small integer weights and features on a 1/4
    grid), so both runs see the same predictions: the loss must then agree to float32 rounding. A loss that
    rounds its float32 targets to bf16 (error up to 2^-9 relative) is off by ~1e-4 and fails."""
    cfg = ViewConfig(size=16)
    gen = torch.Generator().manual_seed(0)
    p1, p2 = (sample_params(cfg, 32, generator=gen, input_size=(24, 24)) for _ in range(2))
    aug = AugSelf(4, {"crop": 1.0, "color": 1.0, "flip": 0.5})
    for name, head in list(aug.heads.items()):
        out_dim = head[-1].out_features
        aug.heads[name] = nn.Linear(8, out_dim, bias=False)
        with torch.no_grad():
            aug.heads[name].weight.copy_(torch.randint(-1, 2, (out_dim, 8), generator=gen).float())
    y1, y2 = (torch.randint(-4, 5, (32, 4), generator=gen).float() / 4 for _ in range(2))
    dtypes: list[torch.dtype] = []
    for head in aug.heads.values():
        head.register_forward_hook(lambda _m, _i, out: dtypes.append(out.dtype))
    fp32, logs32 = aug(y1, y2, p1, p2, cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16, logs16 = aug(y1, y2, p1, p2, cfg)
    assert dtypes == [torch.float32] * 3 + [torch.bfloat16] * 3  # the autocast run did predict in bf16
    assert bf16.dtype == torch.float32
    for name in logs32:  # a mean over <= 256 terms in float32: 1e-6 relative covers the summation order
        torch.testing.assert_close(logs16[name], logs32[name], rtol=1e-6, atol=0)
    torch.testing.assert_close(bf16, fp32, rtol=1e-6, atol=0)


# ---- schedules: per-epoch cosine lr and BYOL momentum (pretrain.py 55, 345-348; trainers.py 282) ------
class _Recorder(L.Callback):
    def __init__(self) -> None:
        self.rows: list[tuple[int, float, float | None]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self._lr = next(g["lr"] for g in trainer.optimizers[0].param_groups if not g["fixed_lr"])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.rows.append((trainer.current_epoch, self._lr, pl_module.ema_tau))


def _fit_byol(interval: str, epochs: int = 3) -> tuple[PretrainModule, list[tuple[int, float, float | None]]]:
    over = [
        *TINY,
        "method=byol",
        "method_args.proj_hidden_dim=16",
        "method_args.proj_dim=8",
        "method_args.pred_hidden_dim=16",
        f"optim.lr_interval={interval}",
        f"optim.ema_interval={interval}",
        f"trainer.epochs={epochs}",
    ]
    module = PretrainModule(load_config(None, over))
    rec = _Recorder()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[rec],
    )
    data = build_dataset("synthetic", "train", size=16, n=24, seed=0)
    trainer.fit(module, torch.utils.data.DataLoader(data, batch_size=8, drop_last=True))
    return module, rec.rows


def test_per_epoch_lr_and_byol_momentum_follow_the_reference() -> None:
    epochs, tau0 = 3, 0.996
    module, rows = _fit_byol("epoch", epochs)
    assert [r[0] for r in rows] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    lr0 = 0.03 * 8 / 256
    # the reference: CosineAnnealingLR(T_max=max_epochs) stepped once per epoch (pretrain.py 55, 345-348)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    ref_lr = []
    for _ in range(epochs):
        ref_lr.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    for epoch, lr, tau in rows:
        assert lr == pytest.approx(ref_lr[epoch], rel=1e-12)
        e = epoch + 1  # ignite's engine.state.epoch is 1-based (trainers.py line 282)
        assert tau == pytest.approx(1 - (1 - tau0) * (math.cos(math.pi * (e - 1) / epochs) + 1) / 2, rel=1e-12)
    assert len({r[1] for r in rows}) == epochs and len({r[2] for r in rows}) == epochs  # constant per epoch
    assert module.cfg.optim.lr_interval == "epoch"


def test_per_step_schedules_move_within_an_epoch() -> None:
    """The library default (``interval: step``) changes both lr and tau at every step (teeth for the above)."""
    _, rows = _fit_byol("step", 2)
    assert len({r[1] for r in rows}) == len(rows) and len({r[2] for r in rows}) == len(rows)


# ---- batch and lr: pinned device, global batch, one start-up line ------------------------------------
def test_batch_plan_device_and_global_scope() -> None:
    stl = load_config(CONFIGS / "stl10" / "simclr.yaml").trainer
    assert stl.devices == 1
    plan = batch_plan(stl, 0.03, True, 1)
    assert plan.describe() == "global batch 256 (256 x 1 device x 1 accumulation), lr 0.03 (base 0.03 x 256/256)"
    assert batch_plan(stl, 0.03, True, 8).global_batch == 2048  # what devices: auto did on 8 GPUs
    in100 = load_config(CONFIGS / "imagenet100" / "simclr.yaml").trainer
    plan = batch_plan(in100, 0.05, True, 4)
    assert (plan.per_device, plan.global_batch, plan.lr) == (64, 256, 0.05)
    assert plan.describe() == "global batch 256 (64 x 4 devices x 1 accumulation), lr 0.05 (base 0.05 x 256/256)"
    with pytest.raises(ConfigError, match="split evenly"):
        batch_plan(in100, 0.05, True, 3)
    assert batch_plan(stl, 0.05, False, 2).describe().endswith("lr 0.05 (base 0.05, unscaled)")


def test_every_run_prints_its_global_batch_and_lr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    over = [*TINY, "data.n=64", "data.num_workers=0", "trainer.max_steps=1", "trainer.progress_bar=false"]
    run_pretrain(load_config(None, [*over, f"out={tmp_path / 'run'}"]))
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("global batch")]
    assert lines == ["global batch 8 (8 x 1 device x 1 accumulation), lr 0.0009375 (base 0.03 x 8/256)"]
