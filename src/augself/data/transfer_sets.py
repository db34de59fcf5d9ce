"""Readers for the paper's transfer datasets in their standard on-disk layouts (never download).

Every reader takes ``(root, split, size)`` with ``split`` in ``train | val | test | trainval`` (plus
``all`` = every image, the few-shot pool) and returns a dataset of ``{"image", "label", "source_crop"}``
dicts with ``.classes`` and ``.targets``. ``root`` is either the folder that *contains* the dataset's
standard folder (e.g. ``<root>/food-101``) or that folder itself. Splits (reference §6.1):

=============== ============================================================================== ========
name            train / val / test                                                              metric
=============== ============================================================================== ========
cifar10/100     official train -> 45000/5000 (seed 43 / 44); official test                      top1
stl10           official train -> 4500/500 (seed 50); official test                             top1
food101         meta/train.txt -> 68175/7575 (seed 42); meta/test.txt                           top1
mit67           train/ folder -> 4690/670 (seed 51); test/ folder                               top1
pets            annotations/trainval.txt -> 2940/740 (seed 49); annotations/test.txt            class-avg
flowers         official trn / val / tst (setid.mat or trn/val/tst folders)                     class-avg
caltech101      per class: 30 images (25 train + 5 val, seeded), the rest test                  class-avg
dtd             official split 1: labels/train1.txt, val1.txt, test1.txt                        top1
sun397          Training_01 -> per class 40/10 (seeded, 15880/3970); Testing_01                 top1
cub200          train_test_split.txt train -> (n-1000)/1000 (seeded); test                      top1
cars            official train (8144) -> 90/10 (seeded); official test (8041)                   top1
aircraft        official images_variant_{train,val,test}.txt (variant level, 100 classes)       class-avg
fc100           train/ val/ test/ folders (disjoint classes; few-shot uses test)                top1
plant_disease   train/ -> 90/10 (seeded); test/ (or valid/) folder                              top1
=============== ============================================================================== ========

``trainval`` is always train ∪ val (the set the final linear classifier is refit on). The reference's
fixed index files (Caltech-101, SUN397, CUB-200) are not available, so those splits use the seeded
rules above with the same sizes; the seeded carve-outs use ``random_split``'s permutation so they match
the reference exactly wherever the underlying file order does (CIFAR, STL-10).
The files are parsed directly rather than through torchvision's classes (``DTD``, ``OxfordIIITPet``,
``Food101``, ... have none of the seeded val carve-outs above and their own folder names, e.g. ``<root>/dtd/dtd/``
for DTD), so no archive hashes are checked and ``.mat`` files are only needed for Flowers (``setid.mat``) and Cars
(``devkit``); those need scipy, otherwise use their folder layouts. CIFAR / STL-10: see
:mod:`augself.data.torchvision_sets`. Every image is decoded exactly and brought to ``size`` as torchvision's
``Resize(size)`` + ``CenterCrop(size)`` (:class:`~augself.data.folder.FileListDataset`, ``docs/preprocessing.md``).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from augself.data.errors import DatasetError
from augself.data.folder import FileListDataset, ImageFolderDataset, seeded_indices
from augself.data.torchvision_sets import CIFAR_LAYOUT, STL10_LAYOUT, cifar, stl10
from augself.data.walk import list_class_dirs
from augself.names import unknown_name_message

__all__ = ["SPLITS", "TRANSFER_SETS", "TransferSpec", "load_transfer"]

SPLITS = ("train", "val", "test", "trainval", "all")
Samples = list[tuple[str, int]]


@dataclass(frozen=True)
class TransferSpec:
    """How to read one transfer dataset: reader, preferred metric, class count and expected layout."""

    name: str
    reader: Callable[[str, str, int], Any]
    metric: str  # "top1" or "class-avg"
    num_classes: int
    layout: str


# ---------------------------------------------------------------------------------------------- helpers
def _locate(root: str | os.PathLike[str], names: Sequence[str], marker: str, layout: str, what: str) -> Path:
    """The dataset folder: ``root/<one of names>`` or ``root`` itself, whichever contains ``marker``."""
    base = Path(root).expanduser()
    for cand in [*(base / n for n in names), base]:
        if (cand / marker).exists():
            return cand
    raise DatasetError(
        f"{what} not found under {str(base)!r} (looked for {marker!r} in "
        f"{', '.join(str(base / n) for n in names)} and the root itself)",
        layout,
    )


def _check_split(split: str, name: str) -> None:
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r} for {name}; valid: {', '.join(SPLITS)}")


def _read_lines(path: Path, layout: str) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"missing split file {str(path)!r}", layout)
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def _carve(samples: Samples, split: str, n_val: int | float, seed: int) -> Samples:
    """train/val from ``samples`` (val = ``n_val`` images or a fraction), seeded like random_split."""
    if split == "trainval":
        return samples
    n = len(samples)
    k = round(n * n_val) if isinstance(n_val, float) else min(int(n_val), n)
    tr, va = seeded_indices(n, [n - k, k], seed)
    return [samples[i] for i in (tr if split == "train" else va)]


def _carve_per_class(samples: Samples, split: str, counts: tuple[int, int], seed: int) -> tuple[Samples, Samples]:
    """Per class (seeded): the first ``counts[0]`` -> train, the next ``counts[1]`` -> val, rest -> test.

    Returns (selected split, test) so callers can also answer ``test``.
    """
    by_cls: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for s in samples:
        by_cls[s[1]].append(s)
    g = torch.Generator().manual_seed(seed)
    tr, va, te = [], [], []
    for c in sorted(by_cls):
        items = by_cls[c]
        perm = torch.randperm(len(items), generator=g).tolist()
        a, b = counts[0], counts[0] + counts[1]
        tr += [items[i] for i in perm[:a]]
        va += [items[i] for i in perm[a:b]]
        te += [items[i] for i in perm[b:]]
    sel = {"train": tr, "val": va, "trainval": tr + va, "test": te, "all": tr + va + te}[split]
    return sel, te


def _dataset(samples: Samples, size: int, classes: list[str], what: str, layout: str) -> FileListDataset:
    if not samples:
        raise DatasetError(f"{what}: the split is empty", layout)
    missing = [p for p, _ in samples[:1] + samples[-1:] if not os.path.isfile(p)]
    if missing:
        raise DatasetError(f"{what}: listed image {missing[0]!r} does not exist", layout)
    return FileListDataset(samples, size, classes)


def _folder_samples(folder: Path, classes: list[str] | None = None) -> tuple[Samples, list[str]]:
    ds = ImageFolderDataset(folder, None, 1, classes=classes)
    return ds.samples, ds.classes


# ---------------------------------------------------------------------------------------------- readers
def _cifar(n: int) -> Callable[[str, str, int], Any]:
    def read(root: str, split: str, size: int) -> Any:
        _check_split(split, f"cifar{n}")
        if split == "all":
            from torch.utils.data import ConcatDataset

            return ConcatDataset([cifar(root, "trainval", size, n), cifar(root, "test", size, n)])
        return cifar(root, split, size, n)

    return read


def _stl10(root: str, split: str, size: int) -> Any:
    if split not in ("unlabeled", "train+unlabeled"):  # + the pretraining splits (reference doc Sec. 5)
        _check_split(split, "stl10")
    return stl10(root, "trainval" if split == "all" else split, size)


FOOD_LAYOUT = """  <root>/food-101/images/<class>/<id>.jpg
  <root>/food-101/meta/train.txt, test.txt (lines '<class>/<id>'), classes.txt"""


def _food101(root: str, split: str, size: int) -> FileListDataset:
    _check_split(split, "food101")
    d = _locate(root, ["food-101", "food101"], "meta/train.txt", FOOD_LAYOUT, "Food-101")
    cfile = d / "meta" / "classes.txt"
    train = _read_lines(d / "meta" / "train.txt", FOOD_LAYOUT)
    test = _read_lines(d / "meta" / "test.txt", FOOD_LAYOUT)
    classes = _read_lines(cfile, FOOD_LAYOUT) if cfile.is_file() else sorted({ln.split("/")[0] for ln in train})
    idx = {c: i for i, c in enumerate(classes)}

    def to_samples(lines: list[str]) -> Samples:
        return [(str(d / "images" / f"{ln}.jpg"), idx[ln.split("/")[0]]) for ln in lines]

    if split == "test":
        s = to_samples(test)
    elif split == "all":
        s = to_samples(train + test)
    else:
        s = _carve(to_samples(train), split, 7575 if len(train) == 75750 else 0.1, 42)
    return _dataset(s, size, classes, "Food-101", FOOD_LAYOUT)


MIT67_LAYOUT = "  <root>/mit67/{train,test}/<class>/<image>.jpg   (67 indoor-scene classes)"


def _mit67(root: str, split: str, size: int) -> FileListDataset:
    _check_split(split, "mit67")
    d = _locate(root, ["mit67", "MIT67", "indoorCVPR_09"], "train", MIT67_LAYOUT, "MIT-67")
    train, classes = _folder_samples(d / "train")
    if split == "test":
        s, _ = _folder_samples(d / "test", classes)
    elif split == "all":
        s = train + _folder_samples(d / "test", classes)[0]
    else:
        s = _carve(train, split, 670 if len(train) == 5360 else 0.125, 51)
    return _dataset(s, size, classes, "MIT-67", MIT67_LAYOUT)


PETS_LAYOUT = """  <root>/oxford-iiit-pet/images/<Breed_name>_<n>.jpg
  <root>/oxford-iiit-pet/annotations/trainval.txt, test.txt
  (lines '<image> <class id 1..37> <species> <breed>')"""


def _pets(root: str, split: str, size: int) -> FileListDataset:
    _check_split(split, "pets")
    d = _locate(
        root,
        ["oxford-iiit-pet", "pets", "oxford_pets"],
        "annotations/trainval.txt",
        PETS_LAYOUT,
        "Oxford-IIIT Pets",
    )

    def read(name: str) -> Samples:
        out = []
        for ln in _read_lines(d / "annotations" / name, PETS_LAYOUT):
            if ln.startswith("#"):
                continue
            parts = ln.split()
            out.append((str(d / "images" / f"{parts[0]}.jpg"), int(parts[1]) - 1))
        return out

    trainval, test = read("trainval.txt"), read("test.txt")
    names: dict[int, str] = {}
    for p, y in trainval + test:
        names.setdefault(y, " ".join(w.title() for w in Path(p).stem.rsplit("_", 1)[0].split("_")))
    classes = [names.get(i, str(i)) for i in range(max(names) + 1)]
    s = (
        test
        if split == "test"
        else trainval + test
        if split == "all"
        else (_carve(trainval, split, 740 if len(trainval) == 3680 else 0.2, 49))
    )
    return _dataset(s, size, classes, "Oxford-IIIT Pets", PETS_LAYOUT)


FLOWERS_LAYOUT = """  <root>/flowers-102/jpg/image_00001.jpg ..., imagelabels.mat, setid.mat   (needs scipy)
  or <root>/flowers-102/{trn,val,tst}/<class>/<image>.jpg"""


def _loadmat(path: Path, layout: str) -> dict[str, Any]:
    try:
        from scipy.io import loadmat
    except ImportError as e:
        raise DatasetError(
            f"reading {str(path)!r} needs scipy (pip install scipy) or use the folder layout", layout
        ) from e
    return loadmat(str(path))


def _flowers(root: str, split: str, size: int) -> FileListDataset:
    _check_split(split, "flowers")
    parts = {
        "train": ["trn"],
        "val": ["val"],
        "test": ["tst"],
        "trainval": ["trn", "val"],
        "all": ["trn", "val", "tst"],
    }[split]
    base = Path(root).expanduser()
    for cand in [base / "flowers-102", base / "flowers102", base / "flowers", base]:
        if (cand / "trn").is_dir():
            _, classes = _folder_samples(cand / "trn")
            s = [x for p in parts for x in _folder_samples(cand / p, classes)[0]]
            return _dataset(s, size, classes, "Flowers-102", FLOWERS_LAYOUT)
    d = _locate(root, ["flowers-102", "flowers102", "flowers"], "setid.mat", FLOWERS_LAYOUT, "Flowers-102")
    labels = _loadmat(d / "imagelabels.mat", FLOWERS_LAYOUT)["labels"].ravel().astype(int) - 1
    setid = _loadmat(d / "setid.mat", FLOWERS_LAYOUT)
    key = {"trn": "trnid", "val": "valid", "tst": "tstid"}
    ids = [int(i) for p in parts for i in setid[key[p]].ravel()]
    s = [(str(d / "jpg" / f"image_{i:05d}.jpg"), int(labels[i - 1])) for i in ids]
    return _dataset(s, size, [str(i) for i in range(102)], "Flowers-102", FLOWERS_LAYOUT)


CALTECH_LAYOUT = """  <root>/caltech101/101_ObjectCategories/<class>/image_0001.jpg   (BACKGROUND_Google is ignored)"""


def _caltech101(root: str, split: str, size: int) -> FileListDataset:
    _check_split(split, "caltech101")
    d = _locate(
        root,
        ["caltech101", "caltech-101", "Caltech101"],
        "101_ObjectCategories",
        CALTECH_LAYOUT,
        "Caltech-101",
    )
    cdir = d / "101_ObjectCategories"
    classes = [c for c in list_class_dirs(cdir) if c != "BACKGROUND_Google"]
    samples, _ = _folder_samples(cdir, classes)
    s, _ = _carve_per_class(samples, split, (25, 5), seed=0)
    return _dataset(s, size, classes, "Caltech-101", CALTECH_LAYOUT)


DTD_LAYOUT = """  <root>/dtd/images/<class>/<class>_<n>.jpg
  <root>/dtd/labels/train1.txt, val1.txt, test1.txt (lines '<class>/<file>.jpg')"""


def _dtd(root: str, split: str, size: int, partition: int = 1) -> FileListDataset:
    _check_split(split, "dtd")
    d = _locate(root, ["dtd", "DTD"], f"labels/train{partition}.txt", DTD_LAYOUT, "DTD")
    parts = {
        "train": ["train"],
        "val": ["val"],
        "test": ["test"],
        "trainval": ["train", "val"],
        "all": ["train", "val", "test"],
    }[split]
    lines = [ln for p in parts for ln in _read_lines(d / "labels" / f"{p}{partition}.txt", DTD_LAYOUT)]
    all_lines = [
        ln for p in ("train", "val", "test") for ln in _read_lines(d / "labels" / f"{p}{partition}.txt", DTD_LAYOUT)
    ]
    classes = sorted({ln.split("/")[0] for ln in all_lines})
    idx = {c: i for i, c in enumerate(classes)}
    s = [(str(d / "images" / ln), idx[ln.split("/")[0]]) for ln in lines]
    return _dataset(s, size, classes, "DTD", DTD_LAYOUT)


SUN_LAYOUT = """  <root>/SUN397/<letter>/<class>[/<sub>]/sun_<id>.jpg, ClassName.txt (optional)
  <root>/SUN397/Partitions/Training_01.txt, Testing_01.txt (lines '/<letter>/<class>/sun_<id>.jpg';
  also accepted next to the images)"""


def _sun397(root: str, split: str, size: int) -> FileListDataset:
    _check_split(split, "sun397")
    base = Path(root).expanduser()
    d = None
    for cand in [base / "SUN397", base / "sun397", base]:
        for pdir in (cand / "Partitions", cand):
            if (pdir / "Training_01.txt").is_file():
                d, part_dir = cand, pdir
                break
        if d is not None:
            break
    if d is None:
        raise DatasetError(f"SUN397 not found under {str(base)!r} (no Training_01.txt)", SUN_LAYOUT)
    train = _read_lines(part_dir / "Training_01.txt", SUN_LAYOUT)
    test = _read_lines(part_dir / "Testing_01.txt", SUN_LAYOUT)

    def cls(ln: str) -> str:
        return "/".join(ln.strip("/").split("/")[1:-1])

    classes = sorted({cls(ln) for ln in train + test})
    idx = {c: i for i, c in enumerate(classes)}

    def to_samples(lines: list[str]) -> Samples:
        return [(str(d / ln.lstrip("/")), idx[cls(ln)]) for ln in lines]

    if split == "test":
        s = to_samples(test)
    elif split == "all":
        s = to_samples(train + test)
    else:
        s, _ = _carve_per_class(to_samples(train), split, (40, 10), seed=0)
    return _dataset(s, size, classes, "SUN397", SUN_LAYOUT)


CUB_LAYOUT = """  <root>/CUB_200_2011/images/<class>/<image>.jpg, images.txt ('<id> <class>/<image>.jpg'),
  image_class_labels.txt ('<id> <class 1..200>'), train_test_split.txt ('<id> <1 train | 0 test>'),
  classes.txt"""


def _cub200(root: str, split: str, size: int) -> FileListDataset:
    _check_split(split, "cub200")
    d = _locate(root, ["CUB_200_2011", "cub200", "CUB200"], "images.txt", CUB_LAYOUT, "CUB-200-2011")
    paths = dict(ln.split(maxsplit=1) for ln in _read_lines(d / "images.txt", CUB_LAYOUT))
    is_train = dict(ln.split() for ln in _read_lines(d / "train_test_split.txt", CUB_LAYOUT))
    lab_file = d / "image_class_labels.txt"
    if lab_file.is_file():
        labels = {k: int(v) - 1 for k, v in (ln.split() for ln in _read_lines(lab_file, CUB_LAYOUT))}
    else:
        labels = {k: int(p.split(".")[0]) - 1 for k, p in paths.items()}
    cfile = d / "classes.txt"
    classes = (
        [ln.split(maxsplit=1)[1] for ln in _read_lines(cfile, CUB_LAYOUT)]
        if cfile.is_file()
        else [str(i) for i in range(max(labels.values()) + 1)]
    )
    ids = sorted(paths, key=int)
    tr = [(str(d / "images" / paths[i]), labels[i]) for i in ids if is_train[i] == "1"]
    te = [(str(d / "images" / paths[i]), labels[i]) for i in ids if is_train[i] != "1"]
    s = te if split == "test" else tr + te if split == "all" else _carve(tr, split, min(1000, len(tr) // 6), 0)
    return _dataset(s, size, classes, "CUB-200-2011", CUB_LAYOUT)


CARS_LAYOUT = """  <root>/stanford_cars/{train,test}/<class>/<image>.jpg
  or <root>/stanford_cars/devkit/{cars_meta.mat,cars_train_annos.mat}, cars_train/, cars_test/,
     cars_test_annos_withlabels.mat   (torchvision's layout; needs scipy)"""


def _cars(root: str, split: str, size: int) -> FileListDataset:
    _check_split(split, "cars")
    base = Path(root).expanduser()
    names = ["stanford_cars", "stanford-cars", "cars"]
    for cand in [*(base / n for n in names), base]:
        if (cand / "train").is_dir() and (cand / "test").is_dir():
            tr, classes = _folder_samples(cand / "train")
            te, _ = _folder_samples(cand / "test", classes)
            break
    else:
        d = _locate(root, names, "devkit/cars_train_annos.mat", CARS_LAYOUT, "Stanford Cars")
        meta = _loadmat(d / "devkit" / "cars_meta.mat", CARS_LAYOUT)
        classes = [str(c[0]) for c in meta["class_names"][0]]

        def annos(mat: Path, folder: str, d: Path = d) -> Samples:
            a = _loadmat(mat, CARS_LAYOUT)["annotations"][0]
            return [(str(d / folder / str(x["fname"][0])), int(x["class"][0, 0]) - 1) for x in a]

        tr = annos(d / "devkit" / "cars_train_annos.mat", "cars_train")
        te = annos(d / "cars_test_annos_withlabels.mat", "cars_test")
    s = te if split == "test" else tr + te if split == "all" else _carve(tr, split, 0.1, 0)
    return _dataset(s, size, classes, "Stanford Cars", CARS_LAYOUT)


AIRCRAFT_LAYOUT = """  <root>/fgvc-aircraft-2013b/data/images/<id>.jpg, variants.txt,
  images_variant_{train,val,trainval,test}.txt (lines '<id> <variant name>')"""


def _aircraft(root: str, split: str, size: int) -> FileListDataset:
    _check_split(split, "aircraft")
    base = Path(root).expanduser()
    cands = ["fgvc-aircraft-2013b/data", "fgvc-aircraft-2013b", "aircraft/data", "aircraft", "data"]
    d = _locate(base, cands, "images_variant_train.txt", AIRCRAFT_LAYOUT, "FGVC-Aircraft")
    parts = {
        "train": ["train"],
        "val": ["val"],
        "test": ["test"],
        "trainval": ["train", "val"],
        "all": ["train", "val", "test"],
    }[split]
    vfile = d / "variants.txt"
    lines = {p: _read_lines(d / f"images_variant_{p}.txt", AIRCRAFT_LAYOUT) for p in parts}
    classes = (
        _read_lines(vfile, AIRCRAFT_LAYOUT)
        if vfile.is_file()
        else sorted({ln.split(maxsplit=1)[1] for v in lines.values() for ln in v})
    )
    idx = {c: i for i, c in enumerate(classes)}
    s = [(str(d / "images" / f"{a}.jpg"), idx[b]) for p in parts for a, b in (ln.split(maxsplit=1) for ln in lines[p])]
    return _dataset(s, size, classes, "FGVC-Aircraft", AIRCRAFT_LAYOUT)


FC100_LAYOUT = "  <root>/FC100/{train,val,test}/<class>/<image>.png   (disjoint class sets per split)"


def _fc100(root: str, split: str, size: int) -> FileListDataset:
    _check_split(split, "fc100")
    d = _locate(root, ["FC100", "fc100"], "test", FC100_LAYOUT, "FC100")
    parts = {
        "train": ["train"],
        "val": ["val"],
        "test": ["test"],
        "trainval": ["train", "val"],
        "all": ["train", "val", "test"],
    }[split]
    classes = (
        [f"{p}/{c}" for p in parts for c in list_class_dirs(d / p)] if all((d / p).is_dir() for p in parts) else []
    )
    if not classes:
        raise DatasetError(f"FC100 under {str(d)!r} lacks one of the folders {parts}", FC100_LAYOUT)
    s, _ = _folder_samples(d, classes)
    return _dataset(s, size, classes, "FC100", FC100_LAYOUT)


PLANT_LAYOUT = "  <root>/plant_disease/{train,test}/<class>/<image>.jpg   (test may be named valid/ or val/)"


def _plant_disease(root: str, split: str, size: int) -> FileListDataset:
    _check_split(split, "plant_disease")
    d = _locate(root, ["plant_disease", "plant-disease", "PlantVillage"], "train", PLANT_LAYOUT, "Plant Disease")
    test_dir = next((d / n for n in ("test", "valid", "val") if (d / n).is_dir()), None)
    if test_dir is None:
        raise DatasetError(f"no test/ (or valid/) folder in {str(d)!r}", PLANT_LAYOUT)
    tr, classes = _folder_samples(d / "train")
    if split in ("test", "all"):
        te, _ = _folder_samples(test_dir, classes)
        s = te if split == "test" else tr + te
    else:
        s = _carve(tr, split, 0.1, 0)
    return _dataset(s, size, classes, "Plant Disease", PLANT_LAYOUT)


TRANSFER_SETS: dict[str, TransferSpec] = {
    s.name: s
    for s in [
        TransferSpec("cifar10", _cifar(10), "top1", 10, CIFAR_LAYOUT[10]),
        TransferSpec("cifar100", _cifar(100), "top1", 100, CIFAR_LAYOUT[100]),
        TransferSpec("stl10", _stl10, "top1", 10, STL10_LAYOUT),
        TransferSpec("food101", _food101, "top1", 101, FOOD_LAYOUT),
        TransferSpec("mit67", _mit67, "top1", 67, MIT67_LAYOUT),
        TransferSpec("pets", _pets, "class-avg", 37, PETS_LAYOUT),
        TransferSpec("flowers", _flowers, "class-avg", 102, FLOWERS_LAYOUT),
        TransferSpec("caltech101", _caltech101, "class-avg", 101, CALTECH_LAYOUT),
        TransferSpec("dtd", _dtd, "top1", 47, DTD_LAYOUT),
        TransferSpec("sun397", _sun397, "top1", 397, SUN_LAYOUT),
        TransferSpec("cub200", _cub200, "top1", 200, CUB_LAYOUT),
        TransferSpec("cars", _cars, "top1", 196, CARS_LAYOUT),
        TransferSpec("aircraft", _aircraft, "class-avg", 100, AIRCRAFT_LAYOUT),
        TransferSpec("fc100", _fc100, "top1", 20, FC100_LAYOUT),
        TransferSpec("plant_disease", _plant_disease, "top1", 38, PLANT_LAYOUT),
    ]
}


def load_transfer(name: str, root: str | os.PathLike[str], split: str, size: int) -> Any:
    """Read transfer dataset ``name`` (a ``TRANSFER_SETS`` key) from ``root``."""
    if name not in TRANSFER_SETS:
        raise DatasetError(unknown_name_message(name, TRANSFER_SETS, "transfer dataset"))
    return TRANSFER_SETS[name].reader(str(root), split, size)
