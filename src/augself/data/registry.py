"""``build_dataset(name_or_path, split, size=...)``: one entry point for every dataset reader."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import ConcatDataset, Dataset

from augself.augment.config import ViewConfig
from augself.data.errors import DatasetError
from augself.data.folder import CROP_MODES, FOLDER_LAYOUT, FileListDataset, ImageFolderDataset, seeded_indices
from augself.data.imageio import decode_mode
from augself.data.synthetic import TASKS, SyntheticShapes
from augself.data.synthetic_orientation import CLASSES as ORIENTATION_CLASSES
from augself.data.synthetic_orientation import SyntheticOrientation
from augself.data.transfer_sets import TRANSFER_SETS
from augself.names import unknown_name_message

__all__ = [
    "DATASETS",
    "DEFAULT_ROOT_ENV",
    "FOLDER_FRACTIONS",
    "GENERATED",
    "build_dataset",
    "dataset_info",
    "pretrain_split",
    "use_crop_mode",
]

DATASETS: tuple[str, ...] = ("synthetic", "synthetic_orientation", *TRANSFER_SETS)
GENERATED: tuple[str, ...] = ("synthetic", "synthetic_orientation")
"""Generated sets: ``data.n`` sets their size (kw ``n`` of :func:`build_dataset`)."""
DEFAULT_ROOT_ENV = "AUGSELF_DATA"  # root of named datasets when ``root`` is not given (else ./data)
FOLDER_FRACTIONS = (0.7, 0.1, 0.2)  # train / val / test of a single un-split image folder
FOLDER_VAL_FRACTION = 0.1  # val carved from <path>/train when <path>/val does not exist
SYNTHETIC_DEFAULT_N = {"train": 20000, "val": 2000, "test": 5000}
ORIENTATION_DEFAULT_N = {"train": 1500, "val": 750, "test": 750}
"""250 / 125 per class for train / test, as the reference's Mario-Iggy set (``loader.py:236-240``: 1000 / 500 for 4)."""


def _closest_error(name: str) -> DatasetError:
    return DatasetError(
        unknown_name_message(name, DATASETS, "dataset")
        + " (or give an existing folder path: <path>/{train,test}/<class>/<image>, <path>/<class>/<image>)"
    )


def dataset_info(name: str, label: str = "shape") -> dict[str, Any]:
    """``{"metric": "top1" | "class-avg", "num_classes": int | None}`` for a dataset name or path.

    For ``synthetic`` the class count is that of task ``label``; for folder paths the class count is
    not known without reading (``None``) and the metric is top-1.
    """
    if name == "synthetic":
        return {"metric": "top1", "num_classes": TASKS[label] if label else None}
    if name == "synthetic_orientation":
        return {"metric": "top1", "num_classes": len(ORIENTATION_CLASSES)}
    if name in TRANSFER_SETS:
        spec = TRANSFER_SETS[name]
        return {"metric": spec.metric, "num_classes": spec.num_classes}
    if Path(name).expanduser().is_dir():
        return {"metric": "top1", "num_classes": None}
    raise _closest_error(name)


