"""Run driver: build data, module, loggers and callbacks; fit; export ``backbone.pt``.

Run directory layout::

    <out>/config.yaml           resolved configuration
    <out>/checkpoints/last.ckpt latest checkpoint (plus epoch=N.ckpt every N epochs), written atomically
    <out>/metrics.csv           CSV log (TensorBoard / W&B when asked)
    <out>/backbone.pt           plain backbone: ``augself.load_backbone(path)``
    <out>/learned.pt            with ``augment.learned``: the invariance module (:mod:`augself.augment.learned.io`)
    <out>/curves.png            training curves (losses per term, lr, accuracies), also ``augself plot RUN...``

Fault tolerance (see :mod:`augself.train.checkpointing`): ``last.ckpt`` is written at step boundaries through a
temporary file + ``os.replace``; it holds the weights (with EMA targets and MoCo queue), optimizer, scheduler,
loop progress, the sampler position, the torch / numpy / python / augmentation RNG states and the partial epoch
metrics, so ``--resume`` after a ``kill -9`` continues exactly (on CPU: a bit-identical ``metrics.csv``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import LearningRateMonitor, TQDMProgressBar
from lightning.pytorch.loggers import Logger
from torch.utils.data import DataLoader, Dataset

from augself.augment.learned.io import learned_payload
from augself.augment.learned.sampler import LearnedAugment
from augself.config import ConfigError, PretrainConfig, to_dict, to_yaml
from augself.data.folder import FileListDataset
from augself.data.registry import DATASETS, GENERATED, build_dataset, pretrain_split, use_crop_mode
from augself.models.backbone_info import pretrain_meta
from augself.models.backbones import Backbone, save_backbone
from augself.names import check_name
from augself.optional import require
from augself.preflight import preflight
from augself.quiet import quiet_lightning
from augself.train.checkpointing import (
    AtomicCheckpointIO,
    CheckpointReadError,
    CheckpointWriteError,
    ResumableCheckpoint,
    atomic_save,
    check_free_space,
    check_resume_config,
    checkpoint_bytes,
    describe_write_failure,
    ensure_writable,
    load_checkpoint,
)
from augself.train.csv_log import ResumableCSVLogger
from augself.train.curves import write_curves
from augself.train.interrupt import (
    StopOnSignal,
    TrainingInterrupted,
    preserve_signal_handlers,
    signal_name,
    sigterm_raises,
)
from augself.train.module import LEARNED_NEEDS_DEVICE_CROP, NonFiniteLossError, PretrainModule
from augself.train.monitors import KNNMonitor
from augself.train.run_folder import RunFolderLock, check_new_run, clear_run, is_launch_rank_zero
from augself.train.sampler import ResumableDataLoader, ResumableSampler
from augself.train.scaling import batch_plan
from augself.train.sync_bn import SyncBatchNormPlugin
from augself.trainer_args import lightning_message

log = logging.getLogger(__name__)


def _num_classes(dataset: object) -> int | None:
    classes = getattr(dataset, "classes", None)
    if classes:
        return len(classes)
    n = getattr(dataset, "num_classes", None)
    return int(n) if n else None


def _data_kwargs(cfg: PretrainConfig, shrink: int = 1) -> dict[str, object]:
    """Reader options that only some datasets take (size of generated sets, corrupt-file handling)."""
    if cfg.data.name in GENERATED:
        return {"n": cfg.data.n if shrink == 1 else max(1000, cfg.data.n // shrink)}
    return {} if cfg.data.name in DATASETS else {"skip_corrupt": cfg.data.skip_corrupt}


class CachedDataset(Dataset):
    """Dict samples decoded once and held as batched tensors; ``__getitem__`` only indexes them.

    Reading files is deterministic (decode + resize to the source size), so the samples are identical to
    the wrapped dataset's. Other attributes (``classes``, ``targets``, ...) are those of the wrapped dataset.
    """

    def __init__(self, dataset: Dataset, num_workers: int = 0, batch_size: int = 256) -> None:
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
        parts = list(loader)
        self.dataset = dataset
        self.data: dict[str, torch.Tensor] = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    def __len__(self) -> int:
        return len(self.data["image"])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self.data.items()}

    def __getattr__(self, name: str) -> object:
        if name in ("dataset", "data") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)


def maybe_cache(dataset: Dataset, cfg: PretrainConfig) -> Dataset:
    """Wrap an image-folder dataset in :class:`CachedDataset` if its decoded images fit ``data.cache_mb``."""
    if cfg.data.cache_mb <= 0 or not isinstance(dataset, FileListDataset) or len(dataset) == 0:
        return dataset
    if dataset.crop != "centre_square":  # data.crop=full_image: fresh random crops at every read
        return dataset
    mib = len(dataset) * dataset[0]["image"].numel() / 2**20
    if mib > cfg.data.cache_mb:
        return dataset
    start = time.perf_counter()
    cached = CachedDataset(dataset, num_workers=cfg.data.num_workers)
    took = time.perf_counter() - start
    log.info("decoded %d images into a %.0f MiB in-memory cache in %.1f s", len(cached), mib, took)
    return cached


def _loggers(cfg: PretrainConfig, out: Path, resume_step: int | None, keep_rows: int | None = None) -> list[Logger]:
    """The ``trainer.loggers``; names and optional packages were checked by :func:`augself.preflight.preflight`
    (checked again here, one line each, for callers that build a Trainer directly)."""
    loggers: list[Logger] = []
    for name in cfg.trainer.loggers:
        check_name(name, ("csv", "tensorboard", "wandb"), "trainer.loggers entry")
        if name == "csv":
            loggers.append(ResumableCSVLogger(out, keep_before_step=resume_step, keep_rows=keep_rows))
        elif name == "tensorboard":
            from lightning.pytorch.loggers import TensorBoardLogger

            require("tensorboard", "trainer.loggers entry 'tensorboard'")
            loggers.append(TensorBoardLogger(out, name="tb", version=""))
        else:
            from lightning.pytorch.loggers import WandbLogger

            require("wandb", "trainer.loggers entry 'wandb'")
            loggers.append(WandbLogger(save_dir=str(out), project="augself"))
    return loggers


def build_trainer(
    cfg: PretrainConfig,
    out: Path,
    callbacks: list[L.Callback],
    resume_step: int | None = None,
    keep_rows: int | None = None,
) -> L.Trainer:
    """A Trainer with atomic, exactly resumable checkpoints (:class:`ResumableCheckpoint` first in line)."""
    quiet_lightning()  # under the CLI without --verbose: Lightning's info lines off (augself.quiet)
    t = cfg.trainer
    ckpt = ResumableCheckpoint(
        out / "checkpoints", every_n_steps=t.checkpoint_every_n_steps, every_n_epochs=t.checkpoint_every_n_epochs
    )
    extra: list[L.Callback] = [ckpt, StopOnSignal(ckpt), *callbacks]  # SIGTERM / SIGINT: save, then stop
    if t.progress_bar:
        extra.append(TQDMProgressBar(refresh_rate=10))
    loggers = _loggers(cfg, out, resume_step, keep_rows)
    if loggers:
        extra.append(LearningRateMonitor(logging_interval="step"))
    kwargs: dict[str, Any] = dict(
        default_root_dir=out,
        max_epochs=t.epochs,
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,  # type: ignore[arg-type]
        accumulate_grad_batches=t.accumulate_grad_batches,
        sync_batchnorm=t.sync_batchnorm,
        log_every_n_steps=t.log_every_n_steps,
        logger=loggers or False,
        callbacks=extra,
        enable_checkpointing=False,  # ResumableCheckpoint writes the checkpoints
        plugins=[AtomicCheckpointIO(), *([SyncBatchNormPlugin()] if t.sync_batchnorm else [])],  # CPU + GPU
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        deterministic=t.deterministic,
        use_distributed_sampler=True,
    )
    if not t.lightning_args:
        return L.Trainer(**kwargs)
    # trainer.<name>: other Trainer arguments (augself.trainer_args; none of those set above but enable_model_summary)
    try:
        return L.Trainer(**{**kwargs, **t.lightning_args})
    except (MisconfigurationException, ValueError, TypeError) as e:  # a combination the dry run could not see
        given = ", ".join(f"trainer.{k}={v!r}" for k, v in t.lightning_args.items())
        raise ConfigError(f"trainer settings rejected by Lightning (with {given}): {lightning_message(e)}") from None


def log_interval(requested: int, batches: int, lightning_args: dict[str, Any]) -> int:
    """``trainer.log_every_n_steps`` capped to the batches of one epoch on one device (``batches``, after
    ``limit_train_batches``), so that a short epoch still logs and Lightning does not warn about it."""
    limit = lightning_args.get("limit_train_batches")
    if isinstance(limit, float):
        batches = int(batches * limit)
    elif isinstance(limit, int) and not isinstance(limit, bool):
        batches = min(batches, limit)
    return max(1, min(requested, batches)) if batches >= 1 else requested


def _load_checkpoint(path: Path) -> dict[str, Any]:
    """``last.ckpt`` for ``--resume``, read with ``weights_only=True`` (a crafted file cannot run code)."""
    try:
        ckpt = load_checkpoint(path)
    except CheckpointReadError as e:
        raise ConfigError(f"--resume: {e}") from None
    if not isinstance(ckpt, dict) or "global_step" not in ckpt or "state_dict" not in ckpt:
        raise ConfigError(f"--resume: {path} is not a Lightning checkpoint written by `augself pretrain`")
    return ckpt


def _callback_state(ckpt: dict[str, Any], cls: type) -> dict[str, Any]:
    for key, state in (ckpt.get("callbacks") or {}).items():
        if str(key).split("{")[0] == cls.__qualname__ and isinstance(state, dict):
            return state
    return {}


def run_pretrain(
    cfg: PretrainConfig,
    resume: bool = False,
    callbacks: list[L.Callback] | None = None,
    overwrite: bool = False,
    *,
    backbone: torch.nn.Module | None = None,
    feature_dim: int | None = None,
) -> Path:
    """Pretrain according to ``cfg``; with ``resume`` continue from ``<out>/checkpoints/last.ckpt``.

    ``backbone`` / ``feature_dim``: pretrain your own ``nn.Module`` instead of ``cfg.model.backbone`` (see
    :class:`PretrainModule`; ``--resume`` needs the same module again).

    ``callbacks`` are extra Lightning callbacks (e.g. early stopping, custom logging). A folder that holds
    another run's weights (``backbone.pt``, ``config.yaml``, ``checkpoints/*.ckpt``) is only replaced with
    ``overwrite`` (which first removes them). The run folder is locked for the whole run (rank 0 only).
    Raises :class:`ConfigError` (a ``ValueError``) for user errors (an existing run without ``resume`` or
    ``overwrite``, a checkpoint written with another configuration or holding more than tensors and plain data,
    a batch larger than the dataset), :class:`augself.train.run_folder.RunFolderBusyError` when another run
    writes to the folder, :class:`augself.train.checkpointing.OutputFolderError` /
    :class:`augself.train.checkpointing.CheckpointWriteError` for a read-only or full output folder (``OSError``),
    :class:`NonFiniteLossError` when the loss becomes NaN / inf (``last.ckpt`` then holds the last good step) and
    :class:`augself.train.interrupt.TrainingInterrupted` on SIGTERM / SIGINT (after saving ``last.ckpt``).

    ``trainer.fast_dev_run`` (Lightning's smoke test) runs in a temporary folder that is then removed: ``cfg.out``
    is neither created nor changed and the returned path no longer exists.
    """
    preflight(cfg)  # every check that needs no file (config, devices, optional packages): before the folder exists
    smoke = _smoke_test_folder(cfg, resume)  # trainer.fast_dev_run: a temporary folder, cfg.out stays untouched
    if smoke is not None:
        cfg = dataclasses.replace(cfg, out=smoke.name)
    out = Path(cfg.out)
    owner = is_launch_rank_zero()  # DDP: the other ranks neither lock nor check (rank 0 writes the folder)
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other (continue the run, or replace it)")
    if resume and not (out / "checkpoints" / "last.ckpt").is_file():
        raise ConfigError(f"--resume: no checkpoint at {out / 'checkpoints' / 'last.ckpt'}")
    created = not out.exists()
    lock = RunFolderLock(out) if owner else None
    try:
        with sigterm_raises(out / "checkpoints" / "last.ckpt"):
            ensure_writable(out)
            if lock is not None:
                lock.acquire()
                check_new_run(out, resume, overwrite)  # under the lock: a run still writing is reported as busy
            return _run(cfg, resume, callbacks, overwrite and owner, backbone, feature_dim)
    finally:
        if lock is not None:
            lock.release()
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()  # only when nothing was written (a user error before the run started)
        if smoke is not None:
            smoke.cleanup()


def _smoke_test_folder(cfg: PretrainConfig, resume: bool) -> tempfile.TemporaryDirectory[str] | None:
    """With ``trainer.fast_dev_run`` (Lightning's smoke test: a few batches, no loggers) the run happens in a
    temporary folder removed afterwards, so no ``config.yaml`` / ``last.ckpt`` / ``backbone.pt`` of a 1-step run
    can pass for a finished one; ``cfg.out`` is neither created nor changed."""
    if not is_fast_dev_run(cfg):
        return None
    if resume:
        raise ConfigError("trainer.fast_dev_run is a smoke test in a temporary folder and cannot --resume; drop one")
    return tempfile.TemporaryDirectory(prefix="augself-fast-dev-run-")


def is_fast_dev_run(cfg: PretrainConfig) -> bool:
    """``trainer.fast_dev_run`` is on (true or a number of batches >= 1)."""
    value = cfg.trainer.lightning_args.get("fast_dev_run", False)
    return value is True or (not isinstance(value, bool) and isinstance(value, int) and value > 0)


def _run(
    cfg: PretrainConfig,
    resume: bool,
    callbacks: list[L.Callback] | None,
    overwrite: bool,
    backbone: torch.nn.Module | None = None,
    feature_dim: int | None = None,
) -> Path:
    out = Path(cfg.out)
    last = out / "checkpoints" / "last.ckpt"
    ckpt = _load_checkpoint(last) if resume else None
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    d = cfg.data
    split = pretrain_split(d.name, d.split)
    dataset = build_dataset(d.name, split, size=d.size, root=d.root, seed=cfg.seed, **_data_kwargs(cfg))
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ConfigError(f"dataset {d.name!r} (split {split!r}) holds no images")
    if is_launch_rank_zero():
        how = " (an un-split folder: every image, data.split=auto)" if d.split == "auto" and split == "all" else ""
        print(f"data: {len(dataset)} images of {d.name!r}, split {split!r}{how}", flush=True)  # type: ignore[arg-type]
    if cfg.trainer.batch_size > len(dataset):  # type: ignore[arg-type]
        raise ConfigError(
            f"trainer.batch_size={cfg.trainer.batch_size} is larger than the dataset ({len(dataset)} images)"  # type: ignore[arg-type]
        )
    num_classes = _num_classes(dataset)
    resume_step: int | None = None
    keep_rows: int | None = None
    if ckpt is not None:
        changed = check_resume_config(ckpt, to_dict(cfg), num_classes, last)
        for line in changed:
            log.warning("resuming with a changed setting (the run now differs from an uninterrupted one): %s", line)
        resume_step = int(ckpt["global_step"])
        rows = _callback_state(ckpt, ResumableCheckpoint).get("csv_rows")
        keep_rows = int(rows) if rows is not None else None
        del ckpt
    module = PretrainModule(cfg, num_classes, backbone=backbone, feature_dim=feature_dim)
    dataset = use_crop_mode(dataset, d.crop, module.view_cfgs, d.decode, seed=cfg.seed)
    if module.learned is not None and getattr(dataset, "crop", None) == "full_image":
        raise ConfigError(LEARNED_NEEDS_DEVICE_CROP)
    check_free_space(out, 2 * checkpoint_bytes(module))

    callbacks = list(callbacks or [])
    if cfg.monitor.every_n_epochs > 0 and num_classes:
        size = module.view_cfgs[0].size
        m = cfg.monitor
        callbacks.append(
            KNNMonitor(
                build_dataset(d.name, m.train_split, size=size, root=d.root, seed=cfg.seed, **_data_kwargs(cfg)),
                build_dataset(d.name, m.test_split, size=size, root=d.root, seed=cfg.seed, **_data_kwargs(cfg, 5)),
                num_classes,
                m.every_n_epochs,
                m.k,
                m.temperature,
                m.max_samples,
                seed=cfg.seed,
            )
        )
    trainer = build_trainer(cfg, out, callbacks, resume_step, keep_rows)
    plan = batch_plan(cfg.trainer, cfg.optim.base_lr, cfg.optim.scale_lr, trainer.world_size)
    if trainer.is_global_zero:
        print(plan.describe(), flush=True)  # one line per run: the batch and lr actually used
    per_rank = -(-len(dataset) // trainer.world_size)  # type: ignore[arg-type]  # DistributedSampler: ceil
    trainer.log_every_n_steps = log_interval(
        cfg.trainer.log_every_n_steps, per_rank // plan.per_device, cfg.trainer.lightning_args
    )
    if overwrite:
        clear_run(out)
    (out / "config.yaml").write_text(to_yaml(cfg))
    dataset = maybe_cache(dataset, cfg)
    loader: DataLoader
    common: dict[str, Any] = {
        "batch_size": plan.per_device,
        "drop_last": True,
        "num_workers": d.num_workers,
        "persistent_workers": d.num_workers > 0,
        "pin_memory": torch.cuda.is_available(),
    }
    if trainer.world_size == 1:
        # The data order is a function of (seed, epoch) and the position inside the epoch is checkpointed:
        # a run resumed mid-epoch sees exactly the remaining batches of the interrupted one. full_image datasets
        # get (epoch, index) keys, so their worker-side crops are a function of (seed, epoch, index) as well.
        keyed = bool(getattr(dataset, "keyed_by_epoch", False))
        sampler = ResumableSampler(len(dataset), seed=cfg.seed, keyed=keyed)  # type: ignore[arg-type]
        loader = ResumableDataLoader(dataset, sampler=sampler, **common)
    else:  # Lightning injects a DistributedSampler (seeded; resume restarts the interrupted epoch)
        loader = DataLoader(dataset, shuffle=True, **common)
    ckpt_cb = next(c for c in trainer.callbacks if isinstance(c, ResumableCheckpoint))
    try:
        with preserve_signal_handlers():
            trainer.fit(module, loader, ckpt_path=str(last) if resume else None)
    except NonFiniteLossError as e:
        raise NonFiniteLossError(f"{e}; training stopped; {ckpt_cb.describe_last()}") from None
    except SystemExit as e:
        # Lightning's own stop: SIGTERMException (exit status None = 0) on a SIGTERM its handler caught, or
        # sys.exit(1) after a KeyboardInterrupt; a stopped run must never look like a finished one.
        signum = signal.SIGINT if isinstance(e.__context__, KeyboardInterrupt) else signal.SIGTERM
        raise TrainingInterrupted(
            signum,
            f"interrupted by {signal_name(signum)} at step {trainer.global_step}; "
            f"{ckpt_cb.describe_last()}; continue with --resume",
        ) from None
    if trainer.is_global_zero and "max_time" in cfg.trainer.lightning_args and _stopped_early(trainer, cfg):
        print(
            f"stopped by trainer.max_time={cfg.trainer.lightning_args['max_time']!r} at step {trainer.global_step} "
            f"of {int(trainer.estimated_stepping_batches)}; backbone.pt holds this state; --resume with a larger "
            "trainer.max_time continues",
            flush=True,
        )
    if trainer.is_global_zero and not is_fast_dev_run(cfg):  # a smoke test exports nothing
        _export_backbone(module.method.backbone, out / "backbone.pt", ckpt_cb, cfg, module.view_cfgs)
        if module.learned is not None:
            _export_learned(module.learned, out / "learned.pt", ckpt_cb)
        if "csv" in cfg.trainer.loggers:
            _draw_curves(out)
    return out


def _stopped_early(trainer: L.Trainer, cfg: PretrainConfig) -> bool:
    """Training ended before ``trainer.epochs`` / ``trainer.max_steps`` (Lightning's ``max_time`` timer stopped it)."""
    steps_left = cfg.trainer.max_steps < 0 or trainer.global_step < cfg.trainer.max_steps
    return trainer.current_epoch < cfg.trainer.epochs and steps_left


def _draw_curves(out: Path) -> None:
    """``<out>/curves.png`` (:mod:`augself.train.curves`); the run is complete by now, so a failure is one warning."""
    try:
        write_curves([out], out / "curves.png")
    except Exception as e:  # any failure: a plot must never fail or lose a finished run
        why = str(e).splitlines()[0] if str(e).strip() else type(e).__name__
        log.warning("training curves not drawn (the run itself is complete): %s", why)


def _export_learned(module: LearnedAugment, path: Path, ckpt_cb: ResumableCheckpoint) -> None:
    """``learned.pt`` (:func:`augself.augment.learned.io.learned_payload`: config + state_dict as plain data, read
    with ``weights_only=True``) through :func:`atomic_save`; a failed write is one line."""
    try:
        atomic_save(learned_payload(module), path)
    except CheckpointWriteError as e:
        raise CheckpointWriteError(
            f"{e}; {ckpt_cb.describe_last()}; make room and run again with --resume to export the module"
        ) from None


def _export_backbone(
    backbone: torch.nn.Module,
    path: Path,
    ckpt_cb: ResumableCheckpoint,
    cfg: PretrainConfig | None = None,
    view_cfgs: Any = None,
) -> None:
    """:func:`save_backbone` through a temporary file + ``os.replace``; a failed write (full disk) is one line.

    With ``cfg`` the file records the run's preprocessing (view 0's size, mean, std), decode mode and resolved
    config (:func:`augself.models.backbone_info.pretrain_meta`), so a copied ``backbone.pt`` evaluates alone.
    """
    if cfg is not None and view_cfgs and isinstance(backbone, Backbone):
        backbone.meta.update(pretrain_meta(cfg, view_cfgs))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_backbone(backbone, tmp)  # type: ignore[arg-type]
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        why = describe_write_failure(e, tmp)
        with contextlib.suppress(OSError):
            tmp.unlink()
        if why is None:
            raise
        raise CheckpointWriteError(
            f"cannot write {path}: {why}; {ckpt_cb.describe_last()}; make room and run again with --resume to "
            "export the backbone"
        ) from None
