"""Dataset readers: decoding, source crop, ImageFolder errors, seeded splits, CIFAR/STL-10, registry."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from augself.data import (
    DATASETS,
    CorruptImageError,
    DatasetError,
    ImageFolderDataset,
    build_dataset,
    dataset_info,
    load_rgb,
    subset_by_seed,
    to_source,
)
from augself.data.folder import seeded_indices
from augself.data.torchvision_sets import cifar, stl10
from augself.data.transfer_sets import TRANSFER_SETS


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(load_rgb(path)).astype(int)


# ------------------------------------------------------------------------------------------ decoding
def test_mode_conversions(tmp_path: Path) -> None:
    Image.new("L", (4, 3), 100).save(tmp_path / "l.png")
    assert (_rgb(tmp_path / "l.png") == 100).all()

    rgba = Image.new("RGBA", (4, 3), (10, 20, 30, 0))
    rgba.save(tmp_path / "rgba.png")
    assert (_rgb(tmp_path / "rgba.png") == [10, 20, 30]).all()  # alpha dropped, colour kept

    Image.new("LA", (4, 3), (77, 128)).save(tmp_path / "la.png")
    assert (_rgb(tmp_path / "la.png") == 77).all()

    pal = Image.new("P", (4, 3))
    pal.putpalette([0, 0, 0, 200, 50, 25] + [0] * 762)
    pal.putpixel((1, 1), 1)
    pal.save(tmp_path / "p.png")
    a = _rgb(tmp_path / "p.png")
    assert a[1, 1].tolist() == [200, 50, 25] and a[0, 0].tolist() == [0, 0, 0]

    Image.new("CMYK", (4, 3), (0, 255, 255, 0)).save(tmp_path / "cmyk.tif")
    assert (_rgb(tmp_path / "cmyk.tif") == [255, 0, 0]).all()

    one = Image.new("1", (4, 3), 0)
    one.putpixel((2, 1), 1)
    one.save(tmp_path / "one.png")
    b = _rgb(tmp_path / "one.png")
    assert b[1, 2].tolist() == [255, 255, 255] and b[0, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize("value,expected", [(32768, 128), (65535, 255), (0, 0), (1000, 4)])
def test_16bit_is_scaled_not_clipped(tmp_path: Path, value: int, expected: int) -> None:
    arr = np.full((5, 6), value, dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode in ("I;16", "I")
    out = _rgb(tmp_path / "g16.png")
    assert out.shape == (5, 6, 3) and (out == expected).all()


def test_corrupt_file_names_the_file(tmp_path: Path) -> None:
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "ok.jpg", quality=90)
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    for name in ("trunc.jpg", "junk.png"):
        with pytest.raises(CorruptImageError, match=name):
            load_rgb(tmp_path / name)


# ------------------------------------------------------------------------------------------ to_source
def test_source_crop_of_wide_and_tall_images() -> None:
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, :20] = (255, 0, 0)
    wide[:, 20:40] = (0, 255, 0)
    wide[:, 40:] = (0, 0, 255)
    img, crop = to_source(Image.fromarray(wide), 10)
    assert img.dtype == torch.uint8 and img.shape == (3, 10, 10)
    assert torch.allclose(crop, torch.tensor([0.0, 1 / 3, 1.0, 1 / 3]))
    inner = img[:, :, 1:-1]  # the filter of the edge columns also reads just outside the box, as it should
    assert (inner[1] >= 250).all() and (inner[0] <= 5).all() and (inner[2] <= 5).all()  # the green third

    tall = Image.fromarray(np.ascontiguousarray(wide.transpose(1, 0, 2)))
    _, crop = to_source(tall, 10)
    assert torch.allclose(crop, torch.tensor([1 / 3, 0.0, 1 / 3, 1.0]))


def test_source_crop_maps_to_the_right_pixels() -> None:
    W, H, S = 100, 40, 16
    x = np.arange(W, dtype=np.float64) + 0.5
    ramp = np.broadcast_to((x * 2.5)[None, :, None], (H, W, 3))
    img, crop = to_source(Image.fromarray(np.floor(ramp).astype(np.uint8)), S)
    top, left, h, w = crop.tolist()
    assert top == 0 and h == 1
    cols = (left + (np.arange(S) + 0.5) / S * w) * W  # original x of each output column centre
    np.testing.assert_allclose(img[0, S // 2].numpy(), cols * 2.5, atol=1.6)


def test_tiny_image_upscaled() -> None:
    img, crop = to_source(Image.new("RGB", (3, 5), (9, 8, 7)), 32)
    assert img.shape == (3, 32, 32) and (img[:, 5, 5] == torch.tensor([9, 8, 7], dtype=torch.uint8)).all()
    assert crop[3] == 1.0 and crop[0] > 0


# ------------------------------------------------------------------------------------------ ImageFolder
def _tree(root: Path, classes: dict[str, int], size: tuple[int, int] = (12, 10)) -> None:
    for ci, (c, n) in enumerate(classes.items()):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", size, (ci * 40, i * 10, 5)).save(root / c / f"{i:03d}.png")


def test_image_folder_samples(tmp_path: Path) -> None:
    _tree(tmp_path / "train", {"b": 3, "a": 2})
    (tmp_path / "train" / "a" / "notes.txt").write_text("ignored")
    Image.new("L", (7, 9), 50).save(tmp_path / "train" / "a" / "gray.bmp")
    ds = ImageFolderDataset(tmp_path, "train", 8)
    assert ds.classes == ["a", "b"] and len(ds) == 6 and ds.targets == [0, 0, 0, 1, 1, 1]
    x = ds[0]
    assert set(x) == {"image", "label", "source_crop"}
    assert x["image"].shape == (3, 8, 8) and x["image"].dtype == torch.uint8
    assert x["source_crop"].dtype == torch.float32 and x["label"] == 0
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 8, 8) and batch["source_crop"].shape == (4, 4)
    unl = ImageFolderDataset(tmp_path, "train", 8, labelled=False)
    assert all(unl[i]["label"] == -1 for i in range(len(unl))) and unl.classes == ["a", "b"]


def test_flat_folder_is_unlabeled(tmp_path: Path) -> None:
    for i in range(3):
        Image.new("RGB", (5, 5)).save(tmp_path / f"{i}.jpg")
    ds = ImageFolderDataset(tmp_path, None, 4)
    assert ds.classes == [] and ds.targets == [-1, -1, -1] and ds[2]["label"] == -1


def test_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist") as e:
        ImageFolderDataset(tmp_path / "nope", "train", 8)
    assert "Expected layout" in str(e.value)
    _tree(tmp_path / "train", {"cat": 2})
    (tmp_path / "train" / "dog").mkdir()
    with pytest.raises(DatasetError, match="dog"):
        ImageFolderDataset(tmp_path, "train", 8)
    with pytest.raises(DatasetError, match=r"splits found.*train"):
        ImageFolderDataset(tmp_path, "test", 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty"):
        ImageFolderDataset(tmp_path / "empty", None, 8)


def test_corrupt_images_in_folder(tmp_path: Path) -> None:
    _tree(tmp_path, {"a": 3, "b": 2})
    Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "a" / "zz.jpg")
    data = (tmp_path / "a" / "zz.jpg").read_bytes()
    (tmp_path / "a" / "zz.jpg").write_bytes(data[: len(data) // 2])
    ds = ImageFolderDataset(tmp_path, None, 8)
    with pytest.raises(CorruptImageError, match=r"zz\.jpg"):
        ds[3]
    with pytest.warns(UserWarning, match="skipped 1 corrupt"):
        ok = ImageFolderDataset(tmp_path, None, 8, skip_corrupt=True)
    assert len(ok) == 5 and len(ok.corrupt) == 1 and ok.corrupt[0].endswith("zz.jpg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ImageFolderDataset(tmp_path, None, 8).scan_corrupt() == 1
    for i in range(len(ok)):
        ok[i]


# ------------------------------------------------------------------------------------------ seeded splits
def test_subset_by_seed_deterministic_and_disjoint(tmp_path: Path) -> None:
    _tree(tmp_path, {"a": 6, "b": 4})
    ds = ImageFolderDataset(tmp_path, None, 4)
    parts = subset_by_seed(ds, [0.7, 0.1, 0.2], seed=5)
    again = subset_by_seed(ds, [0.7, 0.1, 0.2], seed=5)
    other = subset_by_seed(ds, [0.7, 0.1, 0.2], seed=6)
    assert [p.indices for p in parts] == [p.indices for p in again]
    assert [p.indices for p in parts] != [p.indices for p in other]
    idx = [i for p in parts for i in p.indices]
    assert sorted(idx) == list(range(10)) and [len(p) for p in parts] == [7, 1, 2]
    assert parts[0].targets == [ds.targets[i] for i in parts[0].indices] and parts[0].classes == ["a", "b"]
    # identical to torch.utils.data.random_split with a seeded generator (the reference's val carve-out)
    ref = torch.utils.data.random_split(range(50), [45, 5], generator=torch.Generator().manual_seed(43))
    assert seeded_indices(50, [45, 5], 43) == [list(r.indices) for r in ref]


# ------------------------------------------------------------------------------------------ CIFAR / STL-10
def _fake_cifar(root: Path, per_batch: int = 4) -> np.ndarray:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    allx = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        allx.append(x)
        with open(d / name, "wb") as f:
            pickle.dump({b"data": x, b"labels": [int(v) for v in rng.integers(0, 10, per_batch)]}, f)
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    return np.concatenate(allx)


def test_cifar_reader(tmp_path: Path) -> None:
    allx = _fake_cifar(tmp_path)
    tv = cifar(tmp_path, "trainval", 32)
    assert len(tv) == 20 and tv.classes[3] == "c3"
    s = tv[5]
    assert s["image"].shape == (3, 32, 32) and s["image"].dtype == torch.uint8
    assert torch.equal(s["image"], torch.from_numpy(allx[5].reshape(3, 32, 32)))
    assert s["source_crop"].tolist() == [0, 0, 1, 1]
    tr, va = cifar(tmp_path, "train", 32), cifar(tmp_path, "val", 32)
    assert len(tr) + len(va) == 20 and not set(tr.indices) & set(va.indices) and len(va) == 2
    te = cifar(tmp_path, "test", 16)
    assert len(te) == 4 and te[0]["image"].shape == (3, 16, 16)
    assert len(build_dataset("cifar10", "trainval", size=32, root=str(tmp_path))) == 20
    with pytest.raises(DatasetError, match="cifar-100-python"):
        cifar(tmp_path, "train", 32, num_classes=100)


def test_stl10_reader(tmp_path: Path) -> None:
    d = tmp_path / "stl10_binary"
    d.mkdir()
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (10, 3, 96, 96), dtype=np.uint8)
    x.transpose(0, 1, 3, 2).copy().tofile(d / "train_X.bin")  # stored column-major
    np.arange(1, 11, dtype=np.uint8).tofile(d / "train_y.bin")
    x[:3].transpose(0, 1, 3, 2).copy().tofile(d / "unlabeled_X.bin")
    ds = stl10(tmp_path, "train+unlabeled", 96)
    assert len(ds) == 13 and ds[9]["label"] == 9 and ds[12]["label"] == -1
    assert torch.equal(ds[4]["image"], torch.from_numpy(x[4]))
    assert torch.equal(ds[11]["image"], torch.from_numpy(x[1]))
    assert stl10(tmp_path, "trainval", 32)[0]["image"].shape == (3, 32, 32)
    with pytest.raises(DatasetError, match=r"test_X\.bin"):
        stl10(tmp_path, "test", 96)


# ------------------------------------------------------------------------------------------ transfer sets
def test_dtd_and_pets_layouts(tmp_path: Path) -> None:
    dtd = tmp_path / "dtd"
    for c in ("banded", "zigzag"):
        (dtd / "images" / c).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (9, 7)).save(dtd / "images" / c / f"{c}_{i}.jpg")
    (dtd / "labels").mkdir()
    for k, split in enumerate(("train", "val", "test")):
        (dtd / "labels" / f"{split}1.txt").write_text(f"banded/banded_{k}.jpg\nzigzag/zigzag_{k}.jpg\n")
    ds = build_dataset("dtd", "trainval", size=8, root=str(tmp_path))
    assert len(ds) == 4 and ds.classes == ["banded", "zigzag"] and sorted(ds.targets) == [0, 0, 1, 1]

    pets = tmp_path / "oxford-iiit-pet"
    (pets / "images").mkdir(parents=True)
    (pets / "annotations").mkdir()
    lines = []
    for i in range(10):
        name = f"{'Abyssinian' if i % 2 else 'great_pyrenees'}_{i}"
        Image.new("RGB", (6, 6)).save(pets / "images" / f"{name}.jpg")
        lines.append(f"{name} {1 + i % 2} 1 1")
    (pets / "annotations" / "trainval.txt").write_text("\n".join(lines[:8]))
    (pets / "annotations" / "test.txt").write_text("\n".join(lines[8:]))
    tr, va = (build_dataset("pets", s, size=8, root=str(tmp_path)) for s in ("train", "val"))
    assert len(tr) + len(va) == 8 and not {p for p, _ in tr.samples} & {p for p, _ in va.samples}
    assert tr.classes == ["Great Pyrenees", "Abyssinian"]
    assert dataset_info("pets")["metric"] == "class-avg" and dataset_info("food101")["metric"] == "top1"


@pytest.mark.parametrize("name", sorted(TRANSFER_SETS))
def test_missing_transfer_set_shows_layout(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetError, match="Expected layout"):
        build_dataset(name, "train", size=8, root=str(tmp_path))


# ------------------------------------------------------------------------------------------ registry
def test_registry_folder_and_errors(tmp_path: Path) -> None:
    _tree(tmp_path / "one", {"a": 10, "b": 10})
    parts = {s: build_dataset(str(tmp_path / "one"), s, size=8, seed=3) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [14, 2, 4]
    paths = [{p for p, _ in parts[s].samples} for s in parts]
    assert not (paths[0] & paths[1] or paths[0] & paths[2] or paths[1] & paths[2])
    again = build_dataset(str(tmp_path / "one"), "train", size=8, seed=3)
    assert again.samples == parts["train"].samples

    _tree(tmp_path / "split" / "train", {"a": 5, "b": 5})
    _tree(tmp_path / "split" / "test", {"a": 2, "b": 2})
    assert len(build_dataset(str(tmp_path / "split"), "test", size=8)) == 4
    assert len(build_dataset(str(tmp_path / "split"), "val", size=8)) == 1

    with pytest.raises(DatasetError, match=r"Did you mean 'cifar100'"):
        build_dataset("cifar1000", "train", size=32)
    assert "synthetic" in DATASETS and "cub200" in DATASETS
    syn = build_dataset("synthetic", "test", size=32, n=10, label="size")
    assert len(syn) == 10 and 0 <= syn[0]["label"] < 4


def _img(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 5), (3, 4, 5)).save(path)


def test_food_cub_aircraft_caltech_sun_layouts(tmp_path: Path) -> None:
    food = tmp_path / "food-101"
    (food / "meta").mkdir(parents=True)
    lines = [f"{c}/{i}" for c in ("apple_pie", "sushi") for i in range(10)]
    for ln in lines:
        _img(food / "images" / f"{ln}.jpg")
    (food / "meta" / "train.txt").write_text("\n".join(lines[:8] + lines[10:18]))
    (food / "meta" / "test.txt").write_text("\n".join(lines[8:10] + lines[18:]))
    (food / "meta" / "classes.txt").write_text("apple_pie\nsushi\n")
    sizes = [len(build_dataset("food101", s, size=8, root=str(tmp_path))) for s in ("train", "val", "test")]
    assert sizes == [14, 2, 4]

    cub = tmp_path / "CUB_200_2011"
    imgs, split, labels = [], [], []
    for i in range(1, 13):
        rel = f"{1 + i % 2:03d}.Bird/{i}.jpg"
        _img(cub / "images" / rel)
        imgs.append(f"{i} {rel}")
        split.append(f"{i} {int(i <= 8)}")
        labels.append(f"{i} {1 + i % 2}")
    (cub / "images.txt").write_text("\n".join(imgs))
    (cub / "train_test_split.txt").write_text("\n".join(split))
    (cub / "image_class_labels.txt").write_text("\n".join(labels))
    tr, va, te = (build_dataset("cub200", s, size=8, root=str(tmp_path)) for s in ("train", "val", "test"))
    assert len(tr) + len(va) == 8 and len(te) == 4 and len(va) == 1
    assert len(build_dataset("cub200", "all", size=8, root=str(tmp_path))) == 12

    air = tmp_path / "fgvc-aircraft-2013b" / "data"
    for k, split in enumerate(("train", "val", "test")):
        rows = [f"{k}{i:05d} {'Boeing 707-320' if i % 2 else 'A300B4'}" for i in range(3)]
        for r in rows:
            _img(air / "images" / f"{r.split()[0]}.jpg")
        (air / f"images_variant_{split}.txt").write_text("\n".join(rows))
    ds = build_dataset("aircraft", "trainval", size=8, root=str(tmp_path))
    assert len(ds) == 6 and ds.classes == ["A300B4", "Boeing 707-320"] and ds.targets[:2] == [0, 1]

    cal = tmp_path / "caltech101" / "101_ObjectCategories"
    for c, n in (("accordion", 33), ("ant", 31), ("BACKGROUND_Google", 2)):
        for i in range(n):
            _img(cal / c / f"image_{i:04d}.jpg")
    parts = {s: build_dataset("caltech101", s, size=8, root=str(tmp_path)) for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [50, 10, 4]
    assert parts["train"].classes == ["accordion", "ant"]
    again = build_dataset("caltech101", "train", size=8, root=str(tmp_path))
    assert again.samples == parts["train"].samples

    sun = tmp_path / "SUN397"
    rows = [f"/{c[0]}/{c}/sun_{i}.jpg" for c in ("abbey", "bakery/shop") for i in range(52)]
    for r in rows:
        _img(sun / r.lstrip("/"))
    (sun / "Partitions").mkdir()
    (sun / "Partitions" / "Training_01.txt").write_text("\n".join(rows[:50] + rows[52:102]))
    (sun / "Partitions" / "Testing_01.txt").write_text("\n".join(rows[50:52] + rows[102:]))
    tr = build_dataset("sun397", "train", size=8, root=str(tmp_path))
    assert len(tr) == 80 and tr.classes == ["abbey", "bakery/shop"]
    assert len(build_dataset("sun397", "val", size=8, root=str(tmp_path))) == 20
    assert len(build_dataset("sun397", "test", size=8, root=str(tmp_path))) == 4


def test_folder_based_transfer_sets(tmp_path: Path) -> None:
    _tree(tmp_path / "mit67" / "train", {"bar": 8, "gym": 8})
    _tree(tmp_path / "mit67" / "test", {"bar": 2, "gym": 2})
    tr, va = (build_dataset("mit67", s, size=8, root=str(tmp_path)) for s in ("train", "val"))
    assert len(tr) == 14 and len(va) == 2
    for s in ("trn", "val", "tst"):
        _tree(tmp_path / "flowers-102" / s, {"rose": 2, "tulip": 2})
    assert len(build_dataset("flowers", "trainval", size=8, root=str(tmp_path))) == 8
    for s, cls in (("train", ["a", "b"]), ("val", ["c"]), ("test", ["d", "e"])):
        _tree(tmp_path / "FC100" / s, dict.fromkeys(cls, 2))
    fc = build_dataset("fc100", "test", size=8, root=str(tmp_path))
    assert len(fc) == 4 and fc.classes == ["test/d", "test/e"] and fc.targets == [0, 0, 1, 1]
    _tree(tmp_path / "plant_disease" / "train", {"x": 10})
    _tree(tmp_path / "plant_disease" / "valid", {"x": 3})
    assert len(build_dataset("plant_disease", "all", size=8, root=str(tmp_path))) == 13
    _tree(tmp_path / "stanford_cars" / "train", {"a": 10, "b": 10})
    _tree(tmp_path / "stanford_cars" / "test", {"a": 1, "b": 1})
    assert len(build_dataset("cars", "val", size=8, root=str(tmp_path))) == 2
