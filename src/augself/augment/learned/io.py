"""``learned.pt``: a run's invariance module (InstaAug) as plain data, and :func:`load_learned` for inspection tools.

File format 1 (``torch.save`` of plain containers, numbers, strings and tensors; read with ``weights_only=True``)::

    {"format": 1,
     "config": dataclasses.asdict(LearnedConfig) with tuples as lists,
     "in_channels": int, "image_size": int,          # LearnedAugment's constructor arguments
     "state_dict": LearnedAugment.state_dict()}

``augself pretrain`` writes it next to ``backbone.pt`` when ``augment.learned`` is set
(:func:`augself.train.run._export_learned`).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from augself.augment.learned.config import (
    FAMILIES,
    EntropyConfig,
    LearnedConfig,
)
from augself.augment.learned.sampler import LearnedAugment

__all__ = ["LEARNED_FORMAT", "config_from_plain", "learned_payload", "load_learned", "save_learned"]

LEARNED_FORMAT = 1
"""Version of the ``learned.pt`` layout (module docstring)."""


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively (what YAML / JSON would hold)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _tuples(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_tuples(v) for v in value)
    return value


def learned_payload(module: LearnedAugment) -> dict[str, Any]:
    """The ``learned.pt`` dictionary of ``module`` (module docstring); tensors are moved to the CPU."""
    return {
        "format": LEARNED_FORMAT,
        "config": _plain(dataclasses.asdict(module.cfg)),
        "in_channels": int(module.net.conv1.in_channels),
        "image_size": int(module.net.side),
        "state_dict": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
    }


def save_learned(module: LearnedAugment, path: str | os.PathLike[str]) -> None:
    """``torch.save(learned_payload(module), path)`` (callers that need atomicity write a temporary file first)."""
    torch.save(learned_payload(module), path)


def _dataclass_from(cls: type, raw: Any, key: str) -> Any:
    """``cls(**raw)`` with nested dataclasses and tuples restored; unknown / missing keys are one-line errors."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"{key} must be a mapping, got {type(raw).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ValueError(f"{key} has unknown entries {', '.join(map(str, unknown))} (a newer augself wrote it?)")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        sub = f"{key}.{name}"
        if name in FAMILIES and cls is LearnedConfig:
            values[name] = None if value is None else _dataclass_from(FAMILIES[name], value, sub)
        elif name == "entropy":
            values[name] = _dataclass_from(EntropyConfig, value, sub)
        else:
            values[name] = _tuples(value)
    return cls(**values)


def config_from_plain(raw: Any) -> LearnedConfig:
    """The :class:`LearnedConfig` stored in a ``learned.pt`` (``dataclasses.asdict`` form); ``ValueError`` if it
    does not have that shape."""
    cfg = _dataclass_from(LearnedConfig, raw, "config")
    if not cfg.families:
        raise ValueError("config names no learned augmentation")
    return cfg


def load_learned(path: str | os.PathLike[str], map_location: Any = "cpu") -> LearnedAugment:
    """The invariance module stored in ``path`` (a run's ``learned.pt``), in eval mode.

    Read with ``torch.load(weights_only=True)``; a file that is not a ``learned.pt`` (wrong layout, other format
    version, weights that do not fit the stored config) raises ``ValueError`` with one line naming the file;
    a missing file raises ``FileNotFoundError``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no learned augmentation module at {path} (runs with augment.learned write one)")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(f"refusing to load {path}: not plain data ({first})") from None
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(f"cannot read {path}: damaged or not a learned.pt ({type(e).__name__}: {first})") from None
    if not isinstance(data, dict) or "state_dict" not in data or "config" not in data:
        raise ValueError(f"{path} is not a learned.pt written by augself pretrain (no config / state_dict)")
    if data.get("format") != LEARNED_FORMAT:
        raise ValueError(f"{path}: learned.pt format {data.get('format')!r}; this augself reads {LEARNED_FORMAT}")
    try:
        cfg = config_from_plain(data["config"])
        module = LearnedAugment(cfg, int(data.get("in_channels", 3)), int(data.get("image_size", 32)))
        state = data["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise ValueError("state_dict must map names to tensors")
        module.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError) as e:
        first = " ".join((str(e).strip().splitlines() or [""])[0].split())
        raise ValueError(f"{path} does not hold a usable learned augmentation module: {first}") from None
    return module.eval()
