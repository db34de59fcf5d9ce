"""Learned per-input augmentations (InstaAug, ``augment.learned``) in pretraining: per-sample method losses, the
module's training and lr schedule, exact resume, ``learned.pt`` and one-line config errors.

Tiny runs: 64 synthetic 16-px images, batches of 32 (2 optimiser steps per epoch), the small CNN, on the CPU.
"""

from __future__ import annotations

import copy
import csv
import pickle
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from augself.augment.learned import LearnedAugment
from augself.augment.learned.io import load_learned
from augself.cli import main
from augself.config import ConfigError, learned_config, load_config, to_dict, to_yaml
from augself.methods import METHODS, build_method
from augself.models.backbones import build_backbone
from augself.train.checkpointing import check_resume_config, load_checkpoint
from augself.train.optim import lr_scheduler_config, module_group, module_lr_factor
from augself.train.run import run_pretrain
from helpers import TINY_RUN

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = [*TINY_RUN, "trainer.log_every_n_steps=1", "monitor.online_probe=false"]
STEPS_PER_EPOCH = 64 // 32

SMALL_HEADS: dict[str, dict[str, Any]] = {
    "simclr": {},
    "essl_simclr": {"proj_hidden_dim": 32, "proj_dim": 32},
    "moco": {"queue_size": 64},
    "byol": {"proj_hidden_dim": 32, "pred_hidden_dim": 32},
    "simsiam": {"proj_hidden_dim": 32, "proj_dim": 32, "pred_hidden_dim": 16},
    "swav": {"proj_hidden_dim": 32, "num_prototypes": 8},
    "barlow": {"proj_hidden_dim": 32, "proj_dim": 32},
    "vicreg": {"proj_hidden_dim": 32, "proj_dim": 32},
    "supervised": {"num_classes": 4},
}


# ------------------------------------------------------------------------------------------ per-sample losses
@pytest.mark.parametrize("name", sorted(SMALL_HEADS))
def test_per_sample_loss_averages_to_the_loss(name: str) -> None:
    """Every method with ``per_sample_loss`` returns (V, B) losses whose mean is its loss (float32 rounding of a
    mean over 2 x 8 terms); the batch-level ones return None, and the flag says which."""
    torch.manual_seed(0)
    method = build_method(name, build_backbone("small_cnn"), **SMALL_HEADS[name])
    views = [torch.randn(8, 3, 16, 16) for _ in range(2)]
    out = method(views, torch.arange(8) % 4)
    if not METHODS[name].per_sample_loss:
        assert out.per_sample is None
        return
    assert out.per_sample is not None and out.per_sample.shape == (2, 8)
    assert float(out.per_sample.mean()) == pytest.approx(float(out.loss), rel=1e-5, abs=1e-6)
    # each row depends on its own view: changing view 0 of sample 3 changes that sample's row-0 loss
    views[0][3] = torch.randn(3, 16, 16)
    method.eval()  # BatchNorm with running statistics: the other samples' features stay put
    a = method([v.clone() for v in views], torch.arange(8) % 4).per_sample
    views[0][3] = torch.randn(3, 16, 16)
    b = method(views, torch.arange(8) % 4).per_sample
    assert a is not None and b is not None
    assert not torch.allclose(a[0, 3], b[0, 3])


# ------------------------------------------------------------------------------------------ schedule (unit)
def test_module_lr_factor_is_zero_then_a_linear_ramp_then_constant() -> None:
    # contrastive reference: no_train_period 50, warmup 0 -> 0 for epochs 0..49, then 1
    assert [module_lr_factor(e, 50, 0) for e in (0, 49, 50, 400)] == [0.0, 0.0, 1.0, 1.0]
    # supervised reference: warmup 10 from epoch 0 -> (k + 1) / 10
    assert [module_lr_factor(e, 0, 10) for e in (0, 4, 9, 20)] == pytest.approx([0.1, 0.5, 1.0, 1.0])
    assert [module_lr_factor(e, 2, 4) for e in (1, 2, 3, 5, 6)] == pytest.approx([0.0, 0.25, 0.5, 1.0, 1.0])


