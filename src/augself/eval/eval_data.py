"""What to evaluate on (:class:`EvalData`: ``synthetic``, a named transfer set or an image folder) and the
frozen features of its splits (:class:`FeatureSource`: extracted once per backbone, cached on disk)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from augself.data.errors import DatasetError
from augself.data.folder import FOLDER_LAYOUT
from augself.eval.backbone_loading import LoadedBackbone

__all__ = ["FEWSHOT_SPLIT", "FOLDER_PATH_LAYOUT", "EvalData", "FeatureSource", "resolve_data"]

FOLDER_PATH_LAYOUT = """  <path>/{train,test}/<class>/<image>   (val carved from train unless <path>/val exists)
  <path>/<class>/<image>                (one folder: split 70/10/20 by seed)"""
#: Named datasets whose few-shot pool is one split rather than ``all`` (reference §6.2: FC100 uses test/).
FEWSHOT_SPLIT: dict[str, str] = {"fc100": "test"}


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
