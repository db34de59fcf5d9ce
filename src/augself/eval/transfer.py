"""Evaluation runners for frozen backbones and the multi-dataset transfer suite.

* :func:`load_for_eval` loads ``backbone.pt`` (or ``<run>/backbone.pt``) with the *pretraining* preprocessing
  (Lee et al., NeurIPS 2021; reference §6.1): resize to the pretraining view size, centre crop, the pretraining
  mean/std. The size and statistics come from the checkpoint's metadata when it has any, else from the run's
  ``config.yaml`` (``augment.size/mean/std``, view 0), else from ``--size`` (and the augself default
  normalisation).
* :func:`run_linear`, :func:`run_knn`, :func:`run_fewshot` evaluate one backbone on one dataset and return a
  JSON-able record ``{"protocol", "dataset", "metrics", "settings", ...}`` (what ``augself eval`` writes).
* :func:`run_transfer` runs a suite (YAML) over several runs and writes ``results.json``, ``results.md``
  (rows = dataset x protocol/metric, columns = runs, plus the difference to the first run) and ``results.png``.

Suite format (relative paths resolve against the suite file's folder)::

    defaults:                      # optional per-protocol settings for every dataset
      fewshot: {shots: [5], episodes: 2000}
    datasets:
      - name: dtd10-64             # label in the table (default: the folder name)
        data: ../../../shared/data/dtd10-64   # a dataset name (cifar10, ...) or an image-folder path
        root: null                 # root of a named dataset (optional)
        protocols: [linear, fewshot]          # or {linear: {wd_grid_size: 45}, fewshot: {shots: [1, 5]}}
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import ConcatDataset, Dataset

from augself.data.errors import DatasetError
from augself.data.folder import FOLDER_LAYOUT
from augself.eval.report import bar_chart, headlines, markdown_table, slug, summary_line, write_json

__all__ = [
    "PROTOCOLS",
    "PROTOCOL_DEFAULTS",
    "EvalData",
    "FeatureSource",
    "LoadedBackbone",
    "Preprocessing",
    "default_out",
    "load_for_eval",
    "load_suite",
    "protocol_settings",
    "resolve_data",
    "run_fewshot",
    "run_knn",
    "run_linear",
    "run_protocol",
    "run_transfer",
]

#: Protocol options and their defaults (paper / reference §6 unless noted).
PROTOCOL_DEFAULTS: dict[str, dict[str, Any]] = {
    # L-BFGS, wd in logspace(-6, 5, wd_grid_size) (paper: 45 values); val = the dataset's own, else a seeded
    # 10 % of train. ``sgd``: the SGD probe with augmentation instead (for datasets too large for full batch).
    "linear": {
        "wd_grid_size": 45,
        "metric": None,  # None: the dataset's convention (class-avg for Pets/Flowers/Caltech/Aircraft)
        "val_fraction": 0.1,
        "seed": 0,
        "max_iter": 1000,
        "tol": 1e-5,
        "sgd": False,
        "sgd_epochs": 100,
        "sgd_lr": 0.1,
        "sgd_batch_size": 256,
        "sgd_augment": True,
    },
    # weighted cosine kNN (InstDisc: k = 200, T = 0.1); memory = train (+ val), queries = test
    "knn": {"k": 200, "t": 0.1},
    # N-way K-shot, Q queries, T episodes (reference §6.2: 5-way, 1/5-shot, 16 queries, 2000 episodes)
    "fewshot": {"ways": 5, "shots": [1, 5], "queries": 16, "episodes": 2000, "seed": 0, "C": 1.0, "split": None},
}
PROTOCOLS: tuple[str, ...] = tuple(PROTOCOL_DEFAULTS)
FOLDER_PATH_LAYOUT = """  <path>/{train,test}/<class>/<image>   (val carved from train unless <path>/val exists)
  <path>/<class>/<image>                (one folder: split 70/10/20 by seed)"""
#: Named datasets whose few-shot pool is one split rather than ``all`` (reference §6.2: FC100 uses test/).
FEWSHOT_SPLIT: dict[str, str] = {"fc100": "test"}
DEFAULT_MEAN: tuple[float, ...] = (0.5, 0.5, 0.5)  # augself's ViewConfig default normalisation
DEFAULT_STD: tuple[float, ...] = (0.25, 0.25, 0.25)


# ---------------------------------------------------------------------------------------------- backbones
@dataclass(frozen=True)
class Preprocessing:
    """Evaluation preprocessing: resize the short side to ``size``, centre crop, ``(x/255 - mean) / std``."""

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str  # where it came from (checkpoint metadata / config.yaml / command line / default)

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "mean": list(self.mean),
            "std": list(self.std),
            "source": self.source,
            "resize": "short side to size (bilinear, antialiased), centre crop",
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
            from augself.eval.features import hash_state_dict

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
    if sz < 1 or len(m) != len(s) or any(v <= 0 for v in s):
        raise ValueError(f"invalid preprocessing: size {sz}, mean {m}, std {s}")
    return Preprocessing(sz, m, s, source), run_dir


def load_for_eval(
    path: str | os.PathLike[str],
    *,
    size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    label: str | None = None,
) -> LoadedBackbone:
    """Load a backbone file or run directory together with its pretraining preprocessing."""
    from augself.models import load_backbone

    f = backbone_file(path).resolve()
    try:
        ckpt = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated files, ...
        raise ValueError(f"{f} is not a readable backbone checkpoint ({type(e).__name__}: {str(e)[:200]})") from e
    if not isinstance(ckpt, dict):
        raise ValueError(f"{f} is not a backbone checkpoint written by save_backbone")
    pre, run_dir = read_preprocessing(f, ckpt=ckpt, size=size, mean=mean, std=std)
    del ckpt
    backbone = load_backbone(f)
    return LoadedBackbone(f, run_dir, backbone, pre, label or _default_label(f))


def _default_label(f: Path) -> str:
    """The run directory's name for ``<run>/backbone.pt``, else the file's stem."""
    return (f.resolve().parent.name or f.stem) if f.name == "backbone.pt" else f.stem


def default_out(lb: LoadedBackbone, protocol: str, dataset: str, suffix: str = ".json") -> Path:
    """``<run>/eval/<protocol>-<dataset><suffix>`` (next to the backbone when it is not in a run dir)."""
    base = lb.run_dir or lb.path.parent
    return base / "eval" / f"{protocol}-{slug(dataset)}{suffix}"


# ---------------------------------------------------------------------------------------------- datasets
@dataclass
class EvalData:
    """A dataset to evaluate on: ``synthetic``, a named transfer set, or an image folder."""

    spec: str
    name: str
    kind: str  # "synthetic" | "named" | "folder"
    path: Path | None = None
    root: str | None = None
    seed: int = 0

    @property
    def presplit(self) -> bool:
        return self.kind == "folder" and self.path is not None and (self.path / "train").is_dir()

    def key(self) -> str:
        return str(self.path) if self.path is not None else self.spec

    def has_own_val(self) -> bool:
        """Whether ``val`` is disjoint from ``train`` (else the linear protocol carves val out of train)."""
        if self.kind == "folder":
            return not self.presplit or (self.path / "val").is_dir()  # type: ignore[operator]
        return True

    def fewshot_splits(self) -> list[str]:
        """The few-shot pool: the reader's ``all`` split (reference §6.2 uses train ∪ test for CUB/Plant
        Disease), FC100's ``test`` split (its novel classes, reference §6.2), every split folder of a pre-split
        image folder, the ``test`` split of ``synthetic``."""
        if self.kind == "synthetic":
            return ["test"]
        if self.kind == "named" and self.spec in FEWSHOT_SPLIT:
            return [FEWSHOT_SPLIT[self.spec]]
        if self.presplit:
            return [s for s in ("train", "val", "test") if (self.path / s).is_dir()]  # type: ignore[operator]
        return ["all"]

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "spec": self.spec,
            "kind": self.kind,
            "path": None if self.path is None else str(self.path),
            "root": self.root,
            "seed": self.seed,
        }


def resolve_data(
    data: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    base: str | os.PathLike[str] | None = None,
    name: str | None = None,
    seed: int = 0,
) -> EvalData:
    """Classify ``data`` (dataset name or folder path; relative paths resolve against ``base`` when given).

    A path that does not exist raises :class:`DatasetError` showing the expected image-folder layout.
    """
    from augself.data.registry import DATASETS, dataset_info

    spec = str(data)
    if root is not None and base is not None and not Path(root).expanduser().is_absolute():
        root = str(Path(base) / Path(root).expanduser())
    if spec == "synthetic":
        return EvalData(spec, name or spec, "synthetic", None, None, seed)
    if spec in DATASETS:
        return EvalData(spec, name or spec, "named", None, None if root is None else str(root), seed)
    p = Path(spec).expanduser()
    if not p.is_absolute() and base is not None:
        p = Path(base) / p
    if not p.is_dir() and root is not None and (Path(root).expanduser() / spec).is_dir():
        p = Path(root).expanduser() / spec
    if p.is_dir():
        p = p.resolve()
        return EvalData(spec, name or p.name, "folder", p, None, seed)
    looks_like_path = base is not None or any(c in spec for c in "/\\") or spec.startswith((".", "~"))
    if looks_like_path:
        raise DatasetError(
            f"dataset folder {str(p)!r} does not exist (or is not a folder); give a dataset name "
            f"({', '.join(DATASETS)}) or an image folder",
            FOLDER_PATH_LAYOUT,
        )
    dataset_info(spec)  # raises the registry's "unknown dataset ... did you mean" message
    raise DatasetError(f"unknown dataset {spec!r}")  # pragma: no cover - dataset_info raised


class FeatureSource:
    """Frozen features of one backbone on one dataset, per split, memoised (and cached on disk when
    ``cache`` is given). Folder splits share the class list of ``train``."""

    def __init__(
        self,
        lb: LoadedBackbone,
        data: EvalData,
        *,
        size: int | None = None,
        device: str | torch.device | None = None,
        cache: str | os.PathLike[str] | None = None,
        batch_size: int = 256,
        num_workers: int = 0,
        progress: bool = True,
    ) -> None:
        from augself.eval.features import FeatureCache

        self.lb, self.data = lb, data
        self.size = int(size or lb.pre.size)
        self.device = device
        self.cache = FeatureCache(cache) if cache else None
        self.batch_size, self.num_workers, self.progress = batch_size, num_workers, progress
        self._feats: dict[str, tuple[Tensor, Tensor]] = {}
        self._sets: dict[str, Dataset] = {}
        self.extract_s = 0.0

    @property
    def classes(self) -> list[str] | None:
        if self.data.kind != "folder":
            return None
        return list(getattr(self.dataset("train" if self.data.presplit else "all"), "classes", []))

    def dataset(self, split: str) -> Dataset:
        if split not in self._sets:
            from augself.data.registry import build_dataset

            d = self.data
            kw: dict[str, Any] = {}
            if d.kind == "folder":
                first = "train" if d.presplit else "all"
                if split != first:
                    kw["classes"] = self.dataset(first).classes  # type: ignore[attr-defined]
                    if d.presplit and (d.path / split).is_dir():  # type: ignore[operator]
                        extra = sorted(
                            x.name
                            for x in (d.path / split).iterdir()  # type: ignore[operator]
                            if x.is_dir() and not x.name.startswith(".") and x.name not in kw["classes"]
                        )
                        if extra:
                            raise DatasetError(
                                f"{d.path}/{split} has class folders missing from {d.path}/train: "
                                f"{', '.join(extra[:5])}",
                                FOLDER_LAYOUT,
                            )
            target = str(d.path) if d.path is not None else d.spec
            self._sets[split] = build_dataset(target, split, size=self.size, root=d.root, seed=d.seed, **kw)
        return self._sets[split]

    def get(self, split: str) -> tuple[Tensor, Tensor]:
        """``(features float32 (N, d), labels long (N,))`` of ``split``."""
        if split in self._feats:
            return self._feats[split]
        from augself.eval.features import extract_features

        ds = self.dataset(split)
        pre = self.lb.pre
        kw = dict(
            batch_size=self.batch_size,
            device=self.device,
            num_workers=self.num_workers,
            progress=self.progress,
            desc=f"features {self.data.name}/{split}",
        )
        t0 = time.perf_counter()
        if self.cache is not None:
            extra = {"kind": self.data.kind, "seed": self.data.seed, "n": len(ds)}  # type: ignore[arg-type]
            if self.data.kind == "folder":
                extra["classes"] = self.classes
            x, y = self.cache.get_or_extract(
                self.lb.backbone,
                ds,
                name=self.data.key(),
                split=split,
                size=self.size,
                mean=pre.mean,
                std=pre.std,
                root=self.data.root,
                extra=extra,
                backbone_hash=self.lb.hash,
                **kw,
            )
        else:
            x, y = extract_features(self.lb.backbone, ds, mean=pre.mean, std=pre.std, **kw)
        self.extract_s += time.perf_counter() - t0
        if x.shape[0] == 0:
            raise DatasetError(f"{self.data.name}: split {split!r} is empty")
        if bool((y < 0).all()):
            raise DatasetError(f"{self.data.name}: split {split!r} has no labels (class folders needed)", FOLDER_LAYOUT)
        self._feats[split] = (x, y)
        return x, y

    def concat(self, splits: Sequence[str]) -> tuple[Tensor, Tensor]:
        parts = [self.get(s) for s in splits]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def num_classes(self) -> int | None:
        from augself.data.registry import dataset_info

        if self.data.kind == "named":
            return int(dataset_info(self.data.spec)["num_classes"])
        if self.data.kind == "folder":
            return len(self.classes or []) or None
        return None


# ---------------------------------------------------------------------------------------------- protocols
def protocol_settings(protocol: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    if protocol not in PROTOCOL_DEFAULTS:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    given = dict(given or {})
    unknown = sorted(set(given) - set(PROTOCOL_DEFAULTS[protocol]))
    if unknown:
        raise ValueError(
            f"unknown {protocol} setting(s) {', '.join(unknown)}; valid: {', '.join(PROTOCOL_DEFAULTS[protocol])}"
        )
    s = {**copy.deepcopy(PROTOCOL_DEFAULTS[protocol]), **given}
    if protocol == "fewshot":
        s["shots"] = [int(k) for k in (s["shots"] if isinstance(s["shots"], list | tuple) else [s["shots"]])]
        if s["ways"] < 2 or s["queries"] < 1 or s["episodes"] < 1 or not s["shots"] or min(s["shots"]) < 1:
            raise ValueError("few-shot needs ways >= 2, shots >= 1, queries >= 1, episodes >= 1")
    if protocol == "knn" and (int(s["k"]) < 1 or float(s["t"]) <= 0):
        raise ValueError("kNN needs k >= 1 and t > 0")
    if protocol == "linear":
        if int(s["wd_grid_size"]) < 1:
            raise ValueError("linear wd_grid_size must be >= 1")
        if s["metric"] not in (None, "top1", "class-avg"):
            raise ValueError(f"unknown linear metric {s['metric']!r}; valid: top1, class-avg")
    return s


def _record(
    protocol: str,
    src: FeatureSource,
    metrics: dict[str, Any],
    settings: dict[str, Any],
    t0: float,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    import augself

    return {
        "protocol": protocol,
        "dataset": src.data.name,
        "data": src.data.info(),
        "metrics": metrics,
        "settings": settings,
        "backbone": src.lb.info(),
        "preprocessing": {**src.lb.pre.to_dict(), "size": src.size},
        "details": details or {},
        "time_s": round(time.perf_counter() - t0, 3),
        "feature_time_s": round(src.extract_s, 3),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "augself_version": getattr(augself, "__version__", "unknown"),
    }


def run_linear(src: FeatureSource, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The paper's linear evaluation (L-BFGS, wd search on val, refit on train ∪ val; reference §6.1), or the
    SGD probe with ``sgd: true``. Metrics in percent: ``top1``, ``class-avg``; ``metric`` names the one used
    for the wd selection (the dataset's convention unless set)."""
    from augself.data.registry import dataset_info
    from augself.eval.linear import linear_eval, sgd_probe

    t0 = time.perf_counter()
    s = protocol_settings("linear", settings)
    metric = s["metric"] or (dataset_info(src.data.spec)["metric"] if src.data.kind == "named" else "top1")
    s["metric"] = metric
    nc = src.num_classes()
    if s["sgd"]:
        sets = [src.dataset("train")] + ([src.dataset("val")] if src.data.has_own_val() else [])
        train = sets[0] if len(sets) == 1 else ConcatDataset(sets)
        _, y_te = src.get("test")
        if nc is None:
            nc = int(y_te.max()) + 1
        out = sgd_probe(
            src.lb.backbone,
            train,
            src.dataset("test"),
            num_classes=nc,
            mean=src.lb.pre.mean,
            std=src.lb.pre.std,
            epochs=int(s["sgd_epochs"]),
            lr=float(s["sgd_lr"]),
            batch_size=int(s["sgd_batch_size"]),
            augment=bool(s["sgd_augment"]),
            device=src.device,
            num_workers=src.num_workers,
            seed=int(s["seed"]),
            progress=src.progress,
        )
        metrics = {**out["test"], "metric": metric}
        return _record(
            "linear",
            src,
            metrics,
            {**s, "probe": out["settings"]},
            t0,
            {"train_loss": out["train_loss"], "num_classes": nc},
        )
    x_tr, y_tr = src.get("train")
    val = src.get("val") if src.data.has_own_val() else (None, None)
    x_te, y_te = src.get("test")
    grid = torch.logspace(-6, 5, steps=int(s["wd_grid_size"]), dtype=torch.float64).tolist()
    res = linear_eval(
        x_tr,
        y_tr,
        x_te,
        y_te,
        val_feats=val[0],
        val_labels=val[1],
        val_fraction=float(s["val_fraction"]),
        seed=int(s["seed"]),
        wd_grid=grid,
        metric=metric,
        num_classes=nc,
        device=src.device,
        max_iter=int(s["max_iter"]),
        tol=float(s["tol"]),
        progress=src.progress,
    )
    metrics = {**res.test, "metric": metric, "best_wd": res.best_wd, f"val_{metric}": res.val_best}
    details = {
        "val_curve": res.val_curve,
        "iterations": res.iterations,
        "refit_iterations": res.refit_iterations,
        "num_train": res.num_train,
        "num_val": res.num_val,
        "num_test": res.num_test,
        "num_classes": res.num_classes,
        "dim": res.dim,
        "fit_time_s": res.time_s,
    }
    return _record(
        "linear", src, metrics, {**s, **res.settings, "wd_grid": f"logspace(-6, 5, {len(grid)})"}, t0, details
    )


