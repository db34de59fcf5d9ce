"""Run-folder safety of ``augself pretrain`` (issue 13, items 1, 2, 5, 6, 8).

* crafted ``last.ckpt`` / CIFAR batches whose unpickling would create a file are refused (weights-only /
  restricted unpickling): the file is not created, the CLI exits 2 with one line;
* SIGTERM / SIGINT during training (real subprocesses): a resumable ``last.ckpt``, one line, exit 143 / 130, and
  ``--resume`` finishes with the same ``metrics.csv`` and weights as an uninterrupted run;
* a second writer on a run folder is refused while the first runs; a lock left by a killed run is taken over;
* a finished run is never overwritten without ``--overwrite``;
* a checkpoint write that hits a real file-size limit (``RLIMIT_FSIZE``) or a full device (``/dev/full``) is one
  line, a non-zero exit, and the previous ``last.ckpt`` stays intact.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from augself.cli import main
from augself.config import load_config
from augself.data.errors import DatasetError
from augself.data.torchvision_sets import cifar
from augself.train.checkpointing import (
    AtomicCheckpointIO,
    CheckpointReadError,
    CheckpointWriteError,
    _RecordingWriter,
    atomic_save,
    load_checkpoint,
)
from augself.train.run_folder import (
    LOCK_NAME,
    RunFolderBusyError,
    RunFolderLock,
    check_new_run,
    existing_run,
    is_launch_rank_zero,
)
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
    "trainer.epochs=4",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.progress_bar=false",
    "trainer.log_every_n_steps=1",
    "trainer.checkpoint_every_n_steps=0",  # last.ckpt at epoch starts only: the interrupt writes its own
    "seed=7",
]
STEPS_PER_EPOCH = 192 // 32
STEPS = 4 * STEPS_PER_EPOCH
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
for _var in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "WORLD_SIZE", "SLURM_PROCID"):
    ENV.pop(_var, None)


def _start(out: Path, *extra: str, prefix: tuple[str, ...] = ("-m", "augself.cli")) -> subprocess.Popen[str]:
    cmd = [sys.executable, *prefix, "pretrain", "--out", str(out), *RUN, *extra]
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _error_lines(err: str) -> list[str]:
    """The lines the CLI printed as its own message (Lightning's info lines start otherwise)."""
    return [line for line in err.splitlines() if line.startswith("augself pretrain:")]


def _one_line(err: str) -> str:
    lines = _error_lines(err)
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


def _in_process(argv: list[str]) -> int:
    """``main(argv)`` with one torch thread, as the subprocesses (CPU reductions depend on the thread split)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return main(argv)
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------ item 1: code execution
class _Payload:
    """Unpickling this object runs ``os.system`` (creates ``marker``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class _OpenPayload:
    """Unpickling this object calls ``builtins.open(marker, "w")`` (creates ``marker``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


TINY = [*TINY_RUN, "trainer.epochs=1", "monitor.online_probe=false"]


@pytest.mark.parametrize("payload", [_Payload, _OpenPayload], ids=["os.system", "builtins.open"])
def test_crafted_checkpoint_is_refused_on_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], payload: type
) -> None:
    out, marker = tmp_path / "run", tmp_path / "pwned"
    (out / "checkpoints").mkdir(parents=True)
    last = out / "checkpoints" / "last.ckpt"
    torch.save({"global_step": 3, "state_dict": {"w": torch.zeros(2)}, "evil": payload(marker)}, last)
    before = last.read_bytes()

    assert main(["pretrain", "--out", str(out), *TINY, "--resume"]) == 2
    err = capsys.readouterr().err
    line = _one_line(err)
    assert "--resume: refusing to load" in line and str(last) in line
    assert any(name in line for name in ("posix.system", "os.system", "io.open", "builtins.open"))
    assert not marker.exists()
    assert last.read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["checkpoints"]

    # Lightning's own load (trainer.fit(ckpt_path=...)) goes through the plugin: weights only, whatever it asks
    with pytest.raises(CheckpointReadError, match="refusing to load"):
        AtomicCheckpointIO().load_checkpoint(last, weights_only=False)
    assert not marker.exists()


def test_real_checkpoint_loads_weights_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``ResumableCheckpoint`` writes (weights, optimizer, scheduler, loops, RNG states, sampler position,
    epoch metrics) loads with ``weights_only=True``: nothing needs allow-listing. The run is made to fail at the
    backbone export (full disk): one-line error, no partial ``backbone.pt``; ``--resume`` then exports it."""
    import augself.train.run as run
    from augself.models.backbones import save_backbone

    def full_disk(backbone: Any, path: Path) -> None:
        Path(path).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run, "save_backbone", full_disk)
    cfg = load_config(None, [*TINY, "method=moco", "method_args.queue_size=64", f"out={tmp_path}/r"])
    with pytest.raises(CheckpointWriteError) as e:
        run.run_pretrain(cfg)
    out = tmp_path / "r"
    assert str(e.value).startswith(f"cannot write {out / 'backbone.pt'}: no space left on the device; ")
    assert "--resume" in str(e.value) and "\n" not in str(e.value)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "config.yaml", "hparams.yaml", "metrics.csv"]

    ckpt = load_checkpoint(out / "checkpoints" / "last.ckpt")
    assert ckpt["global_step"] == 2 and "optimizer_states" in ckpt and "lr_schedulers" in ckpt
    state = next(v for k, v in ckpt["callbacks"].items() if k.startswith("ResumableCheckpoint"))
    assert isinstance(state["rng"]["torch"], torch.Tensor) and len(state["rng"]["numpy"]["keys"]) == 624

    monkeypatch.setattr(run, "save_backbone", save_backbone)
    assert run.run_pretrain(cfg, resume=True) == out
    assert (out / "backbone.pt").is_file() and not (out / LOCK_NAME).exists()
    assert load_checkpoint(out / "checkpoints" / "last.ckpt")["global_step"] == 2  # nothing trained twice


