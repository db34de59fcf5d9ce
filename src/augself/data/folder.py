"""ImageFolder reader returning dict samples at a fixed square source size, with seeded subsets."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from augself.augment.config import ViewConfig
from augself.augment.sample import CROP_TRIES, random_resized_crop_box
from augself.data.errors import CorruptImageError, DatasetError
from augself.data.imageio import Box, decode_mode, is_image_file, load_rgb, resized_crops, to_source
from augself.data.walk import WalkGuard, list_class_dirs, walk_files

__all__ = [
    "CROP_MODES",
    "IMG_EXTENSIONS",
    "FileListDataset",
    "ImageFolderDataset",
    "LabelledSubset",
    "crop_seed",
    "find_images",
    "seeded_indices",
    "subset_by_seed",
]

CROP_MODES: tuple[str, ...] = ("full_image", "centre_square")
"""How pretraining samples are cut from a variable-size image (see :class:`FileListDataset`)."""

IMG_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")

FOLDER_LAYOUT = """  <root>/<split>/<class>/<image>.{jpg,jpeg,png,bmp,webp,tif,tiff,gif}   (split given)
  <root>/<class>/<image>.*                                             (split=None)
  <root>/<image>.*                                                     (flat folder: unlabeled, label -1)"""


def find_images(
    folder: str | os.PathLike[str],
    extensions: tuple[str, ...] = IMG_EXTENSIONS,
    *,
    guard: WalkGuard | None = None,
    exclude: Sequence[str] = (),
) -> list[str]:
    """All image files below ``folder`` (recursive, hidden entries skipped), sorted.

    Linked folders are followed unless they loop back into ``folder``, lead into ``exclude`` (the other class
    folders) or repeat a folder already read; those are skipped with one warning (:mod:`augself.data.walk`).
    """
    return walk_files(folder, lambda f: is_image_file(f, extensions), guard=guard, exclude=exclude)


_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """SplitMix64's output function (Steele, Lea & Flood, OOPSLA 2014; Vigna's ``splitmix64.c``) on 64 bits."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def crop_seed(seed: int, epoch: int, index: int) -> int:
    """Seed of the generator that draws sample ``index``'s ``full_image`` crops in ``epoch`` of a run seeded
    ``seed``: ``splitmix64(splitmix64(splitmix64(seed) ^ epoch) ^ index) >> 1`` (all arguments taken modulo 2**64),
    a 63-bit value (``torch.Generator.manual_seed`` accepts it). A fixed formula: changing it changes every
    ``full_image`` run's crops."""
    h = _splitmix64(int(seed) & _MASK64)
    h = _splitmix64(h ^ (int(epoch) & _MASK64))
    return _splitmix64(h ^ (int(index) & _MASK64)) >> 1


