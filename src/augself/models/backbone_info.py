"""What a ``backbone.pt`` says about itself: architecture, preprocessing, decode mode, provenance.

``backbone.pt`` (written by :func:`augself.models.backbones.save_backbone`) is a dict of plain data and tensors
that loads with ``torch.load(path, weights_only=True)``::

    {"name": "resnet18",                  # build_backbone name (model.backbone)
     "kwargs": {"cifar_stem": True, ...}, # build_backbone keyword arguments (architecture only, not the init)
     "dim": 512,                          # feature dimension
     "state_dict": {...},                 # Backbone.state_dict(): "net." + the wrapped network's keys
     "format": 2,                         # absent in files written before the metadata existed (format 1)
     "meta": {"augself_version", "torch_version",
              "size", "mean", "std",      # pretraining view 0: resolution and normalisation (the eval preprocessing)
              "decode",                   # how training images were decoded (data.decode: "exact" or "draft")
              "data": {...},              # dataset name, source size, crop mode, decode
              "method", "augself",        # SSL method and AugSelf heads
              "config": {...}}}           # the full resolved pretraining config (as config.yaml)

Every ``meta`` entry is optional: a file saved from Python without a config (or by an older augself) records
what it knows, and :attr:`BackboneInfo.unknown` names the rest.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "FORMAT",
    "BackboneInfo",
    "info_from_checkpoint",
    "json_safe",
    "load_checkpoint_dict",
    "plain",
    "pretrain_meta",
    "read_backbone_info",
]

FORMAT = 2
"""Current ``backbone.pt`` layout: 2 = with ``meta``; files without a ``format`` key are layout 1 (no metadata)."""

PREPROCESSING_KEYS = ("size", "mean", "std")
RECORDED_KEYS = ("size", "mean", "std", "decode", "config")
"""The metadata a pretraining run records; :attr:`BackboneInfo.unknown` lists those a file lacks."""


def plain(value: Any, where: str = "meta", *, strict: bool = True) -> Any:
    """``value`` as plain data (dict with str keys, list, str, int, float, bool, None), so that the file loads with
    ``torch.load(weights_only=True)``; tuples become lists.

    Anything else raises ``TypeError`` naming the entry, or with ``strict=False`` is stored as its ``str()`` (a
    config value of an unexpected type must never stop a finished run from exporting its backbone).
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) and strict:
                raise TypeError(f"{where}: metadata keys must be strings, got {k!r}")
            out[str(k)] = plain(v, f"{where}.{k}", strict=strict)
        return out
    if isinstance(value, list | tuple):
        return [plain(v, f"{where}[{i}]", strict=strict) for i, v in enumerate(value)]
    if not strict:
        return str(value)
    raise TypeError(f"{where}: {type(value).__name__} is not plain data (str, int, float, bool, None, list, dict)")


def json_safe(value: Any) -> Any:
    """Plain data with non-finite floats as strings ("inf", "nan"): strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def pretrain_meta(cfg: Any, view_cfgs: Sequence[Any]) -> dict[str, Any]:
    """The metadata a pretraining run writes into ``backbone.pt``.

    ``size`` / ``mean`` / ``std`` are view 0's (the evaluation preprocessing of the AugSelf reference resizes to the
    pretraining resolution and normalises with the pretraining statistics, reference §6.1); ``decode`` is
    ``data.decode`` ("exact" / "draft"; a config without that option: "draft" when ``data.reduced_decode``).
    """
    from augself.config import to_dict  # lazy: `import augself` loads this module; config adds ~0.35 s (yaml, PIL)

    v0 = view_cfgs[0]
    d = cfg.data
    decode = getattr(d, "decode", None) or ("draft" if getattr(d, "reduced_decode", False) else "exact")
    data = {"name": d.name, "size": d.size, "crop": d.crop, "decode": decode}
    return plain(
        {
            "size": int(v0.size),
            "mean": [float(m) for m in v0.mean],
            "std": [float(s) for s in v0.std],
            "decode": str(decode),
            "data": data,
            "method": cfg.method,
            "augself": dict(cfg.augself),
            "config": to_dict(cfg),
        },
        strict=False,
    )


@dataclass(frozen=True)
class BackboneInfo:
    """The self-description of a backbone file (see the module docstring); ``None`` where the file is silent."""

    architecture: str  # build_backbone name: "resnet18", "resnet50", "small_cnn", "timm:<model_name>"
    kwargs: dict[str, Any]  # build_backbone keyword arguments (cifar_stem, in_channels, widths, ...)
    dim: int
    format: int = 1
    size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    decode: str | None = None
    data: dict[str, Any] | None = None
    method: str | None = None
    augself: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    augself_version: str | None = None
    torch_version: str | None = None
    path: Path | None = field(default=None, compare=False)

    @property
    def unknown(self) -> tuple[str, ...]:
        """The pretraining records (size, mean, std, decode, config) this file does not hold."""
        return tuple(k for k in RECORDED_KEYS if getattr(self, k) is None)

    def note(self) -> str | None:
        """One line on what is unknown (``None`` when the file records everything)."""
        if not self.unknown:
            return None
        where = str(self.path) if self.path is not None else "this backbone"
        why = "written before augself recorded metadata" if self.format < 2 else "saved without a pretraining config"
        return (
            f"{where} ({why}) does not record {', '.join(self.unknown)}; evaluation reads them from the run's "
            "config.yaml when it sits next to the file, else give --size (and --mean/--std)"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-serialisable); ``config`` included."""
        out = {
            "architecture": self.architecture,
            "kwargs": plain(self.kwargs, "kwargs"),
            "dim": self.dim,
            "format": self.format,
            "size": self.size,
            "mean": None if self.mean is None else list(self.mean),
            "std": None if self.std is None else list(self.std),
            "decode": self.decode,
            "data": self.data,
            "method": self.method,
            "augself": self.augself,
            "augself_version": self.augself_version,
            "torch_version": self.torch_version,
            "unknown": list(self.unknown),
            "config": self.config,
        }
        return out

    def to_json(self) -> str:
        return json.dumps(json_safe(self.to_dict()), indent=2, allow_nan=False)


