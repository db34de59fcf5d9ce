"""Checks of configuration values that do not depend on the machine: shapes, ranges, names, method arguments.

OmegaConf's own type checks differ between versions (2.3 does not check tuple lengths, so ``crop_scale=[]`` would
fail later with "not enough values to unpack"); everything the code relies on is checked here, so the message is
the same under every OmegaConf version ``pyproject.toml`` allows:

- :func:`check_shapes`: a raw YAML document or override, before it is merged: lists of fixed length, mappings
  where mappings belong, per-view override keys (``augment.views``), ``method_args`` as a mapping.
- :func:`coerce_tuples`: after conversion, tuple fields hold tuples of the declared length.
- :func:`check_values`: finite numbers, ranges, UTF-8 strings, ``method_args`` against the method's signature,
  enough views for the method, logger / accelerator / strategy / precision names and the ``trainer.devices`` form.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import inspect
import math
import types
import typing
from collections.abc import Iterator
from typing import Any, Literal

from augself.config_aliases import view_aliases
from augself.config_error import ConfigError
from augself.data.imageio import DECODE_MODES
from augself.methods import METHODS
from augself.names import check_name
from augself.trainer_args import check_lightning_args

LOGGERS: tuple[str, ...] = ("csv", "tensorboard", "wandb")
ACCELERATORS: tuple[str, ...] = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")
"""Lightning's accelerator names (``lightning.pytorch.accelerators.AcceleratorRegistry`` plus ``auto`` / ``gpu``)."""
SEED_RANGE: tuple[int, int] = (0, 2**32 - 1)
"""``numpy.random.seed`` (and ``L.seed_everything``) accept unsigned 32-bit seeds only."""


# ------------------------------------------------------------------------------------------ type hints of the schema
@functools.cache
def schema_hints(cls: type) -> dict[str, Any]:
    """Resolved field annotations of a config dataclass."""
    return typing.get_type_hints(cls)


def _fixed_length(tp: Any) -> int | None:
    """``tuple[float, float]`` -> 2; ``tuple[float, ...]`` -> None."""
    args = typing.get_args(tp)
    return None if len(args) == 2 and args[1] is Ellipsis else len(args)


def _is_interpolation(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int | float):
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def did_you_mean(name: str, valid: list[str], prefix: str = "") -> str:
    """`` Did you mean 'prefix+closest'?`` for the closest valid name, or ``""`` (the key messages' hint).

    Old spellings of valid names count as their current name (``jiter_p`` -> ``color_p``, via ``jitter_p``)."""
    old = {a: n for a, n in view_aliases().items() if n in valid}
    close = difflib.get_close_matches(name, [*valid, *old], n=1)
    return f" Did you mean {prefix + old.get(close[0], close[0])!r}?" if close else ""


# ------------------------------------------------------------------------------------------ raw documents
def check_shapes(raw: Any, schema: type, where: str = "", key: str = "", view_schema: type | None = None) -> None:
    """Check a raw (parsed, unmerged) document against the dataclass ``schema``; ``where`` names the source.

    Only what OmegaConf versions treat differently, or not at all, is checked here: fixed-length lists (tuple
    fields), mappings and lists in their places, the per-view entries of ``augment.views`` (``view_schema``).
    Unknown keys and scalar types are left to OmegaConf (their messages carry the key).
    """
    _check(raw, schema, key, where, view_schema)


def _check(value: Any, tp: Any, key: str, where: str, view_schema: type | None) -> None:
    if value is None or _is_interpolation(value):
        return
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key or 'the config'} must be a mapping of settings (key: value), got {value!r}{where}")
        hints = schema_hints(tp)  # type: ignore[arg-type]
        for k, v in value.items():
            if k in hints:
                _check(v, hints[k], f"{key}.{k}" if key else str(k), where, view_schema)
    elif origin is tuple:
        n = _fixed_length(tp)
        what = f"a list of {n} numbers" if n is not None else "a list of numbers"
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be {what}, got {value!r}{where}")
        if n is not None and len(value) != n:
            raise ConfigError(f"{key} must be {what}, got length {len(value)}: {value!r}{where}")
        if not all(_is_number(v) or _is_interpolation(v) for v in value):
            raise ConfigError(f"{key} must be {what}, got {value!r}{where}")
    elif origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key} must be a list, e.g. [{_example(key)}], got {value!r}{where}")
        item = typing.get_args(tp)[0]
        for i, v in enumerate(value):
            if key == "augment.views" and view_schema is not None:
                check_view(v, view_schema, f"{key}[{i}]", where)
            else:
                _check(v, item, f"{key}[{i}]", where, view_schema)
    elif origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping (name: value), got {value!r}{where}")
        for k, v in value.items():
            _check(v, typing.get_args(tp)[1], f"{key}.{k}", where, view_schema)
    elif isinstance(value, list | dict):
        scalar = [a for a in typing.get_args(tp) if a is not type(None)] if origin in _UNIONS else [tp]
        if len(scalar) == 1 and scalar[0] in _SCALAR_NAMES:
            raise ConfigError(f"{key} must be {_SCALAR_NAMES[scalar[0]]}, got {value!r}{where}")