def run_knn(src: FeatureSource, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Weighted cosine kNN (InstDisc; k = 200, T = 0.1): memory = train (+ the dataset's own val), queries =
    test. Metrics in percent: ``top1``, ``class-avg``."""
    from augself.eval.knn import weighted_knn_predict
    from augself.eval.linear import accuracy_metrics, default_device

    t0 = time.perf_counter()
    s = protocol_settings("knn", settings)
    mem = ["train", "val"] if src.data.has_own_val() else ["train"]
    x_tr, y_tr = src.concat(mem)
    x_te, y_te = src.get("test")
    nc = src.num_classes() or int(max(int(y_tr.max()), int(y_te.max()))) + 1
    dev = default_device(src.device)
    scores = weighted_knn_predict(
        x_tr.to(dev), y_tr.to(dev), x_te.to(dev), num_classes=nc, k=int(s["k"]), temperature=float(s["t"])
    )
    metrics = accuracy_metrics(scores.argmax(1).cpu(), y_te, nc)
    details = {
        "num_memory": int(x_tr.shape[0]),
        "num_test": int(x_te.shape[0]),
        "memory_splits": mem,
        "num_classes": nc,
        "effective_k": min(int(s["k"]), int(x_tr.shape[0])),
    }
    return _record(
        "knn", src, metrics, {**s, "features": "L2-normalised, weights exp(cos / t)", "device": str(dev)}, t0, details
    )


def run_fewshot(src: FeatureSource, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """N-way K-shot logistic regression on frozen features (reference §6.2), mean ± 95 % CI per shot count.

    The pool is the dataset's few-shot pool (:meth:`EvalData.fewshot_splits`) unless ``split`` is set.
    Metrics: ``{"<N>way<K>shot": {"mean", "ci95", "std", "episodes"}}``.
    """
    from augself.eval.fewshot import fewshot_eval

    t0 = time.perf_counter()
    s = protocol_settings("fewshot", settings)
    if s["split"] is None or (s["split"] == "all" and src.data.presplit):
        splits = src.data.fewshot_splits()
    else:
        splits = [str(s["split"])]
    x, y = src.concat(splits)
    out = fewshot_eval(
        x,
        y,
        n_way=int(s["ways"]),
        shots=s["shots"],
        n_query=int(s["queries"]),
        n_episodes=int(s["episodes"]),
        C=float(s["C"]),
        seed=int(s["seed"]),
        device=src.device,
        progress=src.progress,
    )
    inner = out.pop("settings")
    metrics = {k: {kk: v[kk] for kk in ("mean", "ci95", "std", "episodes")} for k, v in out.items()}
    details = {"pool_splits": splits, "pool_size": int(x.shape[0]), "num_classes": int(y.max()) + 1, "per_shot": out}
    return _record("fewshot", src, metrics, {**s, "split": splits, **inner}, t0, details)


RUNNERS = {"linear": run_linear, "knn": run_knn, "fewshot": run_fewshot}


def run_protocol(protocol: str, src: FeatureSource, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Dispatch to :func:`run_linear` / :func:`run_knn` / :func:`run_fewshot`."""
    if protocol not in RUNNERS:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    before = src.extract_s
    rec = RUNNERS[protocol](src, settings)
    rec["feature_time_s"] = round(src.extract_s - before, 3)  # 0 when the features were already at hand
    return rec


# ---------------------------------------------------------------------------------------------- suite
SUITE_KEYS = {"name", "defaults", "datasets", "size", "batch_size"}
ENTRY_KEYS = {"name", "data", "root", "protocols", "seed", "size"}


def _protocol_map(value: Any, where: str) -> dict[str, dict[str, Any]]:
    """``[linear, {fewshot: {...}}]`` or ``{linear: null, fewshot: {...}}`` -> ``{protocol: settings}``."""
    items: list[tuple[Any, Any]] = []
    if isinstance(value, str):
        items = [(value, None)]
    elif isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, list):
        for v in value:
            if isinstance(v, str):
                items.append((v, None))
            elif isinstance(v, Mapping) and len(v) == 1:
                items.extend(v.items())
            else:
                raise ValueError(f"{where}: protocol entries are names or {{name: settings}}, got {v!r}")
    else:
        raise ValueError(f"{where}: 'protocols' must be a list or a mapping, got {value!r}")
    out: dict[str, dict[str, Any]] = {}
    for k, v in items:
        if k not in PROTOCOLS:
            raise ValueError(f"{where}: unknown protocol {k!r}; valid: {', '.join(PROTOCOLS)}")
        if v is not None and not isinstance(v, Mapping):
            raise ValueError(f"{where}: settings of {k} must be a mapping, got {v!r}")
        out[str(k)] = dict(v or {})
    if not out:
        raise ValueError(f"{where}: no protocols listed")
    return out


def load_suite(suite: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Parse and validate a suite (YAML file or dict) without reading any images.

    Returns ``{"name", "base", "datasets": [{"name", "data": EvalData, "protocols": {p: settings}, "size"}],
    ...}``; relative dataset paths resolve against the suite file's folder (the working directory for a
    dict). Every dataset must exist, so a typo fails before any evaluation runs.
    """
    if isinstance(suite, Mapping):
        raw, base, label = dict(suite), Path.cwd(), str(suite.get("name", "suite"))
    else:
        import yaml

        p = Path(suite).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"transfer suite not found: {str(p)!r} (a YAML file, see configs/transfer/)")
        try:
            raw = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise ValueError(f"cannot parse transfer suite {p}: {e}") from e
        base, label = p.resolve().parent, p.stem
        if not isinstance(raw, dict):
            raise ValueError(f"transfer suite {p} must be a mapping with a 'datasets' list")
    unknown = sorted(set(raw) - SUITE_KEYS)
    if unknown:
        raise ValueError(f"transfer suite: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(SUITE_KEYS))}")
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, Mapping) or set(defaults) - set(PROTOCOLS):
        raise ValueError(f"transfer suite: 'defaults' maps protocol names ({', '.join(PROTOCOLS)}) to settings")
    entries = raw.get("datasets")
    if not isinstance(entries, list) or not entries:
        raise ValueError("transfer suite: 'datasets' must be a non-empty list of {name, data, protocols}")
    datasets = []
    names: set[str] = set()
    for i, e in enumerate(entries):
        where = f"transfer suite datasets[{i}]"
        if isinstance(e, str):
            e = {"data": e}
        if not isinstance(e, Mapping) or "data" not in e:
            raise ValueError(f"{where}: needs at least 'data' (a dataset name or folder path)")
        bad = sorted(set(e) - ENTRY_KEYS)
        if bad:
            raise ValueError(f"{where}: unknown key(s) {', '.join(bad)}; valid: {', '.join(sorted(ENTRY_KEYS))}")
        protos = _protocol_map(e.get("protocols", ["linear"]), where)
        for p_, s_ in protos.items():
            protos[p_] = {**dict(defaults.get(p_) or {}), **s_}
            protocol_settings(p_, protos[p_])  # validate names / values now
        data = resolve_data(
            str(e["data"]), root=e.get("root"), base=base, name=e.get("name"), seed=int(e.get("seed", 0))
        )
        if data.name in names:
            raise ValueError(f"{where}: duplicate dataset name {data.name!r} (set 'name')")
        names.add(data.name)
        datasets.append({"name": data.name, "data": data, "protocols": protos, "size": e.get("size")})
    return {
        "name": str(raw.get("name", label)),
        "base": str(base),
        "datasets": datasets,
        "size": raw.get("size"),
        "batch_size": int(raw.get("batch_size", 256)),
    }


def check_named_datasets(spec: Mapping[str, Any]) -> None:
    """Open the test split of every *named* dataset of a parsed suite (folder paths were checked by
    :func:`load_suite`); raise one :class:`DatasetError` naming every missing one with its expected layout."""
    from augself.data.registry import build_dataset

    problems = []
    for ds in spec["datasets"]:
        d: EvalData = ds["data"]
        if d.kind != "named":
            continue
        try:
            build_dataset(d.spec, "test", size=int(ds["size"] or spec["size"] or 32), root=d.root, seed=d.seed)
        except DatasetError as e:
            problems.append(f"* {d.name}: {e}")
    if problems:
        raise DatasetError(
            f"{len(problems)} dataset(s) of the suite cannot be read (named datasets are read from the entry's "
            f"'root', else $AUGSELF_DATA, else ./data):\n" + "\n".join(problems)
        )


def _unique_labels(labels: list[str]) -> list[str]:
    out: list[str] = []
    for lab in labels:
        cand, i = lab, 2
        while cand in out:
            cand, i = f"{lab}-{i}", i + 1
        out.append(cand)
    return out


def run_transfer(
    suite: str | os.PathLike[str] | Mapping[str, Any],
    runs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    labels: Sequence[str] | None = None,
    size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    device: str | torch.device | None = None,
    cache: str | os.PathLike[str] | bool | None = True,
    batch_size: int | None = None,
    num_workers: int = 0,
    progress: bool = True,
    resume: bool = True,
    log: Any = print,
) -> dict[str, Any]:
    """Run a transfer suite over ``runs`` (run directories or backbone files) and write ``out/results.json``,
    ``out/results.md`` and ``out/results.png``.

    Every finished evaluation is saved at once under ``out/records/``; with ``resume`` (default) a re-run
    into the same ``out`` reuses those made with the same backbone weights, data, protocol, settings and
    preprocessing, so an interrupted suite continues where it stopped.

    ``cache=True`` keeps features under ``out/features`` (a path: there; ``False``/``None``: no disk cache).
    ``size`` overrides every backbone's evaluation resolution (else the suite's / the pretraining one), and
    ``mean``/``std`` its normalisation; a bare ``backbone.pt`` without recorded preprocessing needs ``size``.
    Returns the ``results.json`` content.
    """
    t_start = time.perf_counter()
    if not runs:
        raise ValueError("transfer: give at least one run (run directory or backbone.pt)")
    spec = load_suite(suite)
    files = [backbone_file(r) for r in runs]  # fail fast on a missing run
    check_named_datasets(spec)  # ... and on a missing named dataset, before hours of evaluation
    if labels is not None and len(labels) != len(runs):
        raise ValueError(f"transfer: {len(labels)} labels for {len(runs)} runs")
    out_dir = Path(out).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = out_dir / "features" if cache is True else (cache or None)
    bs = int(batch_size or spec["batch_size"])
    records: list[dict[str, Any]] = []
    run_info: list[dict[str, Any]] = []
    run_labels: list[str] = []
    run_labels = _unique_labels([_default_label(f) for f in files] if labels is None else [str(x) for x in labels])
    for i, f in enumerate(files):
        lb = load_for_eval(f, size=size, mean=mean, std=std, label=run_labels[i])
        run_info.append({**lb.info(), "preprocessing": lb.pre.to_dict()})
        for ds in spec["datasets"]:
            eff_size = size or ds["size"] or spec["size"]
            src = FeatureSource(
                lb,
                ds["data"],
                size=eff_size,
                device=device,
                cache=cache_dir,
                batch_size=bs,
                num_workers=num_workers,
                progress=progress,
            )
            for proto, settings in ds["protocols"].items():
                saved = out_dir / "records" / _safe_name(f"{lb.hash[:16]}-{src.data.name}-{proto}.json")
                key = _json_normal(
                    {
                        "backbone_sha256": lb.hash,
                        "data": src.data.info(),
                        "protocol": proto,
                        "settings": protocol_settings(proto, settings),  # with the defaults in force
                        "preprocessing": {**lb.pre.to_dict(), "size": src.size},
                    }
                )
                rec = _load_saved(saved, key) if resume else None
                if rec is None:
                    rec = run_protocol(proto, src, settings)
                    write_json({"key": key, "record": rec}, saved)  # a crash later loses nothing done so far
                    note = ""
                else:
                    note = f" (saved result reused: {saved.name})"
                rec["run"] = lb.label
                records.append(rec)
                if log:
                    log(f"[{lb.label}] {summary_line(rec)}{note}")
        del lb
    rows = _table_rows(records, run_labels, [d["name"] for d in spec["datasets"]])
    result = {
        "suite": {
            "name": spec["name"],
            "base": spec["base"],
            "datasets": [
                {"name": d["name"], "data": d["data"].info(), "protocols": d["protocols"], "size": d["size"]}
                for d in spec["datasets"]
            ],
        },
        "runs": run_info,
        "table": rows,
        "results": records,
        "time_s": round(time.perf_counter() - t_start, 2),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(result, out_dir / "results.json")
    md = [
        f"# Transfer: {spec['name']}",
        "",
        "Runs: " + ", ".join(f"`{r['label']}` ({r['path']})" for r in run_info),
        "",
        "Accuracy in %; few-shot as mean ± 95 % CI; Δ = run minus the first run.",
        "",
        markdown_table(rows, run_labels),
    ]
    (out_dir / "results.md").write_text("\n".join(md))
    bar_chart(rows, run_labels, out_dir / "results.png", title=f"transfer: {spec['name']}")
    return result


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _json_normal(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples -> lists, paths -> strings), for key comparison."""
    return json.loads(json.dumps(obj, default=str, sort_keys=True))


def _load_saved(path: Path, key: Any) -> dict[str, Any] | None:
    """The record saved at ``path`` by an earlier (possibly interrupted) run of the suite when it was made
    with the same backbone weights, data, protocol, settings and preprocessing; else ``None``."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # absent or unreadable: recompute (the write is atomic, so this is rare)
    if not isinstance(saved, dict) or saved.get("key") != key or not isinstance(saved.get("record"), dict):
        return None
    return saved["record"]


def _table_rows(records: list[dict[str, Any]], runs: list[str], order: list[str]) -> list[dict[str, Any]]:
    """Rows (dataset, protocol/metric) with one value (and CI) per run, in suite order."""
    keyed: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in records:
        j = runs.index(rec["run"])
        for label, v, ci in headlines(rec):
            key = (rec["dataset"], label)
            row = keyed.setdefault(
                key,
                {
                    "dataset": rec["dataset"],
                    "protocol": rec["protocol"],
                    "metric": label,
                    "values": [None] * len(runs),
                    "ci": [None] * len(runs),
                },
            )
            row["values"][j], row["ci"][j] = v, ci
    return sorted(keyed.values(), key=lambda r: order.index(r["dataset"]))
