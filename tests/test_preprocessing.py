"""Evaluation pixels equal torchvision's; the draft decode is opt-in; CIFAR / STL-10 readers equal torchvision's.

Issue 14 items 2 and 11. The evaluation path (``FeatureSource`` -> reader -> ``extract_features``) must give exactly
``Compose([Resize(S), CenterCrop(S), ToTensor(), Normalize(mean, std)])(Image.open(p).convert("RGB"))``: the same
uint8 pixels, then the same float32 operations in the same order (``/255``, ``- mean``, ``/ std``, each correctly
rounded by IEEE 754), so the tensors are compared for equality, not closeness.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image

from augself.augment.config import ViewConfig
from augself.cli import main
from augself.config import ConfigError, load_config
from augself.data.folder import FileListDataset
from augself.data.registry import build_dataset, use_crop_mode
from augself.data.torchvision_sets import cifar, stl10
from augself.eval.awareness import load_images
from augself.eval.backbone_loading import LoadedBackbone, Preprocessing
from augself.eval.eval_data import FeatureSource, resolve_data
from augself.models import build_backbone, save_backbone

S = 32
MEAN, STD = (0.43, 0.42, 0.39), (0.27, 0.26, 0.27)  # the reference's STL-10 statistics (datasets.py)
# (W, H): square at 2x (draft decode would halve it), large photos (draft would pick 1/4 .. 1/8), odd and half-pixel
# centre margins (torchvision rounds half to even: margin 1 -> offset 0, margin 3 -> offset 2), extreme aspect
# ratios, an image already at S x S, and tiny images that are upscaled.
JPEG_SIZES = [(64, 64), (300, 200), (200, 300), (257, 129), (97, 33), (33, 97), (33, 32), (35, 32), (20, 300)]
JPEG_SIZES += [(1000, 40), (32, 32), (3, 5), (1, 1), (256, 256)]


def _photo(w: int, h: int, seed: int) -> np.ndarray:
    """Smooth colour gradients plus texture: JPEG-compressible, and detailed enough for draft decoding to show."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([x / max(w, 1), y / max(h, 1), (x + y) / max(w + h, 1)], -1) * 200
    tex = 40 * np.sin(x[..., None] * rng.uniform(0.2, 0.9, 3) + y[..., None] * rng.uniform(0.2, 0.9, 3))
    return np.clip(base + tex + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two class folders of JPEGs (sizes above) and PNG / JPEG files in other PIL modes."""
    root = tmp_path_factory.mktemp("eval_folder")
    for c in ("a", "b"):
        (root / c).mkdir()
    for i, (w, h) in enumerate(JPEG_SIZES):
        Image.fromarray(_photo(w, h, i)).save(root / "ab"[i % 2] / f"rgb_{w}x{h}.jpg", quality=90)
    arr = _photo(90, 60, 99)
    Image.fromarray(arr).convert("L").save(root / "a" / "gray.jpg", quality=90)
    Image.fromarray(arr).convert("CMYK").save(root / "b" / "cmyk.jpg", quality=90)
    rgba = Image.fromarray(arr).convert("RGBA")
    rgba.putalpha(Image.fromarray(arr[..., 0]))
    rgba.save(root / "a" / "rgba.png")
    Image.fromarray(arr).convert("P", palette=Image.Palette.ADAPTIVE).save(root / "b" / "palette.png")
    Image.fromarray(arr).convert("LA").save(root / "a" / "la.png")
    return root


def _torchvision(path: str, interpolation: T.InterpolationMode = T.InterpolationMode.BILINEAR) -> torch.Tensor:
    tf = T.Compose([T.Resize(S, interpolation=interpolation), T.CenterCrop(S), T.ToTensor(), T.Normalize(MEAN, STD)])
    with open(path, "rb") as f:
        img = Image.open(f).convert("RGB")  # torchvision's default_loader / the reference's ImageList
    return tf(img)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_eval_features_equal_torchvision_preprocessing(folder: Path, interpolation: str) -> None:
    """The whole evaluation path with an identity backbone: its features are the preprocessed images."""
    lb = LoadedBackbone(folder / "none.pt", None, torch.nn.Flatten(), Preprocessing(S, MEAN, STD, "test"), "id")
    src = FeatureSource(lb, resolve_data(folder), device="cpu", progress=False, interpolation=interpolation)
    x, y = src.get("all")
    ds = src.dataset("all")
    assert len(ds) == len(JPEG_SIZES) + 5 and x.shape == (len(ds), 3 * S * S)
    mode = T.InterpolationMode(interpolation)
    for i, (path, label) in enumerate(ds.samples):
        want = _torchvision(path, mode)
        assert int(y[i]) == label
        assert torch.equal(x[i], want.flatten()), (Path(path).name, float((x[i] - want.flatten()).abs().max()))


def test_default_interpolation_is_bicubic_and_keys_the_cache(folder: Path, tmp_path: Path) -> None:
    """Evaluation resizes with bicubic unless told otherwise (the reference's ``Resize(S, BICUBIC)``); features cached
    with one filter are never served for the other, and each result records its filter."""
    lb = LoadedBackbone(folder / "none.pt", None, torch.nn.Flatten(), Preprocessing(S, MEAN, STD, "test"), "id")
    assert lb.pre.interpolation == "bicubic"
    cache = tmp_path / "cache"
    sources = {
        mode: FeatureSource(lb, resolve_data(folder), device="cpu", progress=False, cache=cache, interpolation=given)
        for mode, given in (("bicubic", None), ("bilinear", "bilinear"))
    }
    feats = {mode: src.get("all")[0] for mode, src in sources.items()}  # bicubic first: it fills the cache
    for mode, src in sources.items():
        assert src.interpolation == mode
        pre = src.preprocessing()
        assert pre["interpolation"] == mode and mode in pre["resize"] and pre["size"] == S
        for i, (path, _) in enumerate(src.dataset("all").samples):
            assert torch.equal(feats[mode][i], _torchvision(path, T.InterpolationMode(mode)).flatten()), (mode, path)
    assert not torch.equal(feats["bicubic"], feats["bilinear"])  # images that need resizing: the filters differ


def _eval_run(run: Path) -> Path:
    """A run directory: a random small CNN ``backbone.pt`` and the ``config.yaml`` naming its view size ``S``."""
    torch.manual_seed(0)
    save_backbone(build_backbone("small_cnn", widths=(8, 16)), run / "backbone.pt")
    (run / "config.yaml").write_text(f"augment:\n  size: {S}\n  views: [{{}}, {{}}]\n")
    return run


def test_interpolation_option_of_every_eval_command(folder: Path, tmp_path: Path) -> None:
    """``--interpolation`` of ``augself eval knn | linear | fewshot | awareness`` and ``transfer``, and the suite key
    ``interpolation`` (per dataset, else top level; the flag overrides both): recorded with each result."""
    run = _eval_run(tmp_path / "run")
    common = ["--backbone", str(run), "--data", str(folder), "--no-progress"]
    for flag, want in (([], "bicubic"), (["--interpolation", "bilinear"], "bilinear")):
        out = tmp_path / f"knn-{want}.json"
        assert main(["eval", "knn", *common, "--k", "3", "--out", str(out), *flag]) == 0
        assert json.loads(out.read_text())["preprocessing"]["interpolation"] == want
    aware = tmp_path / "aware"  # the awareness report reads >= 10 images of a test split
    for split, n in (("train", 2), ("test", 10)):
        for i in range(n):
            (aware / split / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
            Image.fromarray(_photo(40, 24, 100 + i)).save(aware / split / "ab"[i % 2] / f"{i}.png")
    images = {m: load_images(str(aware), size=S, n=10, interpolation=m) for m in ("bicubic", "bilinear")}
    assert torch.equal(load_images(str(aware), size=S, n=10), images["bicubic"])
    assert not torch.equal(images["bicubic"], images["bilinear"])
    out = tmp_path / "aware-out"
    argv = ["eval", "awareness", "--backbone", str(run), "--data", str(aware), "--n", "10", "--no-progress"]
    assert main([*argv, "--out", str(out), "--interpolation", "bilinear"]) == 0
    assert json.loads((out / "awareness.json").read_text())["runs"][0]["preprocessing"]["interpolation"] == "bilinear"

    suite = tmp_path / "suite.yaml"
    own = {"name": "own", "data": str(folder), "protocols": ["knn"], "interpolation": "bicubic"}
    top = {"name": "top", "data": str(folder), "protocols": ["knn"]}
    suite.write_text(json.dumps({"interpolation": "bilinear", "defaults": {"knn": {"k": 3}}, "datasets": [own, top]}))
    for flag, want in (([], ("bicubic", "bilinear")), (["--interpolation", "bicubic"], ("bicubic", "bicubic"))):
        out = tmp_path / f"transfer{len(flag)}"
        argv = ["transfer", "--suite", str(suite), "--runs", str(run), "--out", str(out), "--no-progress", *flag]
        assert main(argv) == 0
        results = json.loads((out / "results.json").read_text())["results"]
        assert {r["dataset"]: r["preprocessing"]["interpolation"] for r in results} == dict(
            zip(("own", "top"), want, strict=True)
        )


@pytest.mark.parametrize(
    ("command", "suite_key"),
    [
        (["eval", "linear", "--interpolation", "bicubc"], None),
        (["eval", "fewshot", "--interpolation", "nearest"], None),
        (["eval", "awareness", "--interpolation", "lanczos"], None),
        (["transfer", "--interpolation", "cubic"], None),
        (["transfer"], "linear"),
    ],
)
def test_bad_interpolation_is_one_line(
    command: list[str], suite_key: str | None, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad filter (flag or suite key): one line on stderr naming the valid ones, exit 2, nothing written."""
    run = _eval_run(tmp_path / "run")
    out = tmp_path / "out"
    if command[0] == "transfer":
        suite = tmp_path / "suite.yaml"
        entry = {"data": str(folder), "protocols": ["knn"]}
        suite.write_text(json.dumps({"datasets": [entry], **({"interpolation": suite_key} if suite_key else {})}))
        argv = [*command, "--suite", str(suite), "--runs", str(run), "--out", str(out)]
    else:
        argv = [*command, "--backbone", str(run), "--data", str(folder), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "interpolation" in err and "bicubic" in err, err
    assert not out.exists()


def test_source_crop_is_the_region_torchvision_keeps(folder: Path) -> None:
    """``source_crop`` is the centre crop's box in the resized image, as fractions of the original."""
    for name, (top, left, h, w) in {
        "rgb_97x33.jpg": (0, 31 / 94, 1, 32 / 94),  # resized to 94 x 32: margin 62 -> 31
        "rgb_33x32.jpg": (0, 0, 1, 32 / 33),  # margin 1 -> round(0.5) = 0
        "rgb_35x32.jpg": (0, 2 / 35, 1, 32 / 35),  # margin 3 -> round(1.5) = 2
        "rgb_3x5.jpg": (10 / 53, 0, 32 / 53, 1),  # upscaled to 32 x int(32 * 5 / 3) = 53: margin 21 -> 10
    }.items():
        path = next(folder.rglob(name))
        got = FileListDataset([(str(path), 0)], S)[0]["source_crop"]
        torch.testing.assert_close(got, torch.tensor([top, left, h, w]), rtol=0, atol=0)


def test_draft_decode_is_opt_in_and_changes_pixels(folder: Path) -> None:
    """Readers and pretraining default to the exact decode; ``draft`` (old ``reduced_decode=True``) is asked for."""
    path = str(next(folder.rglob("rgb_256x256.jpg")))  # 8x the target: draft decodes at 1/8
    want = (_torchvision(path) * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)) * 255
    exact = FileListDataset([(path, 0)], S)
    assert exact.decode == "exact"
    torch.testing.assert_close(exact[0]["image"].float(), want, rtol=0, atol=1e-3)  # float round trip only
    views = [ViewConfig(size=S)] * 2
    assert use_crop_mode(FileListDataset([(path, 0)], S), "centre_square", views).decode == "exact"
    for flag in ("draft", True):
        draft = use_crop_mode(FileListDataset([(path, 0)], S), "centre_square", views, flag)
        assert draft.decode == "draft"
        assert (draft[0]["image"].float() - want).abs().max() >= 2  # a different image, not rounding
    assert use_crop_mode(FileListDataset([(path, 0)], S), "full_image", views, "draft").decode == "draft"
    assert build_dataset(str(folder), "all", size=S).decode == "exact"  # what evaluation builds


def test_decode_config_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``data.decode`` is the one field; the old boolean ``data.reduced_decode`` is only read (files, overrides, the
    config a checkpoint stores), never kept."""
    import augself.config_aliases

    assert load_config(None, []).data.decode == "exact"
    assert load_config(None, ["data.decode=draft"]).data.decode == "draft"
    monkeypatch.setattr(augself.config_aliases, "_warned", set())  # as in a fresh process
    with pytest.warns(augself.config_aliases.ConfigAliasWarning, match="reduced_decode"):
        old = load_config(None, ["data.reduced_decode=true"])  # the earlier key keeps working
    assert old.data.decode == "draft" and not hasattr(old.data, "reduced_decode")
    assert load_config(None, ["data.decode=draft", "data.reduced_decode=false"]).data.decode == "exact"  # later wins
    stored = tmp_path / "config.yaml"  # what augself wrote before: both keys, in agreement
    stored.write_text("data: {decode: draft, reduced_decode: true}\n")
    assert load_config(stored, []).data.decode == "draft"
    from augself.config import to_dict
    from augself.train.checkpointing import check_resume_config

    now = to_dict(load_config(None, []))
    before = {**now, "data": {**now["data"], "reduced_decode": False}}  # a checkpoint of an earlier version
    assert check_resume_config({"hyper_parameters": {"config": before}}, now, None, "last.ckpt") == []
    before["data"].update(decode="draft", reduced_decode=True)  # ... of a draft run: a different run
    with pytest.raises(ConfigError, match=r"data\.decode: 'draft' in the checkpoint"):
        check_resume_config({"hyper_parameters": {"config": before}}, now, None, "last.ckpt")
    for bad in ("data={decode: exact, reduced_decode: true}", "data.reduced_decode=maybe", "data.decode=fast"):
        with pytest.raises(ConfigError) as e:
            load_config(None, [bad])
        assert "\n" not in str(e.value) and "decode" in str(e.value), str(e.value)


# ---- CIFAR / STL-10: the same samples as torchvision.datasets (item 11) ----------------------------------------------
def _no_md5(monkeypatch: pytest.MonkeyPatch, module: object) -> None:
    """torchvision checks the official files' MD5 sums; these fixtures are generated, so skip that check."""
    monkeypatch.setattr(module, "check_integrity", lambda *args, **kwargs: True)


def _resized(img: Image.Image, size: int) -> torch.Tensor:
    return T.Compose([T.Resize(size), T.CenterCrop(size), T.PILToTensor()])(img)


def test_cifar_reader_equals_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8), "labels": [1, 7, 3]}  # str keys: as the
        with open(d / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)  # official (Python 2) batches read with latin1; fixture written here
    with open(d / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f, protocol=2)
    _no_md5(monkeypatch, torchvision.datasets.cifar)
    for train, split in ((True, "trainval"), (False, "test")):
        ref = torchvision.datasets.CIFAR10(str(tmp_path), train=train, download=False)
        for size in (32, 96, 20):  # native, the STL-10 backbones' 96 px (reference section 6.1), downscaled
            ours = cifar(tmp_path, split, size)
            assert len(ours) == len(ref) and ours.classes == ref.classes and ours.targets == ref.targets
            for i in range(len(ref)):
                assert torch.equal(ours[i]["image"], _resized(ref[i][0], size)), (split, size, i)