_UNIONS = (typing.Union, types.UnionType)
_SCALAR_NAMES: dict[Any, str] = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _example(key: str) -> str:
    return {"trainer.loggers": "csv, tensorboard", "augment.views": "{blur_p: 1.0}, {blur_p: 0.1}"}.get(key, "...")


def check_view(value: Any, view_schema: type, key: str, where: str = "") -> None:
    """One raw ``augment.views`` entry (``key``: ``augment.views[i]``): a mapping of known view settings."""
    if value is None or _is_interpolation(value):
        return
    if not isinstance(value, dict):
        raise ConfigError(
            f"{key} must be a mapping of view settings such as {{blur_p: 1.0}} ({{}} = the shared augment "
            f"settings), got {value!r}{where}"
        )
    valid = [f.name for f in dataclasses.fields(view_schema)]  # type: ignore[arg-type]
    for k in value:
        if k not in valid:
            hint = did_you_mean(str(k), valid)
            raise ConfigError(f"unknown key {f'{key}.{k}'!r}{where}; valid keys: {', '.join(valid)}.{hint}")
    _check(value, view_schema, key, where, None)


def _as_tuple(value: Any, tp: Any) -> tuple[Any, ...]:
    """``value`` as a tuple of the element type of ``tp`` (``tuple[float, float]``: floats)."""
    item = typing.get_args(tp)[0] if typing.get_args(tp) else None
    return tuple(item(v) if item in (int, float) else v for v in value)


# ------------------------------------------------------------------------------------------ converted objects
def coerce_tuples(obj: Any, key: str = "") -> None:
    """In place: every tuple field of the dataclass ``obj`` (and nested ones) holds a tuple of the declared length.

    OmegaConf 2.3 returns lists for tuple fields (2.4 tuples); a configuration built in Python may hold anything.
    """
    for f in dataclasses.fields(obj):
        value, tp, name = getattr(obj, f.name), schema_hints(type(obj))[f.name], f"{key}.{f.name}" if key else f.name
        if dataclasses.is_dataclass(value):
            coerce_tuples(value, name)
        elif typing.get_origin(tp) is tuple:
            n = _fixed_length(tp)
            if not isinstance(value, list | tuple) or (n is not None and len(value) != n):
                got = f"length {len(value)}: " if isinstance(value, list | tuple) else ""
                raise ConfigError(f"{name} must be a list of {n or 'some'} numbers, got {got}{value!r}")
            if not all(_is_number(v) for v in value):
                raise ConfigError(f"{name} must be a list of numbers, got {value!r}")
            setattr(obj, f.name, _as_tuple(value, tp))


_TRUE, _FALSE = ("true", "yes", "on"), ("false", "no", "off")


