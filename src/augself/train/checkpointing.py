"""Crash-safe checkpoints: atomic writes, exact mid-epoch resume, no checkpoint with non-finite weights.

* :class:`AtomicCheckpointIO` writes every checkpoint to a temporary file in the same folder, fsyncs it and
  ``os.replace``-s it over the target, so a kill (or a full disk) during a save never leaves a broken
  ``last.ckpt``: the previous one stays intact. It refuses to write weights that are NaN or inf.
* :class:`ResumableCheckpoint` writes ``last.ckpt`` at step boundaries (every ``every_n_steps`` optimizer steps,
  at every epoch start and when training ends), after flushing the loggers, so that a checkpoint and
  ``metrics.csv`` always agree. Besides what Lightning stores (weights, optimizer, scheduler, loop progress, the
  sampler position of :mod:`augself.train.sampler`) it stores the torch / numpy / python RNG states, the
  logging step and the partial epoch aggregates of logged metrics, so a resumed run continues exactly.
* :func:`check_resume_config` refuses a checkpoint written with a different model / method / data setup.
* :func:`load_checkpoint` reads a checkpoint with ``torch.load(weights_only=True)`` (tensors, plain containers,
  numbers and strings only; everything the writer stores is converted to those), so a crafted ``last.ckpt`` cannot
  run code on ``--resume``; :class:`AtomicCheckpointIO` routes Lightning's own load through it as well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import pickle
import random
import re
import shutil
from pathlib import Path
from typing import IO, Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from torch import Tensor

from augself.augment.config import CONFIG_FIELDS
from augself.config import ConfigError, TrainerConfig, resolve_learned
from augself.config_aliases import canonical_config
from augself.train.csv_log import ResumableCSVLogger
from augself.train.sampler import ResumableSampler

try:
    import resource
except ImportError:  # not on Windows
    resource = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

LAST = "last.ckpt"
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, read-only folder); the previous checkpoint is intact."""


class CheckpointReadError(ValueError):
    """A checkpoint cannot be read, or holds objects other than tensors and plain data (refused unread)."""


class OutputFolderError(OSError):
    """The run folder cannot be written, or lacks the space for a checkpoint."""


class NonFiniteWeightsError(FloatingPointError):
    """The model weights became NaN / inf; nothing was saved."""


# ---- atomic writes ------------------------------------------------------------------------------------------
def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _why(e: OSError) -> str:
    """A failed write's reason in words (full disk, size limit, read-only folder, ...)."""
    if e.errno in _NO_SPACE:
        return "no space left on the device"
    if e.errno == errno.EFBIG:
        return "the file size limit was reached (EFBIG: `ulimit -f` or the file system's largest file)"
    if e.errno in _NOT_WRITABLE:
        return f"the folder is not writable ({e.strerror})"
    return e.strerror or str(e)


def _write_error(path: Path, e: OSError) -> CheckpointWriteError:
    return CheckpointWriteError(f"cannot write checkpoint {path}: {_why(e)}")


#: What torch's zip writer raises (a ``RuntimeError``) when the file write under it fails (ENOSPC, EFBIG, EIO).
_TORCH_WRITE_FAILED = re.compile(r"unexpected pos|file write failed|PytorchStreamWriter failed", re.IGNORECASE)


class _RecordingWriter:
    """File wrapper for ``torch.save`` that keeps the first ``OSError`` of a write.

    torch's zip writer turns a failed write into ``RuntimeError: [enforce fail at inline_container.cc] unexpected
    pos ...``, losing the errno; the recorded error tells a full disk from a size limit or an I/O error.
    """

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        try:
            self.f.flush()
        except OSError as e:
            self.error = self.error or e
            raise