def test_stl10_reader_equals_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "stl10_binary"
    d.mkdir()
    rng = np.random.default_rng(1)
    for part, n in (("train", 4), ("test", 3), ("unlabeled", 2)):
        rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8).tofile(d / f"{part}_X.bin")
        if part != "unlabeled":
            rng.integers(1, 11, n, dtype=np.uint8).tofile(d / f"{part}_y.bin")
    (d / "class_names.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    _no_md5(monkeypatch, torchvision.datasets.stl10)
    for split in ("train", "test", "unlabeled", "train+unlabeled"):
        ref = torchvision.datasets.STL10(str(tmp_path), split=split, download=False)
        for size in (96, 32):
            ours = stl10(tmp_path, "trainval" if split == "train" else split, size)
            assert len(ours) == len(ref) and ours.classes == ref.classes
            assert ours.targets == [-1 if y is None else y for y in ref.labels.tolist()]
            for i in range(len(ref)):
                assert torch.equal(ours[i]["image"], _resized(ref[i][0], size)), (split, size, i)


def test_stl10_missing_file_is_one_error_naming_the_layout(tmp_path: Path) -> None:
    """torchvision: ``RuntimeError: Dataset not found or corrupted. You can use download=True``; ours names the file."""
    (tmp_path / "stl10_binary").mkdir()
    with pytest.raises(ValueError) as e:
        stl10(tmp_path, "test", 96)
    first, *rest = str(e.value).splitlines()
    assert "test_X.bin" in first and "test_y.bin" in first and rest[0] == "Expected layout:"
    assert any("stl10_binary" in line for line in rest)
