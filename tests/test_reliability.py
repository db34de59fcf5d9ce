"""Faults: kill -9 + --resume gives the uninterrupted run's metrics exactly; atomic checkpoints; NaN loss; determinism.

The end-to-end tests start the real ``augself pretrain`` command in subprocesses (MoCo: EMA target + queue,
with AugSelf heads) on generated 16-px data, writing ``last.ckpt`` after every optimizer step.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from augself.config import load_config
from augself.train.checkpointing import CheckpointWriteError, atomic_save
from helpers import TINY_RUN

RUN = [
    "data.name=synthetic",
    "data.n=192",
    "data.size=16",
    "data.num_workers=0",
    "augment.size=16",
    "model.backbone=small_cnn",
    "method=moco",
    "method_args.queue_size=64",
    "augself.crop=1.0",
    "augself.color=1.0",
    "trainer.batch_size=32",
    "trainer.epochs=3",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.progress_bar=false",
    "trainer.log_every_n_steps=1",
    "trainer.checkpoint_every_n_steps=1",
    "seed=7",
]
STEPS = 3 * 192 // 32
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}


def _cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "augself.cli", "pretrain", "--out", str(out), *RUN, *extra]


def _start(out: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(_cmd(out, *extra), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen[bytes], timeout: float = 120) -> str:
    text = proc.communicate(timeout=timeout)[0].decode(errors="replace")
    assert proc.returncode == 0, text
    return text


def _rows(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _weights(path: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return {k: v for k, v in ckpt["state_dict"].items() if isinstance(v, torch.Tensor)}


def _wait_for_checkpoints(proc: subprocess.Popen[bytes], last: Path, count: int, timeout: float = 120) -> int:
    """Poll ``last`` until ``count`` distinct versions of it were seen (or the process ended)."""
    seen: set[tuple[int, int]] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < count and proc.poll() is None and time.monotonic() < deadline:
        try:
            st = last.stat()
            seen.add((st.st_ino, st.st_mtime_ns))
        except FileNotFoundError:
            pass
        time.sleep(0.002)
    return len(seen)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An uninterrupted run, and beside it (their start-up costs overlap) a run killed with SIGKILL at a
    random (seeded) point after its first few checkpoints: between two steps, or in the middle of a save."""
    root = tmp_path_factory.mktemp("reliability")
    victim = _start(root / "killed")
    full = _start(root / "full")
    rng = random.Random(1234)
    wait_for, delay = rng.randint(3, STEPS - 6), rng.uniform(0.0, 0.05)
    seen = _wait_for_checkpoints(victim, root / "killed" / "checkpoints" / "last.ckpt", wait_for)
    time.sleep(delay)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL, f"the run ended before it could be killed (saw {seen} checkpoints)"
    _finish(full)
    return {"full": root / "full", "killed": root / "killed"}


def test_kill9_then_resume_equals_uninterrupted(runs: dict[str, Path]) -> None:
    full, out = runs["full"], runs["killed"]
    last = out / "checkpoints" / "last.ckpt"
    assert not (out / "backbone.pt").exists()
    step = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert 0 < step < STEPS

    _finish(_start(out, "--resume"))
    assert _rows(out / "metrics.csv") == _rows(full / "metrics.csv")  # byte-identical
    a, b = _weights(last), _weights(full / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys()
    assert {"method.queue", "method.queue_ptr"} <= a.keys()
    assert any(k.startswith("method.momentum_backbone.") for k in a)  # the EMA target is part of it
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list((out / "checkpoints").glob(".*tmp*"))


def test_same_seed_gives_identical_metrics(runs: dict[str, Path], tmp_path: Path) -> None:
    """The subprocess run and an in-process run of the same config and seed write the same metrics.csv."""
    from augself.train.run import run_pretrain

    full = runs["full"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocess (OMP_NUM_THREADS=1): CPU reductions depend on the split
    try:
        again = run_pretrain(load_config(None, [*RUN, f"out={tmp_path / 'again'}"]))
    finally:
        torch.set_num_threads(threads)
    a, b = _rows(full / "metrics.csv"), _rows(again / "metrics.csv")
    assert len(a) > STEPS and a == b
    assert {"train/augself/crop", "train/augself/color", "train/loss_step"} <= set(a[0].split(","))
    wa, wb = _weights(full / "checkpoints" / "last.ckpt"), _weights(again / "checkpoints" / "last.ckpt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


# ------------------------------------------------------------------------------------------ atomic checkpoints
def _partial_then_fail(exc: BaseException):  # type: ignore[no-untyped-def]
    real_save = torch.save

    def save(obj, f, *args, **kwargs):  # type: ignore[no-untyped-def]
        real_save({"junk": torch.zeros(1000)}, f)  # some bytes reach the temporary file ...
        raise exc  # ... then the "process dies" / the disk fills up

    return save


@pytest.mark.parametrize(
    "exc", [KeyboardInterrupt(), SystemExit(1), OSError(28, "No space left on device")], ids=["kill", "exit", "enospc"]
)
def test_failed_save_keeps_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exc: BaseException
) -> None:
    path = tmp_path / "checkpoints" / "last.ckpt"
    atomic_save({"global_step": 3, "w": torch.arange(5)}, path)
    monkeypatch.setattr(torch, "save", _partial_then_fail(exc))
    with pytest.raises(type(exc) if not isinstance(exc, OSError) else CheckpointWriteError) as e:
        atomic_save({"global_step": 4, "w": torch.ones(5)}, path)
    if isinstance(exc, OSError):
        assert "no space left" in str(e.value) and str(path) in str(e.value)
    monkeypatch.undo()
    old = torch.load(path, weights_only=False)
    assert old["global_step"] == 3 and torch.equal(old["w"], torch.arange(5))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # the temporary file was removed


def test_kill_before_replace_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The new file is complete on disk but the process dies before ``os.replace``: the old one is still used."""
    path = tmp_path / "last.ckpt"
    atomic_save({"global_step": 1}, path)

    def die(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", die)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"global_step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=False)["global_step"] == 1


# ------------------------------------------------------------------------------------------ NaN / inf loss
TINY = [
    *TINY_RUN,
    "data.n=96",
    "method=byol",
    "method_args.proj_hidden_dim=64",
    "method_args.pred_hidden_dim=64",
    "augself.crop=1.0",
    "trainer.epochs=3",
    "trainer.log_every_n_steps=1",
    "trainer.checkpoint_every_n_steps=2",
]


def test_nan_loss_stops_with_step_and_terms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from augself.cli import main
    from augself.train.module import PretrainModule

    real_step = PretrainModule.training_step

    def poisoned(self: PretrainModule, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.global_step == 5:  # the weights blow up between checkpoints 4 and 6
            with torch.no_grad():
                next(self.method.projector.parameters()).fill_(float("nan"))
        return real_step(self, batch, batch_idx)

    monkeypatch.setattr(PretrainModule, "training_step", poisoned)
    out = tmp_path / "run"
    assert main(["pretrain", "--out", str(out), *TINY]) == 1
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in err
    err = errors[0]
    assert "non-finite loss" in err and "at step 5" in err and "loss/method=nan" in err and "augself/crop=" in err
    assert "last good checkpoint" in err and "(step 4)" in err
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 4
    assert all(bool(torch.isfinite(v).all()) for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert not (out / "backbone.pt").exists()
    # the losses logged before the failure are kept
    import csv

    with (out / "metrics.csv").open() as f:
        logged = {int(r["step"]) for r in csv.DictReader(f) if r["train/loss_step"]}
    assert logged == {0, 1, 2, 3, 4}
