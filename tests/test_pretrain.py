"""Pretraining through Lightning: every method with and without AugSelf learns; resume; CLI end to end."""

from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import pytest
import torch

from augself.config import load_config
from augself.train.module import PretrainModule
from augself.train.run import run_pretrain
from helpers import TINY_RUN

TINY = [*TINY_RUN, "trainer.log_every_n_steps=1", "monitor.online_probe=false"]

SMALL_HEADS = {
    "simclr": [],
    "moco": ["method_args.queue_size=64"],
    "byol": ["method_args.proj_hidden_dim=128", "method_args.pred_hidden_dim=128"],
    "simsiam": [
        "method_args.proj_hidden_dim=128",
        "method_args.proj_dim=128",
        "method_args.pred_hidden_dim=32",
    ],
    "swav": [
        "method_args.proj_hidden_dim=128",
        "method_args.num_prototypes=16",
        "method_args.freeze_prototypes_iters=2",
    ],
    "barlow": ["method_args.proj_hidden_dim=128", "method_args.proj_dim=128"],
    "vicreg": ["method_args.proj_hidden_dim=128", "method_args.proj_dim=128"],
    "supervised": [],
}


class LossRecorder(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.losses.append(float(outputs["loss"]))


def _fixed_loss(module: PretrainModule, batch: dict[str, torch.Tensor], queue: torch.Tensor | None) -> float:
    """Training-mode loss on a fixed batch with fixed augmentation draws (no update kept).

    MoCo's negatives are pinned to the initial queue so that only the encoder's change is measured.
    """
    gen = torch.Generator().manual_seed(123)
    views = module.augmenter(batch["image"], batch["source_crop"], generator=gen)
    method = copy.deepcopy(module.method)
    if queue is not None:
        method.queue.copy_(queue)
    with torch.no_grad():
        out = method([v.image for v in views[:2]], batch["label"])
        loss = out.loss
        if module.augself is not None:
            loss = (
                loss
                + module.augself(
                    out.features[0], out.features[1], views[0].params, views[1].params, module.view_cfgs[0]
                )[0]
            )
    return float(loss)


@pytest.mark.parametrize("augself", [False, True], ids=["plain", "augself"])
@pytest.mark.parametrize("method", sorted(SMALL_HEADS))
def test_every_method_learns(method: str, augself: bool, tmp_path: Path) -> None:
    over = [
        *TINY,
        f"method={method}",
        f"out={tmp_path}",
        "trainer.max_steps=12",
        "trainer.epochs=100",
        "optim.name=adamw",
        "optim.base_lr=0.003",
        "optim.scale_lr=false",
        *SMALL_HEADS[method],
    ]
    if augself:
        over += ["augself.crop=1.0", "augself.color=1.0"]
    cfg = load_config(None, over)
    from augself.data.registry import build_dataset

    ds = build_dataset("synthetic", "train", size=16, n=64, seed=0)
    batch = torch.utils.data.default_collate([ds[i] for i in range(32)])
    module = PretrainModule(cfg, num_classes=len(ds.classes))
    queue = module.method.queue.clone() if hasattr(module.method, "queue") else None
    before = _fixed_loss(module, batch, queue)
    trainer = L.Trainer(
        max_steps=12,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    loader = torch.utils.data.DataLoader(ds, batch_size=32, shuffle=True, drop_last=True)
    trainer.fit(module, loader)
    after = _fixed_loss(module, batch, queue)
    assert after < before, f"{method} augself={augself}: loss {before:.4f} -> {after:.4f}"


def test_augself_gradients_reach_backbone(tmp_path: Path) -> None:
    cfg = load_config(None, [*TINY, "augself.crop=1.0", "augself.color=1.0", f"out={tmp_path}"])
    module = PretrainModule(cfg)
    x = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    views = module.augmenter(x, generator=torch.Generator().manual_seed(0))
    feats = [module.method.backbone(v.image) for v in views]
    loss, logs = module.augself(feats[0], feats[1], views[0].params, views[1].params, module.view_cfgs[0])
    loss.backward()
    grads = [p.grad for p in module.method.backbone.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
    assert set(logs) == {"augself/crop", "augself/color"}


class CrashAtEpoch(L.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


def _read_losses(path: Path) -> list[float]:
    import csv

    rows = list(csv.DictReader(path.open()))
    return [float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")]


def test_resume_reproduces_uninterrupted_run(tmp_path: Path) -> None:
    base = [*TINY, "trainer.epochs=4", "trainer.checkpoint_every_n_epochs=1", "augself.crop=1.0", "seed=3"]
    full = run_pretrain(load_config(None, [*base, f"out={tmp_path / 'full'}"]))
    part_cfg = load_config(None, [*base, f"out={tmp_path / 'part'}"])
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_pretrain(part_cfg, callbacks=[CrashAtEpoch(2)])
    assert not (tmp_path / "part" / "backbone.pt").exists()
    resumed = run_pretrain(load_config(None, [*base, f"out={tmp_path / 'part'}"]), resume=True)
    a, b = _read_losses(full / "metrics.csv"), _read_losses(resumed / "metrics.csv")
    assert len(a) == len(b) == 8
    assert a == pytest.approx(b, rel=1e-5, abs=1e-6)


def test_cli_end_to_end(tmp_path: Path) -> None:
    from augself import load_backbone
    from augself.cli import main

    rc = main(["pretrain", "--out", str(tmp_path / "run"), *TINY, "trainer.epochs=1", "augself.crop=1.0"])
    assert rc == 0
    run = tmp_path / "run"
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()
    assert (run / "checkpoints" / "last.ckpt").is_file()
    backbone = load_backbone(run / "backbone.pt")
    assert backbone(torch.rand(2, 3, 16, 16)).shape == (2, backbone.dim)
    # a second run into the same folder is refused instead of silently overwriting it
    assert main(["pretrain", "--out", str(run), *TINY, "trainer.epochs=1"]) == 2
