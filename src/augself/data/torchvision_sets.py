"""CIFAR-10/100 and STL-10 from their standard on-disk formats (never downloads).

These readers give the same images, labels and class names as ``torchvision.datasets.CIFAR10`` / ``CIFAR100`` /
``STL10`` with ``download=False`` (``tests/test_preprocessing.py`` compares them), and are kept instead of those
classes for what they add:

* **CIFAR: no code execution from data files.** torchvision's CIFAR classes read the batches with plain
  ``pickle.load``, which runs whatever a crafted batch asks for; ours use :class:`CifarUnpickler`, which builds only
  the numpy arrays, lists, numbers and strings the format holds (house rule: never unpickle user files).
* **STL-10: memory-mapped, only the files the split needs, no re-hash.** ``torchvision.datasets.STL10`` checks the
  MD5 of all five binaries (3.1 GB, ``unlabeled_X.bin`` included) at every construction, even for ``test``; reads
  the images into memory with ``np.fromfile`` (``train+unlabeled``: 2.9 GB, then copied once more by
  ``np.concatenate``); and reports a missing or altered file as ``Dataset not found or corrupted. You can use
  download=True``. Ours memory-maps the images (workers share the page cache), opens only the split's files, and
  names the missing ones with the expected layout (one line, exit 2 from the CLI).
* Both: the reference's train / val split (below) and ``{"image", "label", "source_crop"}`` dict samples.

Images at another size than their own (e.g. CIFAR at 96 px for an STL-10 backbone) are resized as torchvision's
``Resize(size)`` does on the PIL image these classes return (PIL, antialiased; :func:`augself.data.imageio.to_source`,
bilinear unless ``interpolation`` says otherwise).

Splits follow the reference code's linear-evaluation table (reference §6.1):

* ``train`` / ``val``: the official training set split by ``torch.utils.data.random_split`` with a
  fixed seed (CIFAR-10 45000/5000 seed 43, CIFAR-100 45000/5000 seed 44, STL-10 4500/500 seed 50);
* ``trainval``: the whole official training set (**use this for pretraining on CIFAR**);
* ``test``: the official test set;
* STL-10 also ``unlabeled`` (100k, label -1) and ``train+unlabeled`` (the pretraining set, 105k).
"""

from __future__ import annotations

import importlib
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from augself.data.errors import DatasetError
from augself.data.folder import seeded_indices
from augself.data.imageio import to_source

__all__ = ["CIFAR_LAYOUT", "STL10_LAYOUT", "ArrayDataset", "cifar", "stl10"]

CIFAR_LAYOUT = {
    10: """  <root>/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch, batches.meta
  (the python version of CIFAR-10, https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, extracted)""",
    100: """  <root>/cifar-100-python/train, test, meta
  (the python version of CIFAR-100, https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz, extracted)""",
}
STL10_LAYOUT = """  <root>/stl10_binary/train_X.bin, train_y.bin, test_X.bin, test_y.bin,
  unlabeled_X.bin, class_names.txt
  (http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz, extracted)"""
SPLIT_SEEDS = {"cifar10": (45000, 5000, 43), "cifar100": (45000, 5000, 44), "stl10": (4500, 500, 50)}