def describe_write_failure(e: BaseException, tmp: Path) -> str | None:
    """Why a write of ``tmp`` failed, in words, for an ``OSError`` or torch's writer ``RuntimeError``; else None."""
    if isinstance(e, OSError):
        return _why(e)
    if not (isinstance(e, RuntimeError) and _TORCH_WRITE_FAILED.search(str(e))):
        return None
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource is not None else -1
    with contextlib.suppress(OSError):
        if limit not in (-1, getattr(resource, "RLIM_INFINITY", -1)) and tmp.stat().st_size >= limit - 2**16:
            return "the file size limit was reached (EFBIG: `ulimit -f`)"
    with contextlib.suppress(OSError):
        if shutil.disk_usage(tmp.parent).free < 2**20:
            return "no space left on the device"
    return f"the write failed ({str(e).splitlines()[0]})"


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj, path)`` through a temporary file in the same folder + fsync + ``os.replace``.

    On any failure the temporary file is removed and an existing ``path`` is left untouched; an ``OSError`` (or
    the ``RuntimeError`` torch's zip writer makes of one, e.g. on a full disk) becomes a
    :class:`CheckpointWriteError` with a one-line explanation.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    writer: _RecordingWriter | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            writer = _RecordingWriter(f)
            torch.save(obj, writer)  # type: ignore[arg-type]
            writer.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, CheckpointWriteError):
            raise
        if writer is not None and writer.error is not None and isinstance(e, (OSError, RuntimeError)):
            raise _write_error(path, writer.error) from None
        if isinstance(e, OSError):
            raise _write_error(path, e) from None
        if isinstance(e, RuntimeError) and _TORCH_WRITE_FAILED.search(str(e)):
            raise CheckpointWriteError(f"cannot write checkpoint {path}: {describe_write_failure(e, tmp)}") from None
        raise
    _fsync_dir(path.parent)


_GLOBAL = re.compile(r"(?:GLOBAL|Unsupported class) ([\w.]+)")  # newer torch wording, and torch 2.1's


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors, plain containers, numbers and strings only.

    A file that references any other Python object (a crafted checkpoint whose unpickling would run code) is
    refused before that object is created: :class:`CheckpointReadError` names the object. An unreadable file
    (truncated, not a checkpoint) raises :class:`CheckpointReadError` too; both messages are one line.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as e:
        found = _GLOBAL.search(str(e))
        if found is None:  # not a pickle of anything: damaged or another format
            detail = str(e).split("WeightsUnpickler error:")[-1].strip().split("\n")[0].strip()
            raise CheckpointReadError(f"cannot read checkpoint {path} (UnpicklingError: {detail})") from None
        raise CheckpointReadError(
            f"refusing to load {path}: it references {found.group(1)}, which no checkpoint written by augself "
            "holds (only tensors and plain data are loaded); the file was altered or does not come from augself"
        ) from None
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise CheckpointReadError(
            f"cannot read checkpoint {path}: damaged, truncated or not a checkpoint ({type(e).__name__}: {first})"
        ) from None