def _write_cifar(root: Path, protocol: int, payload: Any = None) -> np.ndarray:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(protocol)
    allx = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
        allx.append(x)
        batch = {
            b"batch_label": b"training batch",
            b"data": x,
            b"labels": [int(v) for v in rng.integers(0, 10, 4)],
            b"filenames": [f"img_{i}.png".encode() for i in range(4)],
        }
        if payload is not None and name == "data_batch_3":
            batch[b"extra"] = payload
        (d / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    meta = {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": np.int64(3072)}
    (d / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return np.concatenate(allx)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_of_every_protocol_still_load(tmp_path: Path, protocol: int) -> None:
    """The restricted unpickler reads real CIFAR-style batches (numpy arrays, byte strings, numpy scalars)
    written with protocol 2 (the official files' protocol: ``_codecs.encode`` for bytes), 4 and 5."""
    allx = _write_cifar(tmp_path, protocol)
    ds = cifar(tmp_path, "trainval", 32)
    assert len(ds) == 20 and ds.classes[7] == "c7"
    assert torch.equal(ds[9]["image"], torch.from_numpy(allx[9].reshape(3, 32, 32)))


@pytest.mark.parametrize("payload", [_Payload, _OpenPayload], ids=["os.system", "builtins.open"])
def test_crafted_cifar_batch_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], payload: type) -> None:
    marker = tmp_path / "pwned"
    _write_cifar(tmp_path / "data", 2, payload(marker))
    with pytest.raises(DatasetError, match="refusing to read CIFAR file") as e:
        cifar(tmp_path / "data", "trainval", 32)
    assert "data_batch_3" in str(e.value) and "\n" not in str(e.value)
    assert not marker.exists()

    out = tmp_path / "run"
    argv = ["pretrain", "--out", str(out), *TINY, "data.name=cifar10", f"data.root={tmp_path / 'data'}"]
    assert main([*argv, "data.size=32", "augment.size=32"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "refusing to read CIFAR file" in line
    assert any(name in line for name in ("posix.system", "os.system", "io.open", "builtins.open"))
    assert not marker.exists() and not out.exists()


# ------------------------------------------------------------------------------------------ items 2 + 5: signals, lock
def _pause_at_first_checkpoint(procs: dict[str, subprocess.Popen[str]], lasts: dict[str, Path]) -> None:
    """SIGSTOP each process as soon as its ``last.ckpt`` exists (its first epoch is done, the rest is not), so
    that no machine is fast enough to finish the run before the test has done its checks and sent its signal."""
    waiting = dict(procs)
    deadline = time.monotonic() + 300
    while waiting:
        for name, proc in list(waiting.items()):
            if lasts[name].exists():
                proc.send_signal(signal.SIGSTOP)
                del waiting[name]
            elif proc.poll() is not None or time.monotonic() > deadline:
                err = proc.communicate()[1]
                pytest.fail(f"{lasts[name]} never appeared (exit {proc.returncode}):\n{err[-3000:]}")
        time.sleep(0.002)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two real ``augself pretrain`` processes: one gets SIGTERM, one SIGINT, once their first checkpoint
    exists (each is paused there, then signalled and continued). While the first one holds its folder, a second
    writer on it (this process) is refused."""
    root = tmp_path_factory.mktemp("signals")
    term, intr = root / "term", root / "int"
    procs = {"term": _start(term), "int": _start(intr)}
    result: dict[str, Any] = {"term": term, "int": intr, "term_pid": procs["term"].pid}
    try:
        _pause_at_first_checkpoint(procs, {name: root / name / "checkpoints" / "last.ckpt" for name in procs})
        assert all(proc.poll() is None for proc in procs.values())
        result["lock_text"] = (term / LOCK_NAME).read_text()
        with contextlib.redirect_stderr(io.StringIO()) as err:
            result["busy_rc"] = main(["pretrain", "--out", str(term), *RUN, "--resume"])
        result["busy_err"] = err.getvalue()
        result["lock_after"] = (term / LOCK_NAME).read_text() if (term / LOCK_NAME).exists() else None
        for name, signum in (("term", signal.SIGTERM), ("int", signal.SIGINT)):
            procs[name].send_signal(signum)  # pending until the process continues
            procs[name].send_signal(signal.SIGCONT)
        for name, proc in procs.items():
            _, err_text = proc.communicate(timeout=300)
            result[f"{name}_rc"], result[f"{name}_err"] = proc.returncode, err_text
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return result


def test_second_writer_is_refused(interrupted: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    pid, host = interrupted["lock_text"].split()
    assert host == socket.gethostname() and int(pid) > 0
    assert interrupted["busy_rc"] == 2
    line = _one_line(interrupted["busy_err"])
    assert f"in use by another augself pretrain (pid {interrupted['term_pid']} on host {host})" in line
    assert interrupted["lock_after"] == interrupted["lock_text"]  # the refused writer left the lock alone


def test_sigterm_and_sigint_save_and_exit_nonzero(interrupted: dict[str, Any]) -> None:
    for name, code, signame in (("term", 143, "SIGTERM"), ("int", 130, "SIGINT")):
        assert interrupted[f"{name}_rc"] == code, interrupted[f"{name}_err"][-3000:]
        line = _one_line(interrupted[f"{name}_err"])
        out = interrupted[name]
        last = out / "checkpoints" / "last.ckpt"
        assert f"interrupted by {signame} at step " in line and str(last) in line and "--resume" in line
        step = int(line.split(" at step ")[1].split(";")[0])
        assert STEPS_PER_EPOCH <= step < STEPS
        assert load_checkpoint(last)["global_step"] == step  # written at the step the line names
        assert not (out / "backbone.pt").exists() and not (out / LOCK_NAME).exists()
        assert not list((out / "checkpoints").glob(".*tmp*"))


def test_resume_after_signal_equals_uninterrupted(
    interrupted: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--resume`` finishes both runs exactly as an uninterrupted one; every ``torch.load`` on the way (ours and
    Lightning's ``trainer.fit(ckpt_path=...)``, through ``AtomicCheckpointIO``) is ``weights_only=True``."""
    loads: list[tuple[str, object]] = []
    real_load = torch.load

    def spy(f: Any, *args: Any, **kwargs: Any) -> Any:
        loads.append((str(f), kwargs.get("weights_only")))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    for name in ("term", "int"):
        assert _in_process(["pretrain", "--out", str(interrupted[name]), *RUN, "--resume"]) == 0
    monkeypatch.undo()
    assert [w for f, w in loads if "last.ckpt" in f] == [True, True, True, True]  # 2 runs x (ours, Lightning)
    assert _in_process(["pretrain", "--out", str(tmp_path / "full"), *RUN]) == 0
    full = (tmp_path / "full" / "metrics.csv").read_text()
    w_full = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.ckpt")["state_dict"]
    for name in ("term", "int"):
        out = interrupted[name]
        assert (out / "metrics.csv").read_text() == full
        w = load_checkpoint(out / "checkpoints" / "last.ckpt")["state_dict"]
        assert w.keys() == w_full.keys() and all(torch.equal(w[k], w_full[k]) for k in w)
        assert (out / "backbone.pt").is_file()


def test_checkpoint_write_hits_file_size_limit(interrupted: dict[str, Any]) -> None:
    """A real ``RLIMIT_FSIZE`` below the checkpoint size (SIGXFSZ ignored, so the write fails with EFBIG):
    one line, exit 2, the previous ``last.ckpt`` byte-identical, no temporary file."""
    out = interrupted["term"]
    last = out / "checkpoints" / "last.ckpt"
    if not (out / "backbone.pt").exists():  # run alone: finish the interrupted run first
        assert _in_process(["pretrain", "--out", str(out), *RUN, "--resume"]) == 0
    before = last.read_bytes()
    limit = len(before) // 2
    code = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
        "from augself.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = _start(out, "--resume", "trainer.epochs=5", prefix=("-c", code))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err[-3000:]
    line = _one_line(err)
    assert f"cannot write checkpoint {last}" in line and "file size limit" in line
    assert f"the last good checkpoint is {last} (step {STEPS}); it is intact" in line
    assert last.read_bytes() == before and load_checkpoint(last)["global_step"] == STEPS
    assert not list((out / "checkpoints").glob(".*tmp*")) and not (out / LOCK_NAME).exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_full_device_is_one_line(tmp_path: Path) -> None:
    """``/dev/full`` gives a real ENOSPC under torch's zip writer; the recorded errno becomes the message."""
    with open("/dev/full", "wb", buffering=0) as f:
        writer = _RecordingWriter(f)
        with pytest.raises((OSError, RuntimeError)):  # torch may pass the OSError on or make it a RuntimeError
            torch.save({"w": torch.zeros(10_000)}, writer)  # type: ignore[arg-type]
    assert writer.error is not None and writer.error.errno == 28
    from augself.train.checkpointing import _write_error

    assert str(_write_error(tmp_path / "last.ckpt", writer.error)).endswith("no space left on the device")

    path = tmp_path / "last.ckpt"
    atomic_save({"global_step": 1}, path)
    real_open = open

    def full_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if str(file).startswith(str(tmp_path / ".last.ckpt.tmp-")):
            return real_open("/dev/full", mode, *args, **kwargs)  # the temporary file is on a full device
        return real_open(file, mode, *args, **kwargs)

    import builtins

    builtins.open, saved = full_open, builtins.open  # type: ignore[assignment]
    try:
        with pytest.raises(CheckpointWriteError) as e:
            atomic_save({"global_step": 2, "w": torch.zeros(10_000)}, path)
    finally:
        builtins.open = saved
    assert str(e.value) == f"cannot write checkpoint {path}: no space left on the device"
    assert load_checkpoint(path)["global_step"] == 1


def test_second_signal_stops_at_once_and_handlers_are_restored(tmp_path: Path) -> None:
    """In-process: SIGINT twice during a step stops at once (no save: the previous checkpoint is kept);
    SIGTERM outside the training steps is an interruption too; the caller's handlers are back afterwards."""
    import lightning as L

    from augself.train.interrupt import TrainingInterrupted, sigterm_raises
    from augself.train.run import run_pretrain

    class TwoSignals(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):  # type: ignore[no-untyped-def]
            if trainer.global_step == 3:
                os.kill(os.getpid(), signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)  # the second signal raises here, inside the step

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    over = [*TINY, "trainer.epochs=2", "trainer.checkpoint_every_n_steps=1", f"out={tmp_path / 'run'}"]
    with pytest.raises(TrainingInterrupted) as e:
        run_pretrain(load_config(None, over), callbacks=[TwoSignals()])
    assert e.value.exit_code == 130 and "interrupted by SIGINT and then SIGINT" in str(e.value)
    assert "(step 2); it is intact" in str(e.value)  # saved at the start of the step that was cut short
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["global_step"] == 2
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    assert not (tmp_path / "run" / LOCK_NAME).exists()

    outside = "outside the training steps; no checkpoint was written"
    with pytest.raises(TrainingInterrupted, match=outside) as e, sigterm_raises(tmp_path / "nothing.ckpt"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)
    assert e.value.exit_code == 143 and signal.getsignal(signal.SIGTERM) == handlers[signal.SIGTERM]


# ------------------------------------------------------------------------------------------ item 5: lock details
def _hold(folder: str, ready: Any) -> None:
    lock = RunFolderLock(folder)
    lock.acquire()
    ready.set()
    time.sleep(600)


def test_lock_refuses_second_process_and_takes_over_after_kill(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path), ready), daemon=True)
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(RunFolderBusyError) as e:
            RunFolderLock(tmp_path).acquire()
        msg = str(e.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in msg and "\n" not in msg
        assert (tmp_path / LOCK_NAME).read_text().split()[0] == str(holder.pid)
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # a crash: the lock file stays, the kernel drops the lock
        holder.join(30)
    assert (tmp_path / LOCK_NAME).exists()
    with RunFolderLock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().split()[0] == str(os.getpid())
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_without_flock_checks_the_pid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where ``flock`` is unavailable the pid in the lock file decides: stale when no such process exists."""
    import augself.train.run_folder as rf

    monkeypatch.setattr(rf, "fcntl", None)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / LOCK_NAME).write_text(f"{dead.pid} {socket.gethostname()}\n")
    with RunFolderLock(tmp_path):  # stale: taken over
        pass
    alive = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / LOCK_NAME).write_text(f"{alive.pid} {socket.gethostname()}\n")
        with pytest.raises(RunFolderBusyError, match=f"pid {alive.pid}"):
            RunFolderLock(tmp_path).acquire()
        (tmp_path / LOCK_NAME).write_text(f"{alive.pid} some-other-host\n")
        with pytest.raises(RunFolderBusyError, match="some-other-host"):  # cannot tell: refuse
            RunFolderLock(tmp_path).acquire()
    finally:
        alive.kill()
        alive.wait()


def test_only_rank_zero_locks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lightning's subprocess launcher starts ranks 1.. with LOCAL_RANK set (torchrun: RANK, SLURM: SLURM_PROCID)."""
    for var in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert is_launch_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("SLURM_PROCID", "0")
    assert is_launch_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not is_launch_rank_zero()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("NODE_RANK", "1")
    assert not is_launch_rank_zero()


# ------------------------------------------------------------------------------------------ item 6: overwrite
def test_finished_run_is_not_overwritten_without_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A finished run whose checkpoints/ was deleted: a new run (another method) is refused; --overwrite
    replaces it (old checkpoints, logs and weights removed, other files kept)."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "backbone.pt").write_bytes(b"old weights")
    (out / "config.yaml").write_text("method: simclr\n")
    (out / "eval_notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    assert main(["pretrain", "--out", str(out), *TINY, "method=byol"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"{out} already holds a run (backbone.pt, config.yaml)" in line and "--overwrite" in line
    assert "--resume" not in line  # nothing to resume: no last.ckpt
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    assert main(["pretrain", "--out", str(out), *TINY, "--resume", "--overwrite"]) == 2
    assert "exclude each other" in _one_line(capsys.readouterr().err)

    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "epoch=0.ckpt").write_bytes(b"old")
    argv = ["pretrain", "--out", str(out), *TINY, "method=byol", "trainer.checkpoint_every_n_epochs=0"]
    assert _in_process([*argv, "--overwrite"]) == 0
    assert (out / "backbone.pt").read_bytes() != b"old weights"
    assert "method: byol" in (out / "config.yaml").read_text()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.ckpt"]
    assert (out / "eval_notes.txt").read_text() == "mine"

    assert main(["pretrain", "--out", str(out), *TINY]) == 2  # and now it is protected again
    line = _one_line(capsys.readouterr().err)
    assert "checkpoints/last.ckpt" in line and "--resume" in line and "--overwrite" in line


def test_config_without_weights_protects_nothing(tmp_path: Path) -> None:
    """A run stopped before its first checkpoint left only config.yaml (and logs): a new run may start there."""
    (tmp_path / "config.yaml").write_text("method: simclr\n")
    (tmp_path / "metrics.csv").write_text("step\n")
    assert existing_run(tmp_path) == []
    check_new_run(tmp_path, resume=False, overwrite=False)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "epoch=3.ckpt").write_bytes(b"")
    assert existing_run(tmp_path) == ["config.yaml", "checkpoints/epoch=3.ckpt"]