class FileListDataset(Dataset):
    """Dataset over ``samples = [(path, label), ...]`` returning dict samples; two crop modes (:data:`CROP_MODES`).

    ``centre_square`` (default; evaluation preprocessing): ``{"image", "label", "source_crop"}`` where ``image`` is
    uint8 (3, size, size), exactly torchvision's ``Resize(size, interpolation)`` + ``CenterCrop(size)`` of the
    decoded image (:func:`~augself.data.imageio.to_source`; ``interpolation`` default bilinear, torchvision's
    default), and ``source_crop`` the kept region [top, left, h, w] as fractions of the original image.

    ``decode`` (:data:`~augself.data.imageio.DECODE_MODES`): ``exact`` (default) decodes every pixel, as
    torchvision's loaders do; ``draft`` lets JPEGs decode at a reduced scale (faster, different pixels; pretraining
    only, ``data.decode: draft``).

    ``full_image`` (after :meth:`use_full_image_crops`; the reference's pretraining input, ``RandomResizedCrop`` on
    the whole decoded image, AugSelf ``datasets.py``): ``{"views", "view_crops", "label"}`` where ``views[v]`` is
    uint8 (3, S_v, S_v), view v's random resized crop of the **whole original image**, and ``view_crops`` (V, 4)
    its box [top, left, h, w] as fractions of the original (:func:`~augself.data.imageio.resized_crops`).
    Indexed by an ``(epoch, index)`` pair (what :class:`~augself.train.sampler.ResumableSampler` yields when
    ``keyed_by_epoch`` is set, i.e. single-process ``augself pretrain``), the boxes come from a fresh generator
    seeded by :func:`crop_seed` ``(seed, epoch, index)``: the crops are a pure function of the run seed, the epoch
    and the sample, independent of the worker count, and a run resumed mid-epoch draws exactly the crops of the
    uninterrupted run. Indexed by a plain int (e.g. under DDP, whose ``DistributedSampler`` yields ints) they come
    from torch's default generator (seeded per DataLoader worker, as torchvision's): reproducible for a fixed seed
    and worker count only.

    A corrupt file raises :class:`CorruptImageError` naming it (see :meth:`scan_corrupt`).
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        size: int,
        classes: Sequence[str] = (),
        skip_corrupt: bool = False,
        num_scan_threads: int = 2,
        decode: str = "exact",
        interpolation: str = "bilinear",
    ) -> None:
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        self.samples: list[tuple[str, int]] = [(str(p), int(y)) for p, y in samples]
        self.size = int(size)
        self.classes: list[str] = list(classes)
        self.class_to_idx: dict[str, int] = {c: i for i, c in enumerate(self.classes)}
        self.corrupt: list[str] = []
        self.crop: str = "centre_square"
        self.crop_views: list[ViewConfig] = []
        self.decode = decode_mode(decode)
        self.interpolation = interpolation
        self.crop_seed = 0
        self.keyed_by_epoch = False
        """Whether ``__getitem__`` wants ``(epoch, index)`` keys (set by :meth:`use_full_image_crops`)."""
        if skip_corrupt:
            self.scan_corrupt(num_threads=num_scan_threads)

    def use_decode(self, decode: str | bool) -> FileListDataset:
        """Set the decode mode (``exact`` / ``draft``; ``True`` / ``False`` as the old ``reduced_decode``).
        Returns ``self``."""
        self.decode = decode_mode(decode)
        return self

    def use_full_image_crops(self, views: Sequence[ViewConfig], seed: int = 0) -> FileListDataset:
        """Switch to ``full_image`` samples: one random resized crop of the whole image per view config (its
        ``size``, ``crop_scale`` and ``crop_ratio``); ``seed`` (the run seed) keys the crops of ``(epoch, index)``
        samples (:func:`crop_seed`). With ``decode == "draft"`` JPEGs decode at a reduced scale where every view's
        box keeps at least its output size (:func:`~augself.data.imageio.resized_crops`). Returns ``self``."""
        if not views:
            raise ValueError("full_image crops need at least one view")
        for v in views:
            v.validate()
        self.crop, self.crop_views = "full_image", list(views)
        self.crop_seed, self.keyed_by_epoch = int(seed), True
        return self

    @property
    def targets(self) -> list[int]:
        return [y for _, y in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        """Sample ``key``: an index, or an ``(epoch, index)`` pair that seeds the ``full_image`` crops."""
        gen: torch.Generator | None = None
        if isinstance(key, tuple):
            epoch, index = int(key[0]), int(key[1])
            if self.crop == "full_image":
                gen = torch.Generator().manual_seed(crop_seed(self.crop_seed, epoch, index))
        else:
            index = key
        path, label = self.samples[index]
        if self.crop == "full_image":
            views, crops = resized_crops(
                path,
                lambda h, w: self._sample_boxes(h, w, gen),
                [v.size for v in self.crop_views],
                reduced_decode=self.decode == "draft",
            )
            return {"views": views, "view_crops": crops, "label": label}
        img = load_rgb(path, draft_size=self.size if self.decode == "draft" else None)
        image, crop = to_source(img, self.size, self.interpolation)
        return {"image": image, "label": label, "source_crop": crop}

    def _sample_boxes(self, height: int, width: int, generator: torch.Generator | None = None) -> list[Box]:
        """One RandomResizedCrop box per view on the original ``height`` x ``width`` grid (one draw of uniforms
        from ``generator``, default torch's global one)."""
        n = 2 * CROP_TRIES + 2
        u = torch.rand(n * len(self.crop_views), dtype=torch.float64, generator=generator).tolist()
        return [
            random_resized_crop_box(height, width, v.crop_scale, v.crop_ratio, u[i * n : (i + 1) * n])
            for i, v in enumerate(self.crop_views)
        ]

    def scan_corrupt(self, num_threads: int = 2) -> int:
        """Decode every file upfront and drop those that fail; returns (and warns with) the count.

        A decode is used because PIL's ``verify()`` does not notice truncated JPEGs (JPEGs at 1/8 scale: libjpeg still
        entropy-decodes every block, so a truncated or garbled file fails as in a full decode, in less time).
        The dropped paths are kept in ``self.corrupt``.
        """

        def bad(path: str) -> bool:
            try:
                load_rgb(path, draft_size=8)
            except (CorruptImageError, OSError):
                return True
            return False

        paths = [p for p, _ in self.samples]
        if num_threads > 1 and len(paths) > 64:
            with ThreadPoolExecutor(num_threads) as ex:
                flags = list(ex.map(bad, paths, chunksize=64))
        else:
            flags = [bad(p) for p in paths]
        dropped = [p for p, f in zip(paths, flags, strict=True) if f]
        self.samples = [s for s, f in zip(self.samples, flags, strict=True) if not f]
        self.corrupt.extend(dropped)
        if dropped:
            warnings.warn(f"skipped {len(dropped)} corrupt image(s) of {len(paths)}, e.g. {dropped[0]!r}", stacklevel=2)
        return len(dropped)


class ImageFolderDataset(FileListDataset):
    """``<root>/<split>/<class>/*.{img}`` (or ``<root>/<class>/...`` with ``split=None``) as dict samples.

    Classes are the sorted sub-folder names (hidden ones skipped); images are found recursively.
    A folder with images but no class sub-folders is read as unlabeled (label -1, ``classes == []``);
    ``labelled=False`` also gives label -1 while keeping ``classes``. Loose images next to class folders
    are ignored. ``classes=[...]`` forces a class list (so a test split maps names like its train split).
    ``skip_corrupt=True`` runs :meth:`scan_corrupt` at construction (count in ``len(self.corrupt)``).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str | None,
        size: int,
        labelled: bool = True,
        skip_corrupt: bool = False,
        extensions: tuple[str, ...] = IMG_EXTENSIONS,
        classes: Sequence[str] | None = None,
    ) -> None:
        extensions = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
        root_p = Path(root).expanduser()
        if not root_p.is_dir():
            raise DatasetError(f"dataset root {str(root_p)!r} does not exist or is not a folder", FOLDER_LAYOUT)
        folder = root_p
        if split is not None:
            folder = root_p / split
            if not folder.is_dir():
                found = sorted(d.name for d in root_p.iterdir() if d.is_dir() and not d.name.startswith("."))
                raise DatasetError(
                    f"split folder {str(folder)!r} not found; splits found in {str(root_p)!r}: "
                    f"{', '.join(found) if found else '(none)'}",
                    FOLDER_LAYOUT,
                )
        self.root = str(folder)
        guard = WalkGuard()  # one dataset: each real folder read once, loops skipped and reported together
        subdirs = list_class_dirs(folder, guard)
        samples: list[tuple[str, int]] = []
        if classes is not None or subdirs:
            class_names = list(classes) if classes is not None else subdirs
            class_dirs = [folder / c for c in class_names]
            reals = [os.path.realpath(d) for d in class_dirs]
            for i, cdir in enumerate(class_dirs):
                others = [r for j, r in enumerate(reals) if j != i]
                files = find_images(cdir, extensions, guard=guard, exclude=others) if cdir.is_dir() else []
                if not files and classes is None:
                    raise DatasetError(
                        f"class folder {str(cdir)!r} contains no images (extensions: {', '.join(extensions)})",
                        FOLDER_LAYOUT,
                    )
                samples.extend((f, i if labelled else -1) for f in files)
            if not samples:
                raise DatasetError(f"no images found in {str(folder)!r}", FOLDER_LAYOUT)
        else:
            class_names = []
            files = find_images(folder, extensions, guard=guard)
            if not files:
                raise DatasetError(
                    f"folder {str(folder)!r} is empty: no class folders and no images "
                    f"(extensions: {', '.join(extensions)})",
                    FOLDER_LAYOUT,
                )
            samples = [(f, -1) for f in files]
        guard.warn()
        super().__init__(samples, size, class_names, skip_corrupt=skip_corrupt)


class LabelledSubset(torch.utils.data.Subset):
    """A ``Subset`` that keeps ``targets`` / ``classes`` / ``samples`` of its parent when it has them."""

    @property
    def targets(self) -> list[int]:
        t = getattr(self.dataset, "targets", None)
        if t is None:
            return [int(self.dataset[i]["label"]) for i in self.indices]
        return [int(t[i]) for i in self.indices]

    @property
    def classes(self) -> list[str]:
        return list(getattr(self.dataset, "classes", []))

    @property
    def samples(self) -> list[Any]:
        s = getattr(self.dataset, "samples", None)
        if s is None:
            raise AttributeError("parent dataset has no samples")
        return [s[i] for i in self.indices]


def _lengths(n: int, fractions: Sequence[float | int]) -> list[int]:
    if all(isinstance(f, int) and not isinstance(f, bool) for f in fractions) and sum(fractions) == n:
        return [int(f) for f in fractions]
    fr = [float(f) for f in fractions]
    if any(f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be counts summing to {n} or fractions summing to 1, got {fractions}")
    lengths = [int(n * f) for f in fr]  # floor, remainder round-robin (as torch.utils.data.random_split)
    for i in range(n - sum(lengths)):
        lengths[i % len(lengths)] += 1
    return lengths


def seeded_indices(n: int, fractions: Sequence[float | int], seed: int) -> list[list[int]]:
    """Index lists of a seeded random split; identical to ``torch.utils.data.random_split`` with
    ``generator=torch.Generator().manual_seed(seed)`` (the reference code's way to carve val sets)."""
    lengths = _lengths(n, fractions)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).tolist()
    out, start = [], 0
    for k in lengths:
        out.append(perm[start : start + k])
        start += k
    return out


def subset_by_seed(dataset: Dataset, fractions: Sequence[float | int], seed: int) -> list[LabelledSubset]:
    """Split ``dataset`` deterministically by ``seed`` into disjoint subsets.

    ``fractions`` are either counts summing to ``len(dataset)`` (e.g. ``[45000, 5000]``) or fractions
    summing to 1 (e.g. ``[0.7, 0.1, 0.2]``).
    """
    return [LabelledSubset(dataset, idx) for idx in seeded_indices(len(dataset), fractions, seed)]
