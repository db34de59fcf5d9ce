"""What to evaluate on (:class:`EvalData`: ``synthetic``, a named transfer set or an image folder) and the
frozen features of its splits (:class:`FeatureSource`: extracted once per backbone, cached on disk)."""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from augself.data.errors import DatasetError
from augself.data.folder import FOLDER_LAYOUT
from augself.data.registry import DATASETS, DEFAULT_ROOT_ENV, build_dataset, dataset_info
from augself.data.walk import list_class_dirs
from augself.eval.backbone_loading import LoadedBackbone, check_interpolation
from augself.eval.features import FeatureCache, check_finite, extract_features
from augself.eval.naming import slug

__all__ = [
    "EVAL_PIXELS",
    "FEWSHOT_SPLIT",
    "FOLDER_PATH_LAYOUT",
    "EvalData",
    "FeatureSource",
    "require_classes",
    "resolve_data",
    "set_interpolation",
]

FOLDER_PATH_LAYOUT = """  <path>/{train,test}/<class>/<image>   (val carved from train unless <path>/val exists)
  <path>/<class>/<image>                (one folder: split 70/10/20 by seed)"""
#: Named datasets whose few-shot pool is one split rather than ``all`` (reference §6.2: FC100 uses test/).
FEWSHOT_SPLIT: dict[str, str] = {"fc100": "test"}
#: What the readers do to an image before the backbone, part of the feature-cache key (features extracted with
#: another pixel pipeline, e.g. the earlier reduced-size JPEG decode, are never reused): every pixel decoded, then
#: torchvision ``Resize(size, interpolation)`` + ``CenterCrop(size)`` on the PIL image (``docs/preprocessing.md``).
EVAL_PIXELS = "exact-decode+torchvision-resize-centercrop"


@dataclass
class EvalData:
    """A dataset to evaluate on: ``synthetic``, a named transfer set, or an image folder."""

    spec: str
    name: str
    kind: str  # "synthetic" | "named" | "folder"
    path: Path | None = None
    root: str | None = None
    seed: int = 0
    skip_corrupt: bool = False  # decode every image first and leave out (and count) those that fail

    @property
    def presplit(self) -> bool:
        return self.kind == "folder" and self.path is not None and (self.path / "train").is_dir()

    def key(self) -> str:
        return str(self.path) if self.path is not None else self.spec

    def identity(self) -> str:
        """What the data *is*, independent of how it was named: ``synthetic``, ``<name>@<resolved root>`` of a
        named set (root: the given one, else ``$AUGSELF_DATA``, else ``./data``), the resolved folder path."""
        if self.kind == "synthetic":
            return "synthetic"
        if self.kind == "named":
            root = self.root if self.root is not None else os.environ.get(DEFAULT_ROOT_ENV, "data")
            return f"{self.spec}@{Path(root).expanduser().resolve()}"
        return str(self.path)

    def file_stem(self) -> str:
        """File-name-safe and unique per :meth:`identity`: the slug of the name plus 8 hex digits of the
        identity's SHA-256 (``data/A/images`` and ``data/B/images`` give ``images-<h1>``, ``images-<h2>``)."""
        if self.kind == "synthetic":
            return "synthetic"
        return f"{slug(self.name)}-{hashlib.sha256(self.identity().encode()).hexdigest()[:8]}"

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
            "id": self.identity(),
            "skip_corrupt": self.skip_corrupt,
        }


