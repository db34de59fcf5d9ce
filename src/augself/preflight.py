"""Pre-flight: every check a pretraining run can make before it creates anything.

:func:`preflight` is called by :func:`augself.train.run.run_pretrain` first thing, before the run folder exists.
It repeats :func:`augself.config.validate` (for configs built in Python) and adds what depends on this machine:

- ``trainer.accelerator`` names a device this machine has (``gpu`` / ``cuda`` / ``mps`` without one is an error,
  not a traceback from Lightning after the run folder was made), ``trainer.devices`` fits the device count;
- the optional packages the settings need are installed (``model.backbone=timm:...``: timm;
  ``trainer.loggers``: tensorboard, wandb), with an install hint that works in a clone; a timm model name exists;
- Lightning accepts the accelerator / devices / strategy / precision combination (its own connector, dry run),
  and each passed-through ``trainer.<name>`` argument (:func:`augself.trainer_args.dry_run`).

Every failure is one :class:`~augself.config_error.ConfigError` line (CLI: exit status 2).
"""

from __future__ import annotations

import difflib
from typing import Any

from augself.config import PretrainConfig, validate
from augself.config_checks import parse_devices
from augself.config_error import ConfigError
from augself.optional import require
from augself.trainer_args import dry_run, lightning_message, lightning_silenced

LOGGER_EXTRAS: dict[str, str] = {"tensorboard": "tensorboard", "wandb": "wandb"}
"""``trainer.loggers`` entry -> the optional extra (``pyproject.toml``) it needs; ``csv`` needs none."""


def preflight(cfg: PretrainConfig) -> None:
    """Raise :class:`ConfigError` if ``cfg`` cannot run on this machine; creates nothing."""
    validate(cfg)
    check_optional_packages(cfg)
    check_devices(cfg.trainer.accelerator, cfg.trainer.devices)
    check_trainer_connector(cfg)
    dry_run(cfg.trainer.lightning_args)  # trainer.<other Trainer argument>: values Lightning refuses


def check_optional_packages(cfg: PretrainConfig) -> None:
    """timm for ``timm:`` backbones (and the model name), tensorboard / wandb for those loggers."""
    name = cfg.model.backbone
    if name.startswith("timm:"):
        require("timm", f"model.backbone={name}")
        check_timm_model(name[5:])
    for logger in cfg.trainer.loggers:
        if logger in LOGGER_EXTRAS:
            require(LOGGER_EXTRAS[logger], f"trainer.loggers entry {logger!r}")


def check_timm_model(model_name: str) -> None:
    import timm

    if not model_name or not timm.is_model(model_name):
        close = difflib.get_close_matches(model_name, timm.list_models(), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"model.backbone: timm has no model {model_name!r} (timm.list_models() lists them).{hint}")


def _available(accelerator: str) -> tuple[str, int]:
    """(the device kind ``accelerator`` resolves to, as Lightning resolves it; how many this machine has, 0 = none,
    -1 = any number: CPU processes)."""
    import torch

    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = int(bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()))
    if accelerator == "cuda":
        return "cuda", cuda
    if accelerator == "mps":
        return "mps", mps
    if accelerator == "gpu":
        return ("cuda", cuda) if cuda else ("mps", mps) if mps else ("gpu", 0)
    if accelerator == "tpu":
        try:
            from lightning.pytorch.accelerators import XLAAccelerator

            return "tpu", XLAAccelerator.auto_device_count() if XLAAccelerator.is_available() else 0
        except Exception:
            return "tpu", 0
    if accelerator == "auto":
        return ("cuda", cuda) if cuda else ("mps", mps) if mps else ("cpu", -1)
    return "cpu", -1


def check_devices(accelerator: str, devices: Any) -> None:
    """The accelerator exists on this machine and ``trainer.devices`` does not ask for more than it has."""
    import torch

    kind, count = _available(accelerator)
    if count == 0:
        build = f"torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}"
        raise ConfigError(
            f"trainer.accelerator={accelerator}: this machine has no {kind.upper()} device ({build}); "
            "use trainer.accelerator=cpu (or auto)"
        )
    wanted = parse_devices(devices)
    if kind == "cpu":
        if isinstance(wanted, list) or wanted == -1:
            what = "device indices" if isinstance(wanted, list) else "-1 (all GPUs)"
            raise ConfigError(
                f"trainer.devices={devices!r}: on the CPU give a number of processes (e.g. 2), not {what}"
            )
        return
    if isinstance(wanted, int) and wanted > count:
        raise ConfigError(f"trainer.devices={wanted}, but this machine has {count} {kind.upper()} device(s)")
    if isinstance(wanted, list) and max(wanted) >= count:
        raise ConfigError(
            f"trainer.devices={wanted}: device index {max(wanted)} does not exist; this machine has {count} "
            f"{kind.upper()} device(s) (indices 0..{count - 1})"
        )


def check_trainer_connector(cfg: PretrainConfig) -> None:
    """Lightning's own accelerator / strategy / precision checks, run without building a Trainer.

    Catches what the name checks cannot (e.g. ``strategy=deepspeed`` without deepspeed installed). Uses the
    connector the Trainer uses; with a Lightning version that lacks it the Trainer makes these checks later.
    """
    try:
        from lightning.pytorch.trainer.connectors.accelerator_connector import _AcceleratorConnector
    except ImportError:
        return
    t = cfg.trainer
    try:
        with lightning_silenced():
            _AcceleratorConnector(
                accelerator=t.accelerator,
                devices=t.devices,
                num_nodes=t.num_nodes,
                strategy=t.strategy,
                precision=t.precision,  # type: ignore[arg-type]
                sync_batchnorm=False,
            )
    except Exception as e:  # MisconfigurationException, ValueError, TypeError, ...: all mean "these settings"
        what = lightning_message(e)
        raise ConfigError(
            f"trainer settings (accelerator={t.accelerator}, devices={t.devices}, strategy={t.strategy}, "
            f"precision={t.precision}) rejected by Lightning: {what}"
        ) from None
