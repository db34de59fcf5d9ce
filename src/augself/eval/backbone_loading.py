"""Load a frozen backbone for evaluation together with its *pretraining* preprocessing.

:func:`load_for_eval` loads ``backbone.pt`` (or ``<run>/backbone.pt``) with the pretraining preprocessing
(Lee et al., NeurIPS 2021; reference §6.1): resize to the pretraining view size, centre crop, the pretraining
mean/std. The size and statistics come from the checkpoint's metadata when it has any, else from the run's
``config.yaml`` (``augment.size/mean/std``, view 0), else from ``--size`` (and the augself default
normalisation); a bare file with none of these is an error, never a guess.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from augself.data.imageio import INTERPOLATIONS
from augself.eval.features import hash_state_dict
from augself.eval.naming import slug
from augself.models.backbone_info import load_checkpoint_dict
from augself.models.backbones import backbone_from_checkpoint
from augself.names import check_name

__all__ = [
    "DEFAULT_MEAN",
    "DEFAULT_STD",
    "EVAL_INTERPOLATION",
    "LoadedBackbone",
    "Preprocessing",
    "backbone_file",
    "check_interpolation",
    "default_label",
    "default_out",
    "load_for_eval",
    "read_preprocessing",
]

DEFAULT_MEAN: tuple[float, ...] = (0.5, 0.5, 0.5)  # augself's ViewConfig default normalisation
DEFAULT_STD: tuple[float, ...] = (0.25, 0.25, 0.25)
EVAL_INTERPOLATION = "bicubic"
"""The evaluation resize filter: the reference's ``T.Resize(96 or 224, interpolation=BICUBIC)`` (AugSelf
``datasets.py`` ``load_datasets`` and ``load_fewshot_datasets``; reference §6.1). ``bilinear`` (torchvision's
default) is the option (``--interpolation``)."""


def check_interpolation(value: object) -> str:
    """``value`` if it is a resize filter of :data:`augself.data.imageio.INTERPOLATIONS`, else one-line ValueError."""
    return check_name(value, INTERPOLATIONS, "interpolation")


@dataclass(frozen=True)
class Preprocessing:
    """Evaluation preprocessing: resize the short side to ``size`` (``interpolation``), centre crop,
    ``(x/255 - mean) / std``."""

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str  # where it came from (checkpoint metadata / config.yaml / command line / default)
    overrides: tuple[str, ...] = field(default=(), compare=False)
    """Given values that differ from the recorded pretraining ones, e.g. ``("size 64 (recorded: 32)",)``."""
    interpolation: str = EVAL_INTERPOLATION

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "mean": list(self.mean),
            "std": list(self.std),
            "source": self.source,
            "interpolation": self.interpolation,
            "resize": f"short side to size (PIL {self.interpolation}, antialiased), centre crop",
        }


@dataclass
class LoadedBackbone:
    """A backbone ready for evaluation with its pretraining preprocessing."""

    path: Path  # the backbone.pt file
    run_dir: Path | None  # the run directory when the file sits in one (has config.yaml)
    backbone: torch.nn.Module
    pre: Preprocessing
    label: str
    _hash: str | None = field(default=None, repr=False)

    @property
    def hash(self) -> str:
        if self._hash is None:
            self._hash = hash_state_dict(self.backbone)
        return self._hash

    def info(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "run_dir": None if self.run_dir is None else str(self.run_dir),
            "label": self.label,
            "name": getattr(self.backbone, "name", type(self.backbone).__name__),
            "dim": int(getattr(self.backbone, "dim", 0)),
            "sha256": self.hash,
        }


def backbone_file(path: str | os.PathLike[str]) -> Path:
    """``path`` itself when it is a file, ``<path>/backbone.pt`` when it is a run directory."""
    p = Path(path).expanduser()
    if p.is_dir():
        f = p / "backbone.pt"
        if not f.is_file():
            raise FileNotFoundError(
                f"run directory {str(p)!r} has no backbone.pt (pretraining exports it when it finishes; "
                "give the backbone file or a finished run directory)"
            )
        return f
    if not p.is_file():
        raise FileNotFoundError(f"backbone not found: {str(p)!r} (give a backbone.pt file or a run directory)")
    return p


def _seq(v: Any, what: str) -> tuple[float, ...]:
    try:
        out = tuple(float(x) for x in v)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} must be a list of numbers, got {v!r}") from e
    return out


def read_preprocessing(
    ckpt_path: Path,
    *,
    ckpt: Mapping[str, Any] | None = None,
    size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> tuple[Preprocessing, Path | None]:
    """The pretraining preprocessing of a backbone (see the module docstring) and its run directory.

    Explicit ``size`` / ``mean`` / ``std`` override what is found.
    """
    found: dict[str, Any] = {}
    source = None
    meta: Mapping[str, Any] = {}
    if ckpt is not None:
        for key in ("preprocessing", "preprocess", "meta"):
            if isinstance(ckpt.get(key), Mapping):
                meta = ckpt[key]
                break
        else:
            meta = ckpt
    if meta.get("size") is not None:
        found = {k: meta.get(k) for k in ("size", "mean", "std")}
        source = f"checkpoint metadata ({ckpt_path.name})"
    cfg_path = ckpt_path.parent / "config.yaml"
    run_dir = ckpt_path.parent if cfg_path.is_file() else None
    if source is None and cfg_path.is_file():
        import yaml

        try:
            cfg = yaml.safe_load(cfg_path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"cannot parse {cfg_path}: {e}") from e
        aug = cfg.get("augment") or {} if isinstance(cfg, dict) else {}
        views = aug.get("views") or [{}]
        v0 = {**aug, **(views[0] or {})}
        found = {"size": v0.get("size", 32), "mean": v0.get("mean", DEFAULT_MEAN), "std": v0.get("std", DEFAULT_STD)}
        source = f"pretraining config ({cfg_path})"
    overrides = _disagreements(found, size=size, mean=mean, std=std) if source is not None else ()
    if size is not None:
        found["size"] = size
    if mean is not None:
        found["mean"] = mean
    if std is not None:
        found["std"] = std
    if found.get("size") is None:
        raise ValueError(
            f"{ckpt_path} carries no pretraining preprocessing and there is no config.yaml next to it: pass --size "
            "(the pretraining view size; optionally --mean/--std, default augself's 0.5/0.25)"
        )
    if source is None:
        source = "command line"
    elif size is not None or mean is not None or std is not None:
        source += " with command-line overrides"
    m = _seq(found.get("mean") if found.get("mean") is not None else DEFAULT_MEAN, "mean")
    s = _seq(found.get("std") if found.get("std") is not None else DEFAULT_STD, "std")
    sz = int(found["size"])
    if sz < 1 or len(m) != len(s) or not all(0 < v < math.inf for v in s) or not all(math.isfinite(v) for v in m):
        raise ValueError(f"invalid preprocessing: size {sz}, mean {m}, std {s}")
    return Preprocessing(sz, m, s, source, overrides), run_dir


def _disagreements(recorded: Mapping[str, Any], **given: Any) -> tuple[str, ...]:
    """``"size 64 (recorded: 32)"`` for each given value that differs from the recorded one (unparsable: skipped)."""
    out = []
    for key, value in given.items():
        old = recorded.get(key)
        if value is None or old is None:
            continue
        try:
            same = int(value) == int(old) if key == "size" else _seq(value, key) == _seq(old, key)
        except (TypeError, ValueError):
            continue  # an invalid recorded value is reported by the checks below
        if not same:
            show = (lambda v: int(v)) if key == "size" else (lambda v: [float(x) for x in v])
            out.append(f"{key} {show(value)} (recorded: {show(old)})")
    return tuple(out)


def load_for_eval(
    path: str | os.PathLike[str],
    *,
    size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    label: str | None = None,
    interpolation: str = EVAL_INTERPOLATION,
) -> LoadedBackbone:
    """Load a backbone file or run directory together with its pretraining preprocessing (backbone in eval mode).

    ``size`` / ``mean`` / ``std`` default to what ``backbone.pt`` records (else the run's ``config.yaml``); given
    values that differ from the recorded ones are used, with one ``UserWarning`` line naming the differences.
    ``interpolation``: the resize filter (default :data:`EVAL_INTERPOLATION`, the reference's bicubic).
    """
    interpolation = check_interpolation(interpolation)
    f = backbone_file(path).resolve()
    ckpt = load_checkpoint_dict(f)  # ValueError (one line) for an unreadable file or not a backbone.pt
    pre, run_dir = read_preprocessing(f, ckpt=ckpt, size=size, mean=mean, std=std)
    pre = replace(pre, interpolation=interpolation)
    if pre.overrides:
        warnings.warn(
            f"{f}: evaluating with {', '.join(pre.overrides)}, not the pretraining preprocessing recorded in the "
            f"{pre.source.removesuffix(' with command-line overrides')}",
            UserWarning,
            stacklevel=2,
        )
    backbone = backbone_from_checkpoint(ckpt, f).eval()
    del ckpt
    return LoadedBackbone(f, run_dir, backbone, pre, label or default_label(f))


def default_label(f: Path) -> str:
    """The run directory's name for ``<run>/backbone.pt``, else the file's stem."""
    return (f.resolve().parent.name or f.stem) if f.name == "backbone.pt" else f.stem


def default_out(lb: LoadedBackbone, protocol: str, stem: str, suffix: str = ".json") -> Path:
    """``<run>/eval/<protocol>-<stem><suffix>`` (next to the backbone when it is not in a run dir); ``stem`` is
    :meth:`EvalData.file_stem` (unique per data path), else slugged here."""
    base = lb.run_dir or lb.path.parent
    return base / "eval" / f"{protocol}-{slug(stem)}{suffix}"
