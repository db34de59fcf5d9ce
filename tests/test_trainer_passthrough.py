"""Other lightning.Trainer arguments as ``trainer.<name>``: checked, passed on, saved, resumed (trainer_args)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from augself.config import ConfigError, load_config, to_dict
from augself.train.run import log_interval, run_pretrain
from augself.trainer_args import OWNED, trainer_parameters

TINY = [
    "data.name=synthetic",
    "data.n=128",
    "data.size=16",
    "data.num_workers=0",
    "augment.size=16",
    "model.backbone=small_cnn",
    "trainer.batch_size=32",  # 4 batches per epoch
    "trainer.progress_bar=false",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.log_every_n_steps=1",
    "trainer.checkpoint_every_n_epochs=1",
    "monitor.online_probe=false",
]


class Recorder(L.Callback):
    """The Trainer's settings, the batches of every epoch and the gradient norm each optimizer step applied."""

    def __init__(self) -> None:
        self.batches: dict[int, int] = {}
        self.settings: dict[str, object] = {}
        self.grad_norms: list[float] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.settings = {
            "gradient_clip_val": trainer.gradient_clip_val,
            "limit_train_batches": trainer.limit_train_batches,
            "num_training_batches": trainer.num_training_batches,
        }

        def after_step(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
            grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            self.grad_norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

        trainer.optimizers[0].register_step_post_hook(after_step)  # the gradients the update used (after clipping)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.batches[trainer.current_epoch] = self.batches.get(trainer.current_epoch, 0) + 1


class CrashAtEpoch(L.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


def _losses(path: Path) -> list[float]:
    rows = list(csv.DictReader(path.open()))
    return [float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")]


# ---------------------------------------------------------------------------------------------- config
def test_trainer_keys_are_kept_and_listed_as_written(tmp_path: Path) -> None:
    cfg = load_config(None, ["trainer.gradient_clip_val=1.0", "trainer.limit_train_batches=2", "trainer.epochs=3"])
    assert cfg.trainer.lightning_args == {"gradient_clip_val": 1.0, "limit_train_batches": 2}
    assert cfg.trainer.epochs == 3
    assert to_dict(cfg)["trainer"]["gradient_clip_val"] == 1.0  # the checkpoint's config: trainer.<name>
    # a YAML file, a whole trainer mapping, a later override and null (= Lightning's default) merge as other keys do
    path = tmp_path / "c.yaml"
    path.write_text("trainer:\n  gradient_clip_val: 0.5\n  max_time: '00:00:10:00'\n  epochs: 2\n")
    cfg = load_config(path, ["trainer={limit_train_batches: 0.5}", "trainer.max_time=null"])
    assert cfg.trainer.lightning_args == {"gradient_clip_val": 0.5, "limit_train_batches": 0.5}
    assert cfg.trainer.epochs == 2


@pytest.mark.parametrize(
    ("override", "closest"),
    [
        ("trainer.gradient_clip_vall=1.0", "'trainer.gradient_clip_val'"),  # Lightning's name
        ("trainer.limit_train_batch=2", "'trainer.limit_train_batches'"),
        ("trainer.epoch=3", "'trainer.epochs'"),  # ours
        ("trainer.batchsize=3", "'trainer.batch_size'"),
    ],
)
def test_unknown_trainer_key_is_one_line_with_the_closest_name(override: str, closest: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    msg = str(e.value)
    key = override.split("=")[0]
    assert msg.startswith(f"unknown config key {key!r} (override ")
    assert f"Did you mean {closest}?" in msg and "\n" not in msg


def test_unknown_trainer_key_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("trainer:\n  gradient_clip_vall: 1.0\n")
    with pytest.raises(ConfigError, match=r"'trainer.gradient_clip_vall' \(in .*c.yaml\).*'trainer.gradient_clip_val'"):
        load_config(path)


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("max_epochs", "3", "use trainer.epochs"),
        ("logger", "false", "use trainer.loggers"),
        ("enable_progress_bar", "false", "use trainer.progress_bar"),
        ("default_root_dir", "/tmp/x", "use out"),
        ("callbacks", "[]", "run_pretrain(cfg, callbacks="),
        ("enable_checkpointing", "true", "trainer.checkpoint_every_n_epochs"),
        ("plugins", "[]", "augself sets the plugins"),
        ("use_distributed_sampler", "false", "augself needs it on"),
        ("overfit_batches", "2", "use trainer.limit_train_batches"),
        ("barebones", "true", "switches off the loggers"),
    ],
)
def test_arguments_augself_sets_are_refused(name: str, value: str, hint: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, [f"trainer.{name}={value}"])
    assert str(e.value).startswith(f"trainer.{name} (override ") and hint in str(e.value)


def test_owned_names_are_this_lightnings_parameters() -> None:
    """Every refused name exists in the installed Lightning (else the table would guard nothing)."""
    params = trainer_parameters()
    assert set(OWNED) <= set(params)
    assert {"gradient_clip_val", "limit_train_batches", "max_time", "fast_dev_run"} <= set(params)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.limit_train_batches=abc", "trainer.limit_train_batches must be a number or null, got 'abc'"),
        ("trainer.gradient_clip_val=true", "trainer.gradient_clip_val must be a number or null, got True"),
        ("trainer.max_time=5", "trainer.max_time must be a string, a mapping or null"),
        ("trainer.fast_dev_run=[1]", "trainer.fast_dev_run must be "),
        ("trainer.limit_train_batches=0", "trainer.limit_train_batches must be > 0"),
        ("trainer.gradient_clip_val=.inf", "trainer.gradient_clip_val must be a finite number"),
        ("trainer.max_time={seconds: 0}", "trainer.max_time must be a duration > 0"),
        ("trainer.max_time='00:00:00:00'", "trainer.max_time must be a duration > 0"),
    ],
)
def test_value_of_the_wrong_type_is_refused_when_loading(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert str(e.value).startswith(expected), str(e.value)


@pytest.mark.parametrize(
    ("override", "name"),
    [
        ("trainer.limit_train_batches=1.5", "limit_train_batches"),
        ("trainer.gradient_clip_algorithm=foo", "gradient_clip_algorithm"),
        ("trainer.max_time=abc", "max_time"),
    ],
)
def test_value_lightning_refuses_is_one_line_exit_2_nothing_created(
    override: str, name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from augself.cli import main

    out = tmp_path / "run"
    assert main(["pretrain", "--out", str(out), *TINY, override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"augself pretrain: error: trainer.{name}=") and "rejected by Lightning" in err
    assert len(err.splitlines()) == 1
    assert not out.exists()


def test_resume_comparison_of_passed_through_arguments() -> None:
    """A changed Trainer argument may differ on --resume with a warning line (as trainer.epochs); max_time (when to
    stop) silently; a model setting still refuses the checkpoint."""
    from augself.train.checkpointing import check_resume_config

    def ckpt(*over: str) -> dict[str, object]:
        return {"hyper_parameters": {"config": to_dict(load_config(None, list(over))), "num_classes": None}}

    saved = ckpt("trainer.gradient_clip_val=1.0", "trainer.max_time='00:01:00:00'")
    now = to_dict(load_config(None, ["trainer.gradient_clip_val=0.5", "trainer.max_time='00:02:00:00'"]))
    assert check_resume_config(saved, now, None, "last.ckpt") == [
        "trainer.gradient_clip_val: 1.0 in the checkpoint, 0.5 now"
    ]
    now = to_dict(load_config(None, ["trainer.max_time='00:02:00:00'"]))  # dropped: Lightning's default again
    assert check_resume_config(saved, now, None, "last.ckpt") == [
        "trainer.gradient_clip_val: 1.0 in the checkpoint, '<unset>' now"
    ]
    assert check_resume_config(ckpt(), to_dict(load_config(None, [])), None, "last.ckpt") == []
    with pytest.raises(ConfigError, match=r"model\.backbone"):
        check_resume_config(saved, to_dict(load_config(None, ["model.backbone=resnet18"])), None, "last.ckpt")


def test_log_interval_is_capped_to_an_epoch() -> None:
    assert log_interval(10, 4, {}) == 4
    assert log_interval(3, 4, {}) == 3
    assert log_interval(10, 100, {}) == 10
    assert log_interval(10, 100, {"limit_train_batches": 2}) == 2
    assert log_interval(10, 100, {"limit_train_batches": 0.05}) == 5
    assert log_interval(10, 0, {}) == 10  # no full batch: Lightning's own handling


# ---------------------------------------------------------------------------------------------- runs
def test_arguments_reach_the_trainer_and_clip_the_gradients(tmp_path: Path) -> None:
    """limit_train_batches shortens every epoch; gradient_clip_val bounds the norm of the gradients each step uses."""
    base = [*TINY, "trainer.epochs=2", "trainer.limit_train_batches=2"]
    free, clipped = Recorder(), Recorder()
    run_pretrain(load_config(None, [*base, f"out={tmp_path / 'free'}"]), callbacks=[free])
    run_pretrain(
        load_config(None, [*base, f"out={tmp_path / 'clip'}", "trainer.gradient_clip_val=0.01"]), callbacks=[clipped]
    )
    assert clipped.settings == {"gradient_clip_val": 0.01, "limit_train_batches": 2, "num_training_batches": 2}
    assert free.batches == clipped.batches == {0: 2, 1: 2}
    assert len(free.grad_norms) == len(clipped.grad_norms) == 4
    assert min(free.grad_norms) > 0.1  # unclipped: well above the limit, so the clipping below is not vacuous
    # norm clipping scales to 0.01 * |g| / (|g| + 1e-6); float32 norms of ~1e5 values agree to ~1e-5 relative
    assert max(clipped.grad_norms) <= 0.01 * (1 + 1e-4)
    assert min(clipped.grad_norms) >= 0.01 * (1 - 1e-3)


def test_config_yaml_and_resume_keep_the_arguments(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """config.yaml lists trainer.<name> as written and reloads to the same config; a run with them resumes exactly;
    changing one on --resume is allowed with a warning, as trainer.epochs is."""
    base = [*TINY, "trainer.epochs=2", "trainer.gradient_clip_val=1.0", "trainer.limit_train_batches=2", "seed=2"]
    base.append("trainer.checkpoint_every_n_steps=1")  # the crash below resumes mid-epoch 0 (from step 1)
    full = run_pretrain(load_config(None, [*base, f"out={tmp_path / 'full'}"]))
    saved = yaml.safe_load((full / "config.yaml").read_text())
    assert saved["trainer"]["gradient_clip_val"] == 1.0 and saved["trainer"]["limit_train_batches"] == 2
    assert "lightning_args" not in saved["trainer"]
    assert load_config(full / "config.yaml") == load_config(None, [*base, f"out={full}"])

    part = tmp_path / "part"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_pretrain(load_config(None, [*base, f"out={part}"]), callbacks=[CrashAtEpoch(1)])
    resumed = run_pretrain(load_config(part / "config.yaml"), resume=True)
    a, b = _losses(full / "metrics.csv"), _losses(resumed / "metrics.csv")
    assert len(a) == len(b) == 4  # 2 epochs x 2 batches
    assert a == pytest.approx(b, rel=1e-5, abs=1e-6)

    with caplog.at_level(logging.WARNING):
        run_pretrain(load_config(None, [*base, "trainer.epochs=3", "trainer.gradient_clip_val=0.5", f"out={part}"]),
                     resume=True)  # fmt: skip
    changed = " ".join(r.getMessage() for r in caplog.records)
    assert "trainer.gradient_clip_val: 1.0 in the checkpoint, 0.5 now" in changed
    assert len(_losses(part / "metrics.csv")) == 6


def test_fast_dev_run_leaves_the_run_folder_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """fast_dev_run runs its batches in a temporary folder: no config.yaml / checkpoint / backbone.pt that could
    pass for a finished run, no folder created, an existing run untouched (no --overwrite needed)."""
    from augself.cli import main

    rec = Recorder()
    out = tmp_path / "smoke"
    run_pretrain(load_config(None, [*TINY, f"out={out}", "trainer.fast_dev_run=3"]), callbacks=[rec])
    assert rec.batches == {0: 3}
    assert not out.exists()

    run = tmp_path / "run"
    assert main(["pretrain", "--out", str(run), *TINY, "trainer.epochs=1"]) == 0
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    capsys.readouterr()
    assert main(["pretrain", "--out", str(run), *TINY, "trainer.fast_dev_run=true"]) == 0
    assert "fast_dev_run" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before
    assert main(["pretrain", "--out", str(run), *TINY, "trainer.fast_dev_run=true", "--resume"]) == 2
    assert "cannot --resume" in capsys.readouterr().err