class ArrayDataset(Dataset):
    """Square uint8 images ``(N, 3, H, W)`` (array or memmap) + labels, as dict samples at ``size`` px.

    ``indices`` selects a subset; images of another size are brought to ``size`` exactly as torchvision's
    ``Resize(size, interpolation)`` + ``CenterCrop(size)`` on ``Image.fromarray`` of the image (what
    ``torchvision.datasets.CIFAR10`` / ``STL10`` hand to their transform); ``source_crop`` is then the kept region
    (``[0, 0, 1, 1]`` for the square images of these sets).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        size: int,
        classes: list[str],
        indices: list[int] | None = None,
        chw: bool = True,
    ) -> None:
        self.data, self.labels, self.size, self.classes = images, np.asarray(labels, np.int64), size, classes
        self.indices = np.arange(len(self.labels)) if indices is None else np.asarray(indices, np.int64)
        self.chw = chw  # False: stored (3, W, H) column-major (STL-10) and transposed on access
        self.interpolation = "bilinear"  # torchvision Resize's default; the reference's evaluation uses "bicubic"
        self._crop = torch.tensor([0.0, 0.0, 1.0, 1.0])

    @property
    def targets(self) -> list[int]:
        return self.labels[self.indices].tolist()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        i = int(self.indices[index])
        x = np.asarray(self.data[i])
        if not self.chw:
            x = x.transpose(0, 2, 1)
        if x.shape[-1] == self.size and x.shape[-2] == self.size:
            img, crop = torch.from_numpy(np.ascontiguousarray(x)), self._crop.clone()
        else:
            img, crop = to_source(
                Image.fromarray(np.ascontiguousarray(x.transpose(1, 2, 0))), self.size, self.interpolation
            )
        return {"image": img, "label": int(self.labels[i]), "source_crop": crop}


def _numpy_global(module: str, name: str) -> Any:
    """``numpy.<module>.<name>`` from numpy 2's ``numpy._core`` or numpy 1's ``numpy.core`` (no deprecation shim)."""
    for prefix in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{prefix}.{module}"), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {module}.{name}")


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of ``bytes`` use it, restricted to the one codec they name."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class ForbiddenGlobal(pickle.UnpicklingError):
    """A pickle references a global that its format never holds (the name is the message)."""


def _multiarray(name: str) -> Callable[[], Any]:
    return lambda: _numpy_global("multiarray", name)


#: The only globals a CIFAR batch references (numpy 1 and 2 module names): array / scalar reconstruction and dtype,
#: plus ``_codecs.encode``, which protocol-2 pickles written by Python 3 use for ``bytes``.
CIFAR_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _multiarray("_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): _multiarray("_reconstruct"),
    ("numpy.core.multiarray", "scalar"): _multiarray("scalar"),
    ("numpy._core.multiarray", "scalar"): _multiarray("scalar"),
    ("numpy.core.numeric", "_frombuffer"): lambda: _numpy_global("numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): lambda: _numpy_global("numeric", "_frombuffer"),
    ("_codecs", "encode"): lambda: _latin1_encode,
}


class CifarUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR python batches: builds only what the format holds.

    The official batches (``pickle`` protocol 2, written by Python 2 / numpy) and batches re-written with any
    protocol hold dicts, lists, strings, numbers and numpy arrays; the only globals they reference are those of
    :data:`CIFAR_GLOBALS`. Any other (``os.system``, ``builtins.open``, ...) raises :class:`ForbiddenGlobal`
    before it is imported, so a crafted batch cannot run code.
    """

    def find_class(self, module: str, name: str) -> Any:
        make = CIFAR_GLOBALS.get((module, name))
        if make is None:
            raise ForbiddenGlobal(f"{module}.{name}")
        return make()


def _unpickle(path: Path) -> dict[str, Any]:
    """Read one CIFAR batch / meta file with :class:`CifarUnpickler` (byte-string keys become ``str``)."""
    try:
        with open(path, "rb") as f:
            d = CifarUnpickler(f, encoding="bytes").load()
    except ForbiddenGlobal as e:
        raise DatasetError(
            f"refusing to read CIFAR file {str(path)!r}: it references {e}, which the CIFAR format never holds "
            "(only numpy arrays, lists, numbers and strings); the file was altered, replace it with the official one"
        ) from None
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, IndexError, ValueError) as e:
        why = f"{type(e).__name__}: {e}".splitlines()[0]
        raise DatasetError(f"cannot read CIFAR file {str(path)!r}: not a valid CIFAR pickle ({why})") from None
    if not isinstance(d, dict):
        raise DatasetError(f"CIFAR file {str(path)!r} does not hold a dict (it holds a {type(d).__name__})")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def _split_indices(name: str, split: str, n: int) -> list[int] | None:
    n_train, n_val, seed = SPLIT_SEEDS[name]
    if n != n_train + n_val:  # smaller fixtures / subsets: keep the same proportions
        n_val = round(n * n_val / (n_train + n_val))
        n_train = n - n_val
    train, val = seeded_indices(n, [n_train, n_val], seed)
    return train if split == "train" else val