@pytest.mark.parametrize("interval", ["step", "epoch"])
def test_module_group_follows_its_own_schedule_not_the_cosine(interval: str) -> None:
    net, module = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    groups = [{"params": list(net.parameters())}, module_group(module, 0.5, 0.0, start_epoch=1, warmup_epochs=2)]
    opt = torch.optim.SGD(groups, lr=1.0)
    sched = lr_scheduler_config(opt, interval, total_steps=12, epochs=4, steps_per_epoch=3)["scheduler"]
    lrs = []
    for _ in range(4 if interval == "epoch" else 12):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    module_lrs = [lr[1] for lr in lrs]
    per_epoch = [0.0, 0.25, 0.5, 0.5]  # 0 in epoch 0, then (k - 1 + 1) / 2 * 0.5
    expected = per_epoch if interval == "epoch" else [x for x in per_epoch for _ in range(3)]
    assert module_lrs == pytest.approx(expected)
    assert lrs[0][0] == 1.0 and lrs[-1][0] < 0.5  # the backbone's cosine


# ------------------------------------------------------------------------------------------ training runs
class Snapshots(L.Callback):
    """The invariance module's state at the start of every epoch and at the end of training."""

    def __init__(self) -> None:
        self.states: list[dict[str, torch.Tensor]] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.states.append(copy.deepcopy(pl_module.learned.state_dict()))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.states.append(copy.deepcopy(pl_module.learned.state_dict()))


def _params_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Equal trainable weights (BatchNorm running statistics excluded: they move whatever the lr)."""
    keys = [k for k in a if "running" not in k and "num_batches" not in k]
    return all(torch.equal(a[k], b[k]) for k in keys)


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def test_supervised_learned_angle_trains_after_start_epoch_with_a_linear_warmup(tmp_path: Path) -> None:
    lr = 0.05
    over = [
        *TINY,
        "method=supervised",
        f"out={tmp_path / 'run'}",
        "trainer.epochs=4",
        "augment.learned.angle.entropy_weight=0.1",
        f"augment.learned.lr={lr}",
        "augment.learned.start_epoch=1",
        "augment.learned.warmup_epochs=2",
    ]
    snaps = Snapshots()
    out = run_pretrain(load_config(None, over), callbacks=[snaps])
    first, after_epoch0, final = snaps.states[0], snaps.states[1], snaps.states[-1]
    assert _params_equal(first, after_epoch0)  # lr 0 during epoch 0
    assert not _params_equal(after_epoch0, final)  # trained from epoch 1 on
    # the logged lr of the module's group: 0, then (k - 1 + 1) / 2, then constant
    logged = [float(r["lr-SGD/learned"]) for r in _rows(out / "metrics.csv") if r.get("lr-SGD/learned")]
    expected = [lr * f for f in (0.0, 0.5, 1.0, 1.0) for _ in range(STEPS_PER_EPOCH)]
    assert logged == pytest.approx(expected)
    widths = [
        float(r["train/learned/angle/entropy"])
        for r in _rows(out / "metrics.csv")
        if r.get("train/learned/angle/entropy")
    ]
    assert len(widths) == 4 * STEPS_PER_EPOCH and all(w > 0 for w in widths)

    # learned.pt: plain data (weights_only), the final module, its config
    data = torch.load(out / "learned.pt", weights_only=True)
    assert data["format"] == 1 and set(data) >= {"config", "state_dict"}
    module = load_learned(out / "learned.pt")
    assert isinstance(module, LearnedAugment) and module.cfg == learned_config(load_config(None, over))
    assert module.state_dict().keys() == final.keys()
    assert all(torch.equal(module.state_dict()[k], final[k]) for k in final)
    ckpt = load_checkpoint(out / "checkpoints" / "last.ckpt")
    assert all(torch.equal(ckpt["state_dict"][f"learned.{k}"], final[k]) for k in final)


def test_learned_pt_that_holds_code_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("ran",))

    path = tmp_path / "learned.pt"
    torch.save({"format": 1, "config": {}, "state_dict": {}, "x": Evil()}, path)
    with pytest.raises(ValueError, match="refusing to load") as e:
        load_learned(path)
    assert "\n" not in str(e.value)
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError):
        load_learned(path)


def test_simclr_learned_crop_with_augself_and_essl_trains_from_a_config(tmp_path: Path) -> None:
    config = tmp_path / "crop.yaml"
    config.write_text(
        "method: simclr\n"
        "augself: {crop: 1.0, color: 1.0}\n"
        "essl: {weight: 0.4, hidden_dim: 32}\n"
        "augment:\n"
        "  learned:\n"
        "    crop: {grid: [[4, 0.5, 1.0], [1, 1.0, 1.0]], target_entropy: 2.5, entropy_weight: 0.3,"
        " target_ramp_epochs: 2}\n"
        "    lr: 0.05\n"
        "    warmup_epochs: 0\n"
    )
    snaps = Snapshots()
    cfg = load_config(config, [*TINY, f"out={tmp_path / 'run'}", "trainer.epochs=2"])
    out = run_pretrain(cfg, callbacks=[snaps])
    assert not _params_equal(snaps.states[0], snaps.states[-1])  # REINFORCE + entropy reached the module
    rows = _rows(out / "metrics.csv")
    cols = set(rows[0])
    assert {"train/learned/reinforce", "train/learned/crop/entropy", "train/learned/crop/target"} <= cols
    assert {"train/augself/crop", "train/essl/rot_loss"} <= cols
    losses = [float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")]
    assert len(losses) == 2 * STEPS_PER_EPOCH and all(torch.isfinite(torch.tensor(losses)))
    # the target ramps from the first batch's entropy toward 2.5 over 2 epochs
    targets = [float(r["train/learned/crop/target"]) for r in rows if r.get("train/learned/crop/target")]
    entropy0 = float(next(r["train/learned/crop/entropy"] for r in rows if r.get("train/learned/crop/entropy")))
    assert targets[0] == pytest.approx(entropy0, rel=1e-5)
    assert targets[-1] == pytest.approx(0.5 * 2.5 + 0.5 * entropy0, rel=1e-5)
    assert load_learned(out / "learned.pt").cfg.crop is not None


class CrashAtStep(L.Callback):
    """Raises at the start of optimiser step ``step`` (after ``last.ckpt`` of that step was written)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


