"""Linked folders in image-folder datasets (issue 13, item 4): loops are skipped and reported, each real folder
is read once, and a link to a folder elsewhere on disk is still followed."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from augself.data.folder import ImageFolderDataset, find_images
from augself.data.registry import build_dataset
from augself.data.walk import list_class_dirs

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink") or sys.platform == "win32", reason="needs symlinks")


def _images(folder: Path, n: int, value: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(folder / f"{i}.png")


def _two_classes(root: Path) -> Path:
    """``root/a`` (20 black images) and ``root/b`` (20 white images): 40 images, classes 0 and 1."""
    _images(root / "a", 20, 0)
    _images(root / "b", 20, 255)
    return root


def _labels_by_folder(ds: ImageFolderDataset) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for path, y in ds.samples:
        out.setdefault(Path(os.path.realpath(path)).parent.name, set()).add(y)
    return out


def test_link_to_parent_gives_exactly_the_40_images_with_their_labels(tmp_path: Path) -> None:
    root = _two_classes(tmp_path / "d")
    os.symlink("..", root / "a" / "up")  # the probe: 40 images became 1640, b's images labelled a
    with pytest.warns(UserWarning, match=r"skipped 1 linked folder\(s\).*/d/a/up' -> '.*/d'\)") as warned:
        ds = ImageFolderDataset(root, None, 4)
    assert len(ds) == 40 and ds.classes == ["a", "b"]
    assert _labels_by_folder(ds) == {"a": {0}, "b": {1}}
    assert len(set(os.path.realpath(p) for p, _ in ds.samples)) == 40
    assert sum("linked folder" in str(w.message) for w in warned) == 1  # one line, with a count and an example


def test_two_links_to_dot_terminate(tmp_path: Path, time_limit: Callable[[int], Any]) -> None:
    """Two links to ``.`` made ``os.walk(followlinks=True)`` run forever; now it ends at once (time-limited)."""
    root = _two_classes(tmp_path / "d")
    for name in ("x", "y"):
        os.symlink(".", root / "a" / name)
    os.symlink(".", root / "loop1")
    os.symlink(".", root / "loop2")
    with time_limit(20), warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        ds = ImageFolderDataset(root, None, 4)
        flat = find_images(root)
    assert len(ds) == 40 and ds.classes == ["a", "b"]  # loop1 / loop2 are not classes
    assert len(flat) == 40
    assert len(warned) == 2  # one line per walk: the dataset's and the flat one's


def test_link_to_a_folder_outside_is_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "disk2" / "more_a"
    _images(elsewhere, 5, 0)
    _images(tmp_path / "disk2" / "all_b", 7, 255)
    root = _two_classes(tmp_path / "d")
    os.symlink(elsewhere, root / "a" / "extra")  # a folder inside a class linking to another disk
    os.symlink(tmp_path / "disk2" / "all_b", root / "c")  # a whole class folder that is a link
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is skipped, nothing reported
        ds = ImageFolderDataset(root, None, 4)
    assert ds.classes == ["a", "b", "c"] and len(ds) == 20 + 5 + 20 + 7
    assert sum(1 for p, y in ds.samples if y == 0 and "/extra/" in p) == 5
    assert sum(1 for _, y in ds.samples if y == 2) == 7


def test_link_into_another_class_and_duplicate_links_are_skipped(tmp_path: Path) -> None:
    root = _two_classes(tmp_path / "d")
    _images(root / "b" / "sub", 3, 255)
    os.symlink(root / "b" / "sub", root / "a" / "borrowed")  # b's images would be labelled a as well
    os.symlink(root / "a", root / "a_again")  # the same real folder as a second class
    os.symlink(root / "a" / "x_missing", root / "a" / "broken")  # a broken link: ignored
    with pytest.warns(UserWarning, match=r"skipped 2 linked folder\(s\)"):
        ds = ImageFolderDataset(root, None, 4)
    assert ds.classes == ["a", "b"] and len(ds) == 43
    assert _labels_by_folder(ds) == {"a": {0}, "b": {1}, "sub": {1}}
    assert list_class_dirs(root / "a") == ["borrowed"]  # read on its own (no other class), the link is fine


def test_walk_reads_each_real_folder_once(tmp_path: Path) -> None:
    root = tmp_path / "flat"
    _images(root / "one", 4)
    os.symlink(root / "one", root / "two")  # inside the tree: the same real folder twice
    with pytest.warns(UserWarning, match="skipped 1 linked folder"):
        files = find_images(root)
    assert len(files) == 4


def test_eval_and_registry_use_the_safe_walk(tmp_path: Path) -> None:
    """The readers behind ``augself eval`` / ``transfer`` (``build_dataset`` on a folder, named sets)."""
    root = _two_classes(tmp_path / "d" / "train")
    _two_classes(tmp_path / "d" / "test")
    os.symlink("..", root / "a" / "up")
    with pytest.warns(UserWarning, match="linked folder"):
        train = build_dataset(str(tmp_path / "d"), "trainval", size=4)
    assert len(train) == 40
    for s in ("trn", "val", "tst"):
        _two_classes(tmp_path / "flowers-102" / s)
    os.symlink("../..", tmp_path / "flowers-102" / "trn" / "a" / "loop")
    os.symlink(".", tmp_path / "flowers-102" / "trn" / "self")
    with pytest.warns(UserWarning, match="linked folder"):
        fl = build_dataset("flowers", "train", size=4, root=str(tmp_path))
    assert len(fl) == 40 and fl.classes == ["a", "b"]
    cal = tmp_path / "caltech101" / "101_ObjectCategories"
    _two_classes(cal)
    os.symlink(".", cal / "loop")
    with pytest.warns(UserWarning, match="linked folder"):
        c = build_dataset("caltech101", "all", size=4, root=str(tmp_path))
    assert c.classes == ["a", "b"] and len(c) == 40