def _folder_dataset(path: Path, split: str, size: int, seed: int, **kw: Any) -> Dataset:
    subdirs = {d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")}
    if "train" in subdirs:  # pre-split <path>/{train,val,test}
        if split in subdirs:
            return ImageFolderDataset(path, split, size, **kw)
        if split in ("val", "trainval") and "train" in subdirs:
            train = ImageFolderDataset(path, "train", size, **kw)
            if split == "trainval":
                return train
            _, va = seeded_indices(len(train), [1 - FOLDER_VAL_FRACTION, FOLDER_VAL_FRACTION], seed)
            return FileListDataset([train.samples[i] for i in va], size, train.classes)
        raise DatasetError(
            f"split {split!r} not found in {str(path)!r}; splits found: {', '.join(sorted(subdirs))}",
            FOLDER_LAYOUT,
        )
    full = ImageFolderDataset(path, None, size, **kw)  # one folder: split by seed
    tr, va, te = seeded_indices(len(full), list(FOLDER_FRACTIONS), seed)
    pick = {"train": tr, "val": va, "test": te, "trainval": tr + va, "all": tr + va + te}
    if split not in pick:
        raise DatasetError(f"unknown split {split!r}; valid: {', '.join(pick)}")
    return FileListDataset([full.samples[i] for i in pick[split]], size, full.classes)


def pretrain_split(name_or_path: str, split: str) -> str:
    """Resolve ``data.split: auto`` for pretraining: ``all`` for an un-split image folder, else ``train``.

    An un-split folder (``<path>/<class>/*`` or flat) would otherwise give pretraining only its seeded 70 %
    ``train`` share; pretraining is unsupervised, so it uses every image. Explicit splits are returned unchanged.
    """
    if split != "auto":
        return split
    path = Path(name_or_path).expanduser()
    is_folder = name_or_path not in DATASETS and name_or_path != "synthetic" and path.is_dir()
    return "all" if is_folder and not (path / "train").is_dir() else "train"


def build_dataset(
    name_or_path: str,
    split: str,
    *,
    size: int,
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    **kw: Any,
) -> Dataset:
    """Build a dataset of ``{"image", "label", "source_crop"}`` dict samples.

    * ``"synthetic"``: :class:`SyntheticShapes` (kw ``n`` (default 20000/2000/5000 for
      train/val/test), ``label``, ``n_val`` for ``trainval``); ``seed`` picks the stream.
    * ``"synthetic_orientation"``: :class:`~augself.data.synthetic_orientation.SyntheticOrientation` (kw ``n``,
      default 1500/750/750 for train/val/test; 6 classes, 2 rotation-free and 4 defined by orientation).
    * a ``DATASETS`` name: the reader of :mod:`augself.data.transfer_sets` under ``root`` (default
      ``$AUGSELF_DATA`` or ``./data``), splits train / val / test / trainval (+ stl10 unlabeled,
      train+unlabeled; ``all``).
    * any other string: an image-folder path, either ``<path>/{train,test}/<class>/...`` (val carved
      from train by ``seed`` when there is no ``val/``) or one folder split 70/10/20 by ``seed``.
      kw: ``labelled``, ``skip_corrupt``, ``extensions``.
    """
    if name_or_path == "synthetic":
        label = kw.pop("label", "shape")
        if split == "trainval":
            n_tr = kw.pop("n", SYNTHETIC_DEFAULT_N["train"])
            n_va = kw.pop("n_val", SYNTHETIC_DEFAULT_N["val"])
            return ConcatDataset(
                [
                    SyntheticShapes(n_tr, size, seed, label, "train"),
                    SyntheticShapes(n_va, size, seed, label, "val"),
                ]
            )
        if split not in SYNTHETIC_DEFAULT_N:
            raise DatasetError(f"unknown synthetic split {split!r}; valid: train, val, test, trainval")
        kw.pop("n_val", None)
        n = kw.pop("n", SYNTHETIC_DEFAULT_N[split])
        if kw:
            raise TypeError(f"unexpected arguments for synthetic: {', '.join(kw)}")
        return SyntheticShapes(n, size, seed, label, split)
    if name_or_path == "synthetic_orientation":
        if split not in ORIENTATION_DEFAULT_N:
            raise DatasetError(
                f"unknown synthetic_orientation split {split!r}; valid: {', '.join(ORIENTATION_DEFAULT_N)}"
            )
        n = kw.pop("n", ORIENTATION_DEFAULT_N[split])
        if kw:
            raise TypeError(f"unexpected arguments for synthetic_orientation: {', '.join(kw)}")
        return SyntheticOrientation(n, size, seed, split)
    if name_or_path in TRANSFER_SETS:
        if kw:
            raise TypeError(f"unexpected arguments for {name_or_path}: {', '.join(kw)}")
        data_root = root if root is not None else os.environ.get(DEFAULT_ROOT_ENV, "data")
        return TRANSFER_SETS[name_or_path].reader(str(data_root), split, size)
    path = Path(name_or_path).expanduser()
    if root is not None and not path.is_absolute() and not path.is_dir() and (Path(root) / path).is_dir():
        path = Path(root) / path
    if path.is_dir():
        return _folder_dataset(path, split, size, seed, **kw)
    if path.exists():
        raise DatasetError(f"dataset path {str(path)!r} is a file, not a folder", FOLDER_LAYOUT)
    if os.sep in name_or_path or name_or_path.startswith((".", "~")):
        raise DatasetError(f"dataset folder {str(path)!r} does not exist", FOLDER_LAYOUT)
    raise _closest_error(name_or_path)


def use_crop_mode(
    dataset: Dataset, crop: str, views: Sequence[ViewConfig], decode: str | bool = "exact", seed: int = 0
) -> Dataset:
    """Apply ``data.crop`` and ``data.decode`` to a pretraining dataset (:class:`~augself.data.folder.FileListDataset`).

    ``full_image`` switches image-file datasets (folders, photo transfer sets) to per-view random resized crops of
    the whole image cut in the DataLoader for ``views`` (the augmenter's view configs, E-SSL's extra view
    included); fixed-size in-memory sets (CIFAR, STL-10, synthetic) keep their batched device crop, which samples
    the same boxes on a square image. ``seed`` (the run seed) keys the worker-side crops of ``(epoch, index)``
    samples (:func:`~augself.data.folder.crop_seed`). ``centre_square`` leaves the crop as built.
    ``decode`` (``exact`` / ``draft``; ``True`` / ``False``, the old ``data.reduced_decode``) is set on image-file
    datasets in both crop modes; in-memory sets have nothing to decode.
    """
    if crop not in CROP_MODES:
        raise DatasetError(f"unknown crop mode {crop!r} (data.crop); valid: {', '.join(CROP_MODES)}")
    mode = decode_mode(decode)
    if isinstance(dataset, FileListDataset):
        dataset.use_decode(mode)
        if crop == "full_image":
            dataset.use_full_image_crops(views, seed=seed)
    return dataset