def cifar(root: str | os.PathLike[str], split: str, size: int = 32, num_classes: int = 10) -> ArrayDataset:
    """CIFAR-10 (``num_classes=10``) or CIFAR-100 (fine labels) from the python pickle batches."""
    if num_classes not in (10, 100):
        raise ValueError("num_classes must be 10 or 100")
    if split not in ("train", "val", "trainval", "test"):
        raise DatasetError(f"unknown CIFAR split {split!r}; valid: train, val, trainval, test")
    layout = CIFAR_LAYOUT[num_classes]
    base = Path(root).expanduser()
    folder = base / ("cifar-10-batches-py" if num_classes == 10 else "cifar-100-python")
    if not folder.is_dir() and (base / ("batches.meta" if num_classes == 10 else "meta")).is_file():
        folder = base  # root points at the extracted folder itself
    if num_classes == 10:
        files = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
        meta, key, names = "batches.meta", "labels", "label_names"
    else:
        files = ["test"] if split == "test" else ["train"]
        meta, key, names = "meta", "fine_labels", "fine_label_names"
    missing = [f for f in [*files, meta] if not (folder / f).is_file()]
    if missing:
        raise DatasetError(f"CIFAR-{num_classes} not found under {str(base)!r} (missing: {', '.join(missing)})", layout)
    xs, ys = [], []
    for f in files:
        try:
            d = _unpickle(folder / f)
            xs.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[key], dtype=np.int64))
        except DatasetError:
            raise
        except (KeyError, ValueError, pickle.UnpicklingError, EOFError) as e:
            raise DatasetError(f"cannot read CIFAR batch {str(folder / f)!r}: {e}", layout) from e
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in _unpickle(folder / meta)[names]]
    images, labels = np.concatenate(xs), np.concatenate(ys)
    idx = _split_indices(f"cifar{num_classes}", split, len(labels)) if split in ("train", "val") else None
    return ArrayDataset(images, labels, size, classes, idx)


def stl10(root: str | os.PathLike[str], split: str, size: int = 96) -> ArrayDataset:
    """STL-10 from the binary files; splits train/val/trainval/test/unlabeled/train+unlabeled."""
    valid = ("train", "val", "trainval", "test", "unlabeled", "train+unlabeled")
    if split not in valid:
        raise DatasetError(f"unknown STL-10 split {split!r}; valid: {', '.join(valid)}")
    base = Path(root).expanduser()
    folder = base / "stl10_binary"
    if not folder.is_dir() and (base / "train_X.bin").is_file():
        folder = base
    parts = {"test": ["test"], "unlabeled": ["unlabeled"], "train+unlabeled": ["train", "unlabeled"]}.get(
        split, ["train"]
    )
    need = [f"{p}_X.bin" for p in parts] + [f"{p}_y.bin" for p in parts if p != "unlabeled"]
    missing = [f for f in need if not (folder / f).is_file()]
    if missing:
        raise DatasetError(f"STL-10 not found under {str(base)!r} (missing: {', '.join(missing)})", STL10_LAYOUT)
    xs, ys = [], []
    for p in parts:
        x = np.memmap(folder / f"{p}_X.bin", dtype=np.uint8, mode="r")
        if x.size % (3 * 96 * 96):
            raise DatasetError(f"{str(folder / f'{p}_X.bin')!r} is not a whole number of 3x96x96 images", STL10_LAYOUT)
        xs.append(x.reshape(-1, 3, 96, 96))
        if p == "unlabeled":
            ys.append(np.full(len(xs[-1]), -1, dtype=np.int64))
        else:
            ys.append(np.fromfile(folder / f"{p}_y.bin", dtype=np.uint8).astype(np.int64) - 1)
            if len(ys[-1]) != len(xs[-1]):
                raise DatasetError(f"STL-10 {p}: {len(xs[-1])} images but {len(ys[-1])} labels", STL10_LAYOUT)
    names_file = folder / "class_names.txt"
    classes = names_file.read_text().split() if names_file.is_file() else [str(i) for i in range(10)]
    images = xs[0] if len(xs) == 1 else _Concat(xs)
    labels = np.concatenate(ys)
    idx = _split_indices("stl10", split, len(labels)) if split in ("train", "val") else None
    return ArrayDataset(images, labels, size, classes, idx, chw=False)  # type: ignore[arg-type]


class _Concat:
    """Index-only concatenation of memmaps (avoids copying 2.7 GB of unlabeled STL-10 images)."""

    def __init__(self, parts: list[np.ndarray]) -> None:
        self.parts, self.offsets = parts, np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, i: int) -> np.ndarray:
        j = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.parts[j][i - self.offsets[j]]