def _floats(v: Any) -> tuple[float, ...] | None:
    if v is None:
        return None
    try:
        return tuple(float(x) for x in v)
    except (TypeError, ValueError):
        return None


def info_from_checkpoint(ckpt: Mapping[str, Any], path: Path | None = None) -> BackboneInfo:
    """:class:`BackboneInfo` of an already loaded ``backbone.pt`` dict (checked by the caller)."""
    meta = ckpt.get("meta") if isinstance(ckpt.get("meta"), Mapping) else {}
    size = meta.get("size")
    return BackboneInfo(
        architecture=str(ckpt["name"]),
        kwargs=dict(ckpt["kwargs"]),
        dim=int(ckpt.get("dim") or 0),
        format=int(ckpt.get("format", 1)),
        size=int(size) if isinstance(size, int | float) and not isinstance(size, bool) else None,
        mean=_floats(meta.get("mean")),
        std=_floats(meta.get("std")),
        decode=None if meta.get("decode") is None else str(meta["decode"]),
        data=meta.get("data") if isinstance(meta.get("data"), Mapping) else None,
        method=None if meta.get("method") is None else str(meta["method"]),
        augself=meta.get("augself") if isinstance(meta.get("augself"), Mapping) else None,
        config=meta.get("config") if isinstance(meta.get("config"), Mapping) else None,
        augself_version=meta.get("augself_version"),
        torch_version=meta.get("torch_version"),
        path=path,
    )


def load_checkpoint_dict(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` of a ``backbone.pt``; ``ValueError`` (one line) for anything else."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # pickle errors, truncated files, a safetensors / text file, ...
        why = (str(e).splitlines() or [""])[0][:200]
        raise ValueError(f"{path} is not a readable backbone file ({type(e).__name__}: {why})") from None
    if (
        not isinstance(ckpt, dict)
        or not {"name", "kwargs", "state_dict"} <= set(ckpt)
        or not isinstance(ckpt["name"], str)
        or not isinstance(ckpt["kwargs"], dict)
        or not isinstance(ckpt["state_dict"], dict)
    ):
        if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            raise ValueError(
                f"{path} is a plain state_dict (e.g. written by augself export), not a backbone.pt: load it into the "
                "stock model (docs/export.md)"
            )
        keys = sorted(map(str, ckpt))[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(
            f"{path} is not a backbone checkpoint written by save_backbone (expected keys name, kwargs, "
            f"state_dict; found {keys}). Lightning checkpoints hold the whole module; export the backbone."
        )
    return ckpt


def read_backbone_info(path: str | os.PathLike[str]) -> BackboneInfo:
    """The self-description of a ``backbone.pt`` (no network is built): ``read_backbone_info("run/backbone.pt")``."""
    p = Path(path)
    return info_from_checkpoint(load_checkpoint_dict(p), p)