def convert_value(value: Any, tp: Any, key: str) -> Any:
    """``value`` as the scalar / tuple type ``tp`` (for untyped entries such as ``augment.views[i]``), as OmegaConf
    converts typed fields: numbers from numeric strings, no bools as numbers, tuples of numbers."""
    origin = typing.get_origin(tp)
    if origin is tuple:  # shape checked by check_shapes
        return _as_tuple(value, tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp is int or tp is float:
        number: Any = value
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = int(value) if tp is int else float(value)
        if isinstance(number, bool) or not isinstance(number, int | float) or (tp is int and isinstance(number, float)):
            raise ConfigError(f"{key} must be {'an integer' if tp is int else 'a number'}, got {value!r}")
        return tp(number)
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return str(value)
    return value


# ------------------------------------------------------------------------------------------ values
def _leaves(value: Any, key: str) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) for every scalar in a dataclass / dict / list tree."""
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            yield from _leaves(getattr(value, f.name), f"{key}.{f.name}" if key else f.name)
    elif isinstance(value, dict):
        for k, v in value.items():  # trainer.lightning_args entries are written trainer.<name>
            yield from _leaves(v, f"trainer.{k}" if key == "trainer.lightning_args" else f"{key}.{k}")
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{key}[{i}]")
    else:
        yield key, value


def _at_least(key: str, value: float, low: float, note: str = "") -> None:
    if not value >= low:
        raise ConfigError(f"{key} must be >= {low:g}{note}, got {value!r}")


def _in_range(key: str, value: float, low: float, high: float, high_open: bool = False) -> None:
    ok = low <= value < high if high_open else low <= value <= high
    if not ok:
        raise ConfigError(f"{key} must be in [{low:g}, {high:g}{')' if high_open else ']'}, got {value!r}")


def check_values(cfg: Any) -> None:
    """Machine-independent checks of a converted :class:`augself.config.PretrainConfig`."""
    for key, value in _leaves(cfg, ""):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ConfigError(
                    f"{key}: {value!r} holds bytes that are not valid UTF-8 (a file name in another encoding?); "
                    "rename it or use a UTF-8 path"
                ) from None
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value}")
    lo, hi = SEED_RANGE
    if not lo <= cfg.seed <= hi:
        raise ConfigError(f"seed must be an integer in [{lo}, {hi}] (numpy's seed range), got {cfg.seed}")
    d = cfg.data
    _at_least("data.size", d.size, 1)
    _at_least("data.n", d.n, 1)
    _at_least("data.num_workers", d.num_workers, 0)
    _at_least("data.cache_mb", d.cache_mb, 0)
    check_name(d.decode, DECODE_MODES, "data.decode mode")
    if cfg.essl.size is not None:
        _at_least("essl.size", cfg.essl.size, 1)
    _at_least("essl.hidden_dim", cfg.essl.hidden_dim, 1)
    o = cfg.optim
    if not o.base_lr > 0:
        raise ConfigError(f"optim.base_lr must be > 0, got {o.base_lr}")
    _at_least("optim.weight_decay", o.weight_decay, 0)
    _in_range("optim.momentum", o.momentum, 0, 1)
    _at_least("optim.warmup_epochs", o.warmup_epochs, 0)
    _in_range("optim.min_lr_ratio", o.min_lr_ratio, 0, 1)
    for i, beta in enumerate(o.betas):
        _in_range(f"optim.betas[{i}]", beta, 0, 1, high_open=True)
    if not o.lars_eta > 0:
        raise ConfigError(f"optim.lars_eta must be > 0, got {o.lars_eta}")
    t = cfg.trainer
    _at_least("trainer.epochs", t.epochs, 0)
    _at_least("trainer.max_steps", t.max_steps, -1, " (-1 = no limit)")
    _at_least("trainer.num_nodes", t.num_nodes, 1)
    _at_least("trainer.accumulate_grad_batches", t.accumulate_grad_batches, 1)
    for name in t.loggers:
        check_name(name, LOGGERS, "trainer.loggers entry")
    check_name(t.accelerator, ACCELERATORS, "trainer.accelerator")
    parse_devices(t.devices)
    check_strategy_and_precision(t.strategy, t.precision)
    # trainer.<any other lightning.Trainer argument>
    check_lightning_args(t.lightning_args, [f.name for f in dataclasses.fields(t)])
    m = cfg.monitor
    _at_least("monitor.every_n_epochs", m.every_n_epochs, 0)
    _at_least("monitor.max_samples", m.max_samples, 1)
    _at_least("monitor.k", m.k, 1)
    if not m.temperature > 0:
        raise ConfigError(f"monitor.temperature must be > 0, got {m.temperature}")
    check_method_args(cfg.method, cfg.method_args)
    views = cfg.augment.build().views
    for i, view in enumerate(views):
        for key, value in _leaves(view, f"augment.views[{i}]"):
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{key} must be a finite number, got {value}")
    need = METHODS[cfg.method].views_needed  # the views its loss uses (augself.methods.contract.Method)
    if len(views) < need:
        raise ConfigError(
            f"method {cfg.method!r} needs at least {need} views, augment.views lists {len(views)} "
            "(each entry is one view: [{}, {}] = two views with the shared settings)"
        )


def parse_devices(devices: Any) -> int | list[int] | str:
    """``trainer.devices`` as Lightning takes it: ``"auto"``, a count >= 1, -1 (all) or a list of indices."""
    msg = (
        "trainer.devices must be auto, a device count >= 1, -1 (all devices) or a list of device indices "
        f"such as [0, 1], got {devices!r}"
    )
    if devices == "auto":
        return "auto"
    if isinstance(devices, str):
        text = devices.strip()
        if "," in text:
            devices = [p.strip() for p in text.split(",") if p.strip()]
        else:
            try:
                devices = int(text)
            except ValueError:
                raise ConfigError(msg) from None
    if isinstance(devices, bool):
        raise ConfigError(msg)
    if isinstance(devices, int):
        if devices == -1 or devices >= 1:
            return devices
        raise ConfigError(msg)
    if isinstance(devices, list | tuple) and devices:
        try:
            ids = [int(v) for v in devices if not isinstance(v, bool | float)]
        except (TypeError, ValueError):
            raise ConfigError(msg) from None
        if len(ids) == len(devices) and min(ids) >= 0 and len(set(ids)) == len(ids):
            return ids
    raise ConfigError(msg)


def check_strategy_and_precision(strategy: str, precision: str) -> None:
    """Names Lightning accepts (its registry of strategies; its precision literals)."""
    try:
        from lightning.fabric.plugins.precision.precision import (
            _PRECISION_INPUT_INT,
            _PRECISION_INPUT_STR,
            _PRECISION_INPUT_STR_ALIAS,
        )
        from lightning.pytorch.strategies import StrategyRegistry
    except ImportError:  # another Lightning layout: the Trainer checks these itself
        return
    check_name(strategy, ["auto", *StrategyRegistry.available_strategies()], "trainer.strategy")
    precisions = [str(p) for t in (_PRECISION_INPUT_STR, _PRECISION_INPUT_INT, _PRECISION_INPUT_STR_ALIAS)
                  for p in typing.get_args(t)]  # fmt: skip
    check_name(str(precision), list(dict.fromkeys(precisions)), "trainer.precision")


# ------------------------------------------------------------------------------------------ method arguments
_POSITIVE = ("temperature", "sinkhorn_eps")
_UNIT = ("momentum",)
_NON_NEGATIVE_INTS = ("freeze_prototypes_iters", "sinkhorn_iters")


def method_parameters(method: str) -> dict[str, inspect.Parameter]:
    """The keyword arguments ``method_args`` may set: the method class's ``__init__`` parameters, except the
    backbone and ``num_classes`` (the trainer passes those)."""
    params = inspect.signature(METHODS[method].__init__).parameters
    return {n: p for n, p in params.items() if n not in ("self", "backbone", "num_classes")}


def check_method_args(method: str, args: dict[str, Any]) -> None:
    """Every ``method_args`` key is a keyword of the method class, with a value of its annotated type."""
    check_name(method, METHODS, "method")
    params = method_parameters(method)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    try:
        hints = typing.get_type_hints(METHODS[method].__init__)
    except Exception:  # an annotation that cannot be evaluated: check the names only
        hints = {}
    valid = sorted(params)
    for name, value in args.items():
        key = f"method_args.{name}"
        if name not in params:
            hint = did_you_mean(str(name), valid)
            raise ConfigError(f"unknown {key} for method {method!r}; valid keys: {', '.join(valid) or 'none'}.{hint}")
        _check_arg(key, value, hints.get(name))


def _check_arg(key: str, value: Any, tp: Any) -> None:
    name = key.rsplit(".", 1)[-1]
    args = typing.get_args(tp)
    if value is None:
        if tp is not None and type(None) not in args:
            raise ConfigError(f"{key} must not be null")
        return
    kinds = [a for a in args if a is not type(None)] if typing.get_origin(tp) in _UNIONS else [tp]
    if typing.get_origin(kinds[0]) is Literal:
        choices = typing.get_args(kinds[0])
        if value not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))}, got {value!r}")
        return
    if int in kinds or float in kinds:
        integer = int in kinds and float not in kinds
        if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
            raise ConfigError(f"{key} must be {'an integer' if integer else 'a number'}, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key} must be a finite number, got {value}")
        if name in _POSITIVE and not value > 0:
            raise ConfigError(f"{key} must be > 0, got {value}")
        if name in _UNIT:
            _in_range(key, value, 0, 1)
        elif integer:
            _at_least(key, value, 0 if name in _NON_NEGATIVE_INTS else 1)
        else:
            _at_least(key, value, 0)
