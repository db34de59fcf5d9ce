"""Any other ``lightning.Trainer`` argument as a ``trainer.<name>`` config key (``trainer.gradient_clip_val=1.0``).

A ``trainer.*`` key that is not a field of :class:`augself.config.TrainerConfig` is checked against the parameters of
``lightning.Trainer.__init__`` (``inspect.signature``, so every Lightning version's own list) and kept in
``TrainerConfig.lightning_args``; :func:`augself.train.run.build_trainer` passes it on. ``config.yaml`` and the
checkpoint's stored config list it as ``trainer.<name>`` again (:func:`flatten_trainer`), so a run folder reloads
and resumes with it. Checks, each one line (:class:`~augself.config_error.ConfigError`, CLI exit status 2):

- a name that is neither ours nor Lightning's: "unknown config key", with the closest of both lists;
- a Lightning argument that augself sets itself (:data:`OWNED`): refused, naming our key for it;
- a value whose type the annotation of the Trainer parameter excludes (:func:`check_lightning_args`);
- a value Lightning itself refuses (``limit_train_batches=-1``, ``max_time=abc``): :func:`dry_run` builds a CPU
  Trainer with each argument before anything is created and reports Lightning's message.

``null`` removes a key (Lightning's default). ``trainer.fast_dev_run`` runs in a temporary folder and leaves the run
folder untouched (:func:`augself.train.run.run_pretrain`): a smoke test must not look like a finished run.
"""

from __future__ import annotations

import collections.abc
import contextlib
import functools
import inspect
import logging
import types
import typing
import warnings
from collections.abc import Iterator
from typing import Any, Literal

from augself.config_error import ConfigError
from augself.names import close_match_hint

FIELD = "lightning_args"
"""The :class:`~augself.config.TrainerConfig` field that holds the passed-through arguments."""

OWNED: dict[str, str] = {
    "max_epochs": "use trainer.epochs",
    "default_root_dir": "use out (the run directory)",
    "logger": "use trainer.loggers (csv, tensorboard, wandb)",
    "enable_progress_bar": "use trainer.progress_bar",
    "enable_checkpointing": (
        "augself writes its own resumable checkpoints; use trainer.checkpoint_every_n_epochs / "
        "trainer.checkpoint_every_n_steps"
    ),
    "callbacks": (
        "augself sets the callbacks (checkpoints, signals, progress bar); pass more from Python: "
        "augself.train.run.run_pretrain(cfg, callbacks=[...])"
    ),
    "plugins": (
        "augself sets the plugins (atomic checkpoint writes, SyncBatchNorm); use trainer.precision / "
        "trainer.sync_batchnorm / trainer.strategy"
    ),
    "use_distributed_sampler": (
        "augself needs it on (its resumable sampler on one process, Lightning's DistributedSampler under DDP)"
    ),
    "barebones": "it switches off the loggers and callbacks that augself's checkpoints and logs rely on",
    "overfit_batches": "it replaces augself's resumable sampler; use trainer.limit_train_batches",
}
"""Trainer arguments that :func:`augself.train.run.build_trainer` sets itself (passing them would break the
checkpoints, logs or sampler): refused with the key to use instead. ``max_epochs`` is ``trainer.epochs`` here."""

POSITIVE: tuple[str, ...] = ("limit_train_batches",)
"""Arguments whose 0 would train nothing and still export an untrained ``backbone.pt``."""


@functools.cache
def trainer_parameters() -> dict[str, inspect.Parameter]:
    """The keyword parameters of ``lightning.Trainer.__init__`` (this Lightning version's)."""
    import lightning as L

    params = inspect.signature(L.Trainer.__init__).parameters
    return {n: p for n, p in params.items() if n != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD}


@functools.cache
def _trainer_hints() -> dict[str, Any]:
    import lightning as L

    try:
        return typing.get_type_hints(L.Trainer.__init__)
    except Exception:  # an annotation this Python cannot evaluate: Lightning checks the values itself (dry_run)
        return {}


def check_arg_name(name: str, ours: list[str], where: str = "") -> None:
    """``trainer.<name>`` is an argument of ``lightning.Trainer`` that augself does not set itself."""
    key = f"trainer.{name}"
    if name in OWNED:
        raise ConfigError(f"{key}{where} is set by augself: {OWNED[name]}")
    params = trainer_parameters()
    if name not in params:
        candidates = [*ours, *(p for p in params if p not in OWNED)]
        hint = close_match_hint(name, candidates, "trainer.")  # trainer keys have no old spellings
        raise ConfigError(
            f"unknown config key {key!r}{where}; valid keys in trainer: {', '.join(ours)}, or any lightning.Trainer "
            f"argument (gradient_clip_val, limit_train_batches, max_time, ...).{hint}"
        )


def move_trainer_args(raw: Any, ours: list[str], where: str = "") -> None:
    """In a raw (parsed, unmerged) document: move ``trainer.<name>`` keys that are not ours (``ours``: the
    TrainerConfig fields) into ``trainer.lightning_args``, after :func:`check_arg_name`. Other shapes are left alone."""
    if not isinstance(raw, dict) or not isinstance(raw.get("trainer"), dict):
        return
    section = raw["trainer"]
    extra = [k for k in section if k not in ours]
    if not extra:
        return
    for name in extra:
        check_arg_name(str(name), ours, where)
    moved = section.get(FIELD)
    moved = dict(moved) if isinstance(moved, dict) else {}
    for name in extra:
        moved[name] = section.pop(name)
    section[FIELD] = moved