def test_resume_restores_the_module_and_its_optimizer_state_exactly(tmp_path: Path) -> None:
    """Supervised + learned crop (adaptive entropy bounds: the controller runs at every epoch end) and angle,
    interrupted in the middle of epoch 1 and resumed: weights, buffers (entropy weights, controller state) and the
    optimizer state equal the uninterrupted run's bit for bit."""
    base = [
        *TINY,
        "method=supervised",
        "seed=5",
        "trainer.epochs=3",
        "trainer.checkpoint_every_n_steps=1",
        "augment.learned.crop.grid=[[4, 0.5, 0.0], [1, 1.0, 3.0]]",
        "augment.learned.crop.entropy_bounds=[2.0, 2.5]",
        "augment.learned.angle.entropy_weight=0.1",
        "augment.learned.lr=0.05",
        "augment.learned.warmup_epochs=1",
    ]
    full = run_pretrain(load_config(None, [*base, f"out={tmp_path / 'full'}"]))
    part = tmp_path / "part"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_pretrain(load_config(None, [*base, f"out={part}"]), callbacks=[CrashAtStep(3)])
    assert load_checkpoint(part / "checkpoints" / "last.ckpt")["global_step"] == 3
    run_pretrain(load_config(None, [*base, f"out={part}"]), resume=True)
    a = load_checkpoint(full / "checkpoints" / "last.ckpt")
    b = load_checkpoint(part / "checkpoints" / "last.ckpt")
    assert a["global_step"] == b["global_step"] == 3 * STEPS_PER_EPOCH
    learned = [k for k in a["state_dict"] if k.startswith(("learned.", "learned_objective."))]
    assert any(k.startswith("learned.net.") for k in learned) and "learned_objective.crop_weight" in learned
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    # the entropy-bounds controller ran at each epoch end on the logged epoch mean (its side: below / in / above)
    key = "train/learned/crop/entropy_epoch"
    epoch_means = [float(r[key]) for r in _rows(full / "metrics.csv") if r.get(key)]
    side = -1 if epoch_means[-1] < 2.0 else (1 if epoch_means[-1] > 2.5 else 0)
    assert len(epoch_means) == 3 and int(a["state_dict"]["learned_objective.crop_side"]) == side
    assert float(a["state_dict"]["learned_objective.crop_last"]) == pytest.approx(epoch_means[-1], rel=1e-6)
    opt_a, opt_b = a["optimizer_states"][0], b["optimizer_states"][0]
    assert [{k: v for k, v in g.items() if k != "params"} for g in opt_a["param_groups"]] == [
        {k: v for k, v in g.items() if k != "params"} for g in opt_b["param_groups"]
    ]
    assert any(g.get("name") == "learned" for g in opt_a["param_groups"])
    assert opt_a["state"].keys() == opt_b["state"].keys() and opt_a["state"]
    for i in opt_a["state"]:
        for k, v in opt_a["state"][i].items():
            assert torch.equal(v, opt_b["state"][i][k]), (i, k)
    assert (part / "learned.pt").is_file()
    la, lb = torch.load(full / "learned.pt", weights_only=True), torch.load(part / "learned.pt", weights_only=True)
    assert all(torch.equal(la["state_dict"][k], lb["state_dict"][k]) for k in la["state_dict"])