def first_non_finite(state_dict: dict[str, Any]) -> str | None:
    """Name of the first floating-point tensor of ``state_dict`` holding a NaN or inf (``None`` if all finite)."""
    for name, value in state_dict.items():
        if isinstance(value, Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return name
    return None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO with :func:`atomic_save` for local paths and a finite-weights check."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        bad = first_non_finite(checkpoint.get("state_dict", {}))
        if bad is not None:
            raise NonFiniteWeightsError(f"weight {bad!r} is NaN or inf; not saving {path}")
        if "://" in str(path) and not str(path).startswith("file://"):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options for local paths")
        atomic_save(checkpoint, str(path).removeprefix("file://"))

    def load_checkpoint(
        self, path: Any, map_location: Any | None = lambda storage, loc: storage, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Lightning's load for ``trainer.fit(ckpt_path=...)``: always :func:`load_checkpoint` (weights only),
        whatever ``weights_only`` Lightning passes."""
        if "://" in str(path) and not str(path).startswith("file://"):
            raise CheckpointReadError(f"{path}: only local checkpoints can be resumed")
        return load_checkpoint(str(path).removeprefix("file://"), map_location=map_location)


# ---- run-folder checks ----------------------------------------------------------------------------------------
def ensure_writable(folder: str | os.PathLike[str]) -> None:
    """Create ``folder`` and check that a file can be written there; raise :class:`OutputFolderError` if not."""
    folder = Path(folder)
    probe = folder / f".augself-write-test-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
        os.unlink(probe)
    except OSError as e:
        with contextlib.suppress(OSError):
            probe.unlink()
        if e.errno in _NO_SPACE:
            raise OutputFolderError(f"output folder {folder} is on a full device (no space left)") from None
        raise OutputFolderError(
            f"cannot write to output folder {folder}: {e.strerror or e}; choose another --out"
        ) from None


def checkpoint_bytes(module: torch.nn.Module, optimizer_slots: int = 2) -> int:
    """Rough size of a checkpoint: weights and buffers plus ``optimizer_slots`` optimizer tensors per weight."""
    params = sum(p.numel() * p.element_size() for p in module.parameters())
    buffers = sum(b.numel() * b.element_size() for b in module.buffers())
    return params * (1 + optimizer_slots) + buffers


def check_free_space(folder: str | os.PathLike[str], needed: int) -> None:
    """Raise :class:`OutputFolderError` if ``folder`` has less than ``needed`` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OutputFolderError(
            f"output folder {folder} has {free / 2**20:.1f} MiB free, but a checkpoint needs about "
            f"{needed / 2**20:.1f} MiB (two copies during an atomic save); free some space or choose another --out"
        )


# ---- resume compatibility -------------------------------------------------------------------------------------
#: Settings that may differ between the interrupted and the resumed run without any effect on the result.
RESUME_IGNORED: tuple[str, ...] = (
    "out",
    "data.num_workers",
    "data.cache_mb",
    "trainer.progress_bar",
    "trainer.loggers",
    "trainer.log_every_n_steps",
    "trainer.checkpoint_every_n_steps",
    "trainer.checkpoint_every_n_epochs",
    "trainer.deterministic",
    "model.compile",
    "model.channels_last",
    "monitor.every_n_epochs",
    "monitor.max_samples",
    "monitor.k",
    "monitor.temperature",
    "monitor.train_split",
    "monitor.test_split",
    # lightning.Trainer arguments passed through as trainer.<name> (augself.trainer_args) that change no result
    "trainer.max_time",
    "trainer.benchmark",
    "trainer.profiler",
    "trainer.detect_anomaly",
    "trainer.enable_model_summary",
    "trainer.num_sanity_val_steps",
    "trainer.limit_val_batches",
    "trainer.limit_test_batches",
    "trainer.limit_predict_batches",
    "trainer.val_check_interval",
    "trainer.check_val_every_n_epoch",
    "trainer.inference_mode",
    "trainer.enable_autolog_hparams",
    "trainer.model_registry",
)
#: Settings that may be changed on resume (e.g. train longer, lower the lr, move the data); the continued run then
#: differs from an uninterrupted one, so a warning names them. So may every other passed-through Trainer argument
#: (``trainer.gradient_clip_val``, ``trainer.limit_train_batches``, ...: :func:`_is_lightning_arg`).
RESUME_ALLOWED: tuple[str, ...] = (
    "trainer.epochs",
    "trainer.max_steps",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.num_nodes",
    "trainer.strategy",
    "trainer.precision",
    "trainer.sync_batchnorm",
    "optim.",
    "data.name",
    "data.root",
)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        if prefix and not d:
            out[prefix[:-1]] = {}
        for k, v in d.items():
            if isinstance(v, dict) and prefix + str(k) in ("method_args", "augself"):
                out[prefix + str(k)] = dict(v)  # compared as a whole (keys appear / disappear)
            else:
                out.update(_flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(d, tuple):
        d = list(d)
    return {prefix[:-1]: d}


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in patterns)


def _is_lightning_arg(key: str) -> bool:
    """``trainer.<name>`` for a passed-through ``lightning.Trainer`` argument (not a :class:`TrainerConfig` field)."""
    section, _, name = key.partition(".")
    return section == "trainer" and "." not in name and name not in {f.name for f in dataclasses.fields(TrainerConfig)}


def _stored_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's config in today's vocabulary: old key spellings renamed (``jitter_p`` -> ``color_p``, ...;
    :mod:`augself.config_aliases`) and view settings added since it was written at their defaults (an augmentation
    added later is off by default and draws nothing when off, so such a run is the same run)."""
    out = canonical_config(saved, warn=False)
    aug = out.get("augment")
    if isinstance(aug, dict) and aug:
        missing = {f.name: f.default for f in CONFIG_FIELDS if f.name not in aug}
        out = {**out, "augment": {**aug, **missing}}
    return out


def _resolved_learned(config: dict[str, Any]) -> dict[str, Any]:
    """``augment.learned`` replaced by every setting it resolves to (:func:`augself.config.resolve_learned`,
    ``asdict``; absent or off: ``{}``), so that spellings of the same settings (``{angle: {}}`` / ``{angle:
    {entropy_weight: 0.1}}``) compare equal and a changed default-valued setting is named by its full key."""
    aug = config.get("augment")
    if not isinstance(aug, dict):
        return config
    try:
        parsed = resolve_learned(aug.get("learned") or None)
    except ConfigError:
        return config  # compared as written (a stored config this version cannot read differs anyway)
    return {**config, "augment": {**aug, "learned": {} if parsed is None else dataclasses.asdict(parsed)}}


def check_resume_config(
    checkpoint: dict[str, Any], config: dict[str, Any], num_classes: int | None, path: str | os.PathLike[str]
) -> list[str]:
    """Compare the config stored in ``checkpoint`` with ``config`` (both :func:`augself.config.to_dict` dicts).

    Raises :class:`ConfigError` naming every setting that makes the checkpoint incompatible or the resumed run a
    different run (model, method, AugSelf / E-SSL heads, augmentations, data size, batch, seed, ...). Returns
    the changed settings of :data:`RESUME_ALLOWED` (the caller warns about them).
    """
    hp = checkpoint.get("hyper_parameters") or {}
    saved = hp.get("config")
    if not isinstance(saved, dict):
        raise ConfigError(f"cannot resume from {path}: it was not written by `augself pretrain` (no config inside)")
    a, b = _flatten(_resolved_learned(_stored_config(saved))), _flatten(_resolved_learned(config))
    refused, allowed = [], []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<unset>"), b.get(key, "<unset>")
        if va == vb or _matches(key, RESUME_IGNORED):
            continue
        line = f"{key}: {va!r} in the checkpoint, {vb!r} now"
        (allowed if _matches(key, RESUME_ALLOWED) or _is_lightning_arg(key) else refused).append(line)
    saved_classes = hp.get("num_classes")
    if saved_classes != num_classes:
        refused.append(f"number of classes: {saved_classes} in the checkpoint, {num_classes} now")
    if refused:
        raise ConfigError(
            f"cannot resume from {path}: it was written with a different configuration:\n  "
            + "\n  ".join(refused)
            + "\nresume with the run's own settings (see config.yaml next to the checkpoints) or choose another --out"
        )
    return allowed


# ---- the checkpoint callback ----------------------------------------------------------------------------------
def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": [int(k) for k in keys],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ResumableCheckpoint(L.Callback):
    """Writes ``<dirpath>/last.ckpt`` at step boundaries and restores what Lightning does not.

    Saves happen at the start of a training batch (after the previous optimizer step, its logged row and the
    epoch-end hooks): every ``every_n_steps`` optimizer steps (0 = off), at the start of every epoch, and at the
    end of training. Every ``every_n_epochs`` epochs the epoch-start checkpoint is also kept as
    ``epoch=<last finished epoch>.ckpt`` (a hard link, so no extra space).
    """

    def __init__(self, dirpath: str | os.PathLike[str], every_n_steps: int = 0, every_n_epochs: int = 1) -> None:
        self.dirpath = Path(dirpath)
        self.every_n_steps = max(0, int(every_n_steps))
        self.every_n_epochs = max(0, int(every_n_epochs))
        self.last_saved_step: int | None = None
        self._state: dict[str, Any] = {}
        self._restore: dict[str, Any] | None = None
        self._stash: dict[str, dict[str, Tensor]] = {}

    @property
    def last(self) -> Path:
        return self.dirpath / LAST

    def describe_last(self) -> str:
        """One phrase about the newest good checkpoint, for error messages."""
        if self.last_saved_step is None:
            return "no checkpoint was written by this run"
        return f"the last good checkpoint is {self.last} (step {self.last_saved_step}); it is intact"

    # ---- hooks ---------------------------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.is_global_zero and self.dirpath.is_dir():
            for stale in self.dirpath.glob(".*.tmp-*"):  # left by a save that was killed
                with contextlib.suppress(OSError):
                    stale.unlink()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning builds the train iterator while estimating the stepping batches for the lr schedule, before
        # it restores the loop state, and then never hands the saved sampler position to the loader. Hand it over
        # here and rebuild the iterator so that a resumed run continues inside the interrupted epoch.
        fit_loop = trainer.fit_loop
        if fit_loop._combined_loader_states_to_load and fit_loop._combined_loader is not None:
            fit_loop._load_combined_loader_states()
            if fit_loop._data_fetcher is not None:
                iter(fit_loop._data_fetcher)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._restore is not None:
            self._apply_restore(trainer)
        self._mark_sampler(trainer, batch_idx)
        step = trainer.global_step
        if step == 0 or step == self.last_saved_step:
            return
        if batch_idx == 0:
            epochs_done = trainer.current_epoch
            self.save(trainer, epochs_done if self._archive_epoch(epochs_done) else None)
        elif self.every_n_steps and step % self.every_n_steps == 0:
            self.save(trainer)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._stash:
            self._merge_epoch_metrics(trainer)
        self._mark_sampler(trainer, batch_idx + 1)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stash = {}

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == self.last_saved_step or trainer.global_step == 0:
            return
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        epoch_done = progress.completed >= trainer.num_training_batches
        epochs = trainer.current_epoch
        self.save(trainer, epochs if epoch_done and self._archive_epoch(epochs) else None)

    def state_dict(self) -> dict[str, Any]:
        return dict(self._state)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._restore = dict(state_dict) if state_dict else None
        if state_dict and "global_step" in state_dict:
            self.last_saved_step = int(state_dict["global_step"])

    # ---- saving --------------------------------------------------------------------------------------------
    def _archive_epoch(self, epochs_done: int) -> bool:
        return self.every_n_epochs > 0 and epochs_done > 0 and epochs_done % self.every_n_epochs == 0

    def save(self, trainer: L.Trainer, epochs_done: int | None = None) -> None:
        """Flush the loggers, then write ``last.ckpt`` (and ``epoch=<epochs_done - 1>.ckpt`` when given)."""
        for logger in trainer.loggers:
            logger.save()
        self._state = self._capture(trainer)
        step = trainer.global_step
        try:
            trainer.save_checkpoint(self.last, weights_only=False)
        except NonFiniteWeightsError as e:
            raise NonFiniteWeightsError(
                f"the model weights became non-finite by step {step} ({e}); training stopped; "
                f"{self.describe_last()}. Lower optim.base_lr or add warm-up (optim.warmup_epochs)"
            ) from None
        except CheckpointWriteError as e:
            raise CheckpointWriteError(f"{e}; training stopped at step {step}; {self.describe_last()}") from None
        finally:
            self._state = {}
        self.last_saved_step = step
        if epochs_done is not None and trainer.is_global_zero:
            self._link(self.last, self.dirpath / f"epoch={epochs_done - 1}.ckpt")

    @staticmethod
    def _link(src: Path, dst: Path) -> None:
        tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
        with contextlib.suppress(OSError):
            tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)

    def _capture(self, trainer: L.Trainer) -> dict[str, Any]:
        state: dict[str, Any] = {
            "global_step": trainer.global_step,
            "rng": _rng_state(),
            "batches_that_stepped": trainer.fit_loop.epoch_loop._batches_that_stepped,
            "epoch_metrics": {},
        }
        for key, metric in trainer.fit_loop.epoch_loop._results.items():
            if metric.is_tensor and metric.meta.on_epoch:
                entry = {"value": metric.value.detach().cpu().clone()}
                if hasattr(metric, "cumulated_batch_size"):
                    entry["count"] = metric.cumulated_batch_size.detach().cpu().clone()
                state["epoch_metrics"][key] = entry
        for logger in trainer.loggers:
            if isinstance(logger, ResumableCSVLogger):
                state["csv_rows"] = logger.rows_written
        return state

    # ---- restoring -----------------------------------------------------------------------------------------
    @staticmethod
    def _mark_sampler(trainer: L.Trainer, batches: int) -> None:
        loader = trainer.train_dataloader
        sampler = getattr(loader, "sampler", None)
        if isinstance(sampler, ResumableSampler):
            sampler.position = (trainer.current_epoch, batches * int(loader.batch_size or 1))

    def _apply_restore(self, trainer: L.Trainer) -> None:
        state, self._restore = self._restore, None
        assert state is not None
        if state.get("global_step") != trainer.global_step:
            log.warning(
                "the checkpoint's RNG state belongs to step %s, not %s: the resumed run is not bit-identical",
                state.get("global_step"),
                trainer.global_step,
            )
            return
        _set_rng_state(state["rng"])
        trainer.fit_loop.epoch_loop._batches_that_stepped = int(state["batches_that_stepped"])
        self._stash = dict(state.get("epoch_metrics", {}))

    def _merge_epoch_metrics(self, trainer: L.Trainer) -> None:
        """Add the epoch aggregates of the interrupted epoch to those of the resumed batches (exact: a + b)."""
        results = trainer.fit_loop.epoch_loop._results
        for key in list(self._stash):
            metric = results.get(key)
            if metric is None or not metric.is_tensor:
                continue
            saved = self._stash.pop(key)
            value = saved["value"].to(metric.value.device, metric.value.dtype)
            meta = metric.meta
            if meta.is_max_reduction:
                metric.value = torch.maximum(value, metric.value)
            elif meta.is_min_reduction:
                metric.value = torch.minimum(value, metric.value)
            else:
                metric.value = value + metric.value
            if "count" in saved and hasattr(metric, "cumulated_batch_size"):
                count = saved["count"].to(metric.cumulated_batch_size.device)
                metric.cumulated_batch_size = count + metric.cumulated_batch_size