def resolve_data(
    data: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    base: str | os.PathLike[str] | None = None,
    name: str | None = None,
    seed: int = 0,
    skip_corrupt: bool = False,
) -> EvalData:
    """Classify ``data`` (dataset name or folder path; relative paths resolve against ``base`` when given).

    A path that does not exist raises :class:`DatasetError` showing the expected image-folder layout.
    ``skip_corrupt``: undecodable images are left out (and counted) instead of stopping the evaluation.
    """
    spec = str(data)
    if root is not None and base is not None and not Path(root).expanduser().is_absolute():
        root = str(Path(base) / Path(root).expanduser())
    if spec == "synthetic":
        return EvalData(spec, name or spec, "synthetic", None, None, seed, skip_corrupt)
    if spec in DATASETS:
        return EvalData(spec, name or spec, "named", None, None if root is None else str(root), seed, skip_corrupt)
    p = Path(spec).expanduser()
    if not p.is_absolute() and base is not None:
        p = Path(base) / p
    if not p.is_dir() and root is not None and (Path(root).expanduser() / spec).is_dir():
        p = Path(root).expanduser() / spec
    if p.is_dir():
        p = p.resolve()
        return EvalData(spec, name or p.name, "folder", p, None, seed, skip_corrupt)
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
    ``cache`` is given). Folder splits share the class list of ``train``.

    Each image is what torchvision's ``Compose([Resize(size, interpolation), CenterCrop(size), ToTensor(),
    Normalize(mean, std)])`` gives on the fully decoded PIL image (exact decode; ``/255`` and the normalisation run
    on the batch in :func:`~augself.eval.features.extract_features`). ``interpolation``: ``bicubic`` (the
    reference's evaluation, AugSelf ``datasets.py`` ``load_datasets``) or ``bilinear`` (torchvision's default);
    ``None``: the backbone's (``lb.pre.interpolation``, :func:`~augself.eval.backbone_loading.load_for_eval`,
    default bicubic). It is part of the feature-cache key and of :meth:`preprocessing`.
    """

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
        interpolation: str | None = None,
    ) -> None:
        self.interpolation = check_interpolation(lb.pre.interpolation if interpolation is None else interpolation)

        self.lb, self.data = lb, data
        self.size = int(size or lb.pre.size)
        self.device = device
        self.cache = FeatureCache(cache) if cache else None
        self.batch_size, self.num_workers, self.progress = batch_size, num_workers, progress
        self._feats: dict[str, tuple[Tensor, Tensor]] = {}
        self._sets: dict[str, Dataset] = {}
        self._raw: dict[str, Dataset] = {}  # built, not yet scanned for corrupt files
        #: per split, the files ``skip_corrupt`` left out
        self.skipped: dict[str, list[str]] = {}
        self.extract_s = 0.0

    def preprocessing(self) -> dict[str, Any]:
        """What a result records: the backbone's preprocessing at this source's size and resize filter."""
        from dataclasses import replace

        return {**replace(self.lb.pre, interpolation=self.interpolation).to_dict(), "size": self.size}

    def _first_split(self) -> str:
        return "train" if self.data.presplit else "all"

    @property
    def classes(self) -> list[str] | None:
        """The class list of an image folder (that of ``train`` for a pre-split one); ``None`` otherwise."""
        if self.data.kind != "folder":
            return None
        first = self._first_split()
        ds = self._sets.get(first, self._raw.get(first))
        if ds is None:
            ds = self._raw[first] = self._build(first)
        return list(getattr(ds, "classes", []))

    def _build(self, split: str) -> Dataset:
        d = self.data
        kw: dict[str, Any] = {}
        if d.kind == "folder" and split != self._first_split():
            kw["classes"] = self.classes
            if d.presplit and (d.path / split).is_dir():  # type: ignore[operator]
                extra = [c for c in list_class_dirs(d.path / split) if c not in kw["classes"]]  # type: ignore[operator]
                if extra:
                    raise DatasetError(
                        f"{d.path}/{split} has class folders missing from {d.path}/train: {', '.join(extra[:5])}",
                        FOLDER_LAYOUT,
                    )
        target = str(d.path) if d.path is not None else d.spec
        ds = build_dataset(target, split, size=self.size, root=d.root, seed=d.seed, **kw)
        set_interpolation(ds, self.interpolation)
        return ds

    def dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (with ``skip_corrupt``: every image decoded once, the undecodable ones left out
        and counted in :attr:`skipped`)."""
        if split not in self._sets:
            ds = self._raw.pop(split, None)
            if ds is None:
                ds = self._build(split)
            if self.data.skip_corrupt:
                self._scan(split, ds)
            self._sets[split] = ds
        return self._sets[split]

    def _scan(self, split: str, ds: Dataset) -> None:
        scan = getattr(ds, "scan_corrupt", None)
        if scan is None:  # array datasets (CIFAR, STL-10, synthetic): nothing to decode
            self.skipped[split] = []
            return
        total = len(ds)  # type: ignore[arg-type]
        with warnings.catch_warnings():  # one warning below, naming the split, instead of PIL's and the reader's
            warnings.simplefilter("ignore")
            scan()
        bad = list(getattr(ds, "corrupt", []))
        self.skipped[split] = bad
        if bad:
            warnings.warn(
                f"{self.data.name}/{split}: skipped {len(bad)} corrupt image(s) of {total} (--skip-corrupt), "
                f"e.g. {bad[0]!r}",
                stacklevel=3,
            )

    def skipped_summary(self) -> dict[str, Any]:
        """``{"count", "per_split", "examples"}`` of the images left out by ``skip_corrupt``."""
        every = [p for v in self.skipped.values() for p in v]
        return {
            "count": len(every),
            "per_split": {k: len(v) for k, v in self.skipped.items()},
            "examples": every[:5],
        }

    def get(self, split: str) -> tuple[Tensor, Tensor]:
        """``(features float32 (N, d), labels long (N,))`` of ``split``; non-finite features are an error."""
        if split in self._feats:
            return self._feats[split]
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
            extra["pixels"] = f"{EVAL_PIXELS}:{self.interpolation}"
            if self.data.kind == "folder":
                extra["classes"] = self.classes
            if self.skipped.get(split):
                extra["skipped"] = hashlib.sha256("\n".join(self.skipped[split]).encode()).hexdigest()[:16]
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
        check_finite(x, f"backbone {self.lb.path} on {self.data.name}/{split}")
        self._feats[split] = (x, y)
        return x, y

    def concat(self, splits: Sequence[str]) -> tuple[Tensor, Tensor]:
        parts = [self.get(s) for s in splits]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def num_classes(self) -> int | None:
        if self.data.kind == "named":
            return int(dataset_info(self.data.spec)["num_classes"])
        if self.data.kind == "folder":
            return len(self.classes or []) or None
        return None


def set_interpolation(ds: Dataset, interpolation: str) -> Dataset:
    """Set the resize filter of every reader inside ``ds`` (through ``ConcatDataset`` / ``Subset`` wrappers); readers
    of generated images (``synthetic``, made at the size asked for) have none. Returns ``ds``."""
    for inner in getattr(ds, "datasets", ()):
        set_interpolation(inner, interpolation)
    if hasattr(ds, "dataset"):
        set_interpolation(ds.dataset, interpolation)  # type: ignore[attr-defined]
    if hasattr(ds, "interpolation"):
        ds.interpolation = interpolation  # type: ignore[attr-defined]
    return ds


def require_classes(labels: Tensor, what: str, protocol: str) -> int:
    """The number of classes in ``labels`` (negative = unlabelled, ignored); fewer than 2 is a :class:`DatasetError`:
    with one class every prediction is right, so a linear / kNN / few-shot score of 100 % would mean nothing."""
    k = int(torch.unique(labels[labels >= 0]).numel())
    if k < 2:
        raise DatasetError(
            f"{what}: {protocol} evaluation needs at least 2 classes, found {k} (with one class every prediction "
            "is right and the score means nothing)"
        )
    return k