# ------------------------------------------------------------------------------------------ configuration
def test_learned_entry_round_trips_through_config_yaml(tmp_path: Path) -> None:
    over = ["augment.learned.crop.grid=[[8, 0.75, 1.0], [1, 1.0, 1.0]]", "augment.learned.crop.target_entropy=3.7"]
    cfg = load_config(None, over)
    (tmp_path / "config.yaml").write_text(to_yaml(cfg))
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg and learned_config(again) == learned_config(cfg)


def test_shipped_learned_configs_and_switching_a_family_off() -> None:
    root = Path(__file__).resolve().parents[1] / "configs" / "learned"
    rot = learned_config(load_config(root / "rotation_supervised.yaml"))
    assert rot is not None and rot.families == ("angle",) and (rot.lr, rot.warmup_epochs) == (1e-5, 10.0)
    assert rot.angle is not None and rot.angle.entropy.weight == 0.1
    crop_cfg = load_config(root / "crop_contrastive.yaml")
    crop = learned_config(crop_cfg)
    assert crop is not None and crop.crop is not None and crop.crop.grid == ((8, 0.75, 1.0), (1, 1.0, 1.0))
    assert (crop.crop.entropy.target, crop.crop.entropy.weight, crop.crop.entropy.ramp_epochs) == (3.7, 0.3, 100.0)
    assert (crop.lr, crop.start_epoch, crop.warmup_epochs) == (1e-4, 50.0, 0.0)
    assert crop_cfg.trainer.epochs == 500
    # OmegaConf merges mappings, so a family is switched off by null / false, which turns the entry off
    for off in ("null", "false"):
        assert learned_config(load_config(root / "crop_contrastive.yaml", [f"augment.learned.crop={off}"])) is None


def test_resume_compares_the_resolved_learned_settings() -> None:
    def ckpt(cfg_overrides: list[str]) -> dict[str, Any]:
        return {"hyper_parameters": {"config": to_dict(load_config(None, cfg_overrides)), "num_classes": None}}

    # the same settings spelled differently: accepted
    check_resume_config(
        ckpt(["augment.learned.angle={}"]),
        to_dict(load_config(None, ["augment.learned.angle.entropy_weight=0.1"])),
        None,
        "last.ckpt",
    )
    with pytest.raises(ConfigError, match=r"augment\.learned\.angle\.entropy\.weight: 0\.1 in the checkpoint"):
        check_resume_config(
            ckpt(["augment.learned.angle={}"]),
            to_dict(load_config(None, ["augment.learned.angle.entropy_weight=0.3"])),
            None,
            "last.ckpt",
        )
    with pytest.raises(ConfigError, match=r"augment\.learned"):  # switched on at resume
        check_resume_config(ckpt([]), to_dict(load_config(None, ["augment.learned.angle={}"])), None, "x")
    check_resume_config(  # a checkpoint from before augment.learned existed
        {"hyper_parameters": {"config": {k: v for k, v in to_dict(load_config()).items()}, "num_classes": None}},
        to_dict(load_config()),
        None,
        "x",
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["augment.learned.angle.entropy_weight=-1"], "augment.learned.angle.entropy_weight must be >= 0"),
        (["augment.learned.angel={}"], "Did you mean 'angle'"),
        (["augment.learned.lr=-0.1"], "augment.learned.lr must be >= 0"),
        (["method=barlow", "augment.learned.crop={}"], "method 'barlow' has a batch-level loss"),
        (["augment.learned=3"], "augment.learned must be a mapping"),
        (["augment.learned.crop.grid=[[4, 1.5, 0]]"], "augment.learned.crop.grid[0] side must be in (0, 1]"),
    ],
)
def test_bad_learned_config_is_one_line_exit_2_nothing_created(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["pretrain", "--out", str(tmp_path / "run"), *TINY, "trainer.epochs=1", *argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert expected in err
    assert not (tmp_path / "run").exists()


def test_learned_on_worker_cut_crops_is_refused_before_the_run(
    tmp_path: Path, colour_folder: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = colour_folder(tmp_path / "images", n_train=12, n_test=4)
    argv = [*TINY, f"data.name={folder}", "data.crop=full_image", "trainer.batch_size=8", "augment.learned.angle={}"]
    rc = main(["pretrain", "--out", str(tmp_path / "run"), *argv, "trainer.epochs=1"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert len(err.strip().splitlines()) == 1 and "data.crop=centre_square" in err
    assert not (tmp_path / "run").exists()