def flatten_trainer(trainer: dict[str, Any]) -> dict[str, Any]:
    """A ``TrainerConfig`` dict with ``lightning_args`` listed as ``trainer.<name>`` keys (how users write them)."""
    out = {k: v for k, v in trainer.items() if k != FIELD}
    out.update(trainer.get(FIELD) or {})
    return out


# ------------------------------------------------------------------------------------------ values
_UNIONS = (typing.Union, types.UnionType)


def _accepts(tp: Any, value: Any) -> bool | None:
    """Whether a YAML value fits the annotation ``tp`` (None: cannot tell, e.g. ``Any``)."""
    origin = typing.get_origin(tp)
    if origin in _UNIONS:
        results = [_accepts(a, value) for a in typing.get_args(tp)]
        return True if True in results else None if None in results else False
    if origin is Literal:
        return any(value == c and type(value) is type(c) for c in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if tp is dict or origin in (dict, collections.abc.Mapping):
        return isinstance(value, dict)
    if tp is list or origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable):
        return isinstance(value, list)
    if isinstance(tp, type):
        return isinstance(value, tp)  # a class (timedelta, Profiler, ...): a YAML value never is one
    return None


def _describe(tp: Any) -> list[str]:
    """The YAML-writable forms of ``tp``: ["an integer", "null", ...]."""
    origin = typing.get_origin(tp)
    if origin in _UNIONS:
        return [d for a in typing.get_args(tp) for d in _describe(a)]
    if origin is Literal:
        return [f"one of {', '.join(map(str, typing.get_args(tp)))}"]
    names = {type(None): "null", bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if tp in names:
        return [names[tp]]
    if tp is dict or origin in (dict, collections.abc.Mapping):
        return ["a mapping"]
    if tp is list or origin in (list, tuple, collections.abc.Sequence, collections.abc.Iterable):
        return ["a list"]
    return []


_EXAMPLES = {"max_time": " (a quoted 'DD:HH:MM:SS' such as '00:12:00:00', or {hours: 12})"}


def check_lightning_args(args: Any, ours: list[str]) -> None:
    """Names (:func:`check_arg_name`) and value types (from the Trainer's annotations) of ``trainer.lightning_args``."""
    if not isinstance(args, dict):
        raise ConfigError(f"trainer.{FIELD} must be a mapping of lightning.Trainer arguments, got {args!r}")
    hints = _trainer_hints()
    for name, value in args.items():
        check_arg_name(str(name), ours)
        key = f"trainer.{name}"
        tp = hints.get(name)
        if tp is not None and _accepts(tp, value) is False:
            forms = list(dict.fromkeys(_describe(tp)))
            if "a number" in forms and "an integer" in forms:
                forms.remove("an integer")
            what = ", ".join(forms[:-1]) + f" or {forms[-1]}" if len(forms) > 1 else "".join(forms) or "another type"
            raise ConfigError(f"{key} must be {what}{_EXAMPLES.get(name, '')}, got {value!r}")
        if name in POSITIVE and not isinstance(value, bool) and isinstance(value, int | float) and value <= 0:
            raise ConfigError(f"{key} must be > 0 (a number of batches, or a fraction of the epoch), got {value!r}")
        if name == "max_time" and _zero_duration(value):
            raise ConfigError(f"{key} must be a duration > 0 (0 stops before the first step), got {value!r}")


def _zero_duration(value: Any) -> bool:
    """``"00:00:00:00"`` or ``{seconds: 0}``: a ``max_time`` that trains nothing (other forms: Lightning checks)."""
    if isinstance(value, str):
        parts = value.split(":")
        return all(p.strip().isdigit() for p in parts) and all(int(p) == 0 for p in parts)
    if isinstance(value, dict) and value:
        numbers = [v for v in value.values() if isinstance(v, int | float) and not isinstance(v, bool)]
        return len(numbers) == len(value) and all(v == 0 for v in numbers)
    return False


# ------------------------------------------------------------------------------------------ Lightning's own checks
@contextlib.contextmanager
def lightning_silenced() -> Iterator[None]:
    """Lightning's info lines and warnings off (a throw-away Trainer's: the real one prints them once, later)."""
    loggers = [logging.getLogger(n) for n in ("lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def lightning_message(e: BaseException) -> str:
    """Lightning's exception text on one line."""
    return " ".join(str(e).split()) or type(e).__name__


def dry_run(args: dict[str, Any]) -> None:
    """Build a CPU ``lightning.Trainer`` with each argument of ``args`` (about 10 ms each, nothing written) and turn
    what Lightning refuses (``MisconfigurationException``, ``ValueError``, ``TypeError``) into one line."""
    if not args:
        return
    import lightning as L

    base: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    for name, value in args.items():
        try:
            with lightning_silenced():
                L.Trainer(**{**base, name: value})
        except Exception as e:  # MisconfigurationException (an Exception), ValueError, TypeError: the value
            raise ConfigError(f"trainer.{name}={value!r} rejected by Lightning: {lightning_message(e)}") from None
