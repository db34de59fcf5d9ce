"""``data.split: auto``: an un-split image folder is pretrained on every image, and the run says how many it uses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from augself.cli import main
from augself.data.registry import build_dataset, pretrain_split

TINY = [
    "augment.size=16",
    "model.backbone=small_cnn",
    "trainer.progress_bar=false",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "monitor.online_probe=false",
    "monitor.every_n_epochs=0",
]


def _unsplit(root: Path, colour_folder: Callable[..., Path]) -> Path:
    """A ``<root>/<class>/*.png`` folder (no train/test) with every image of a colour folder's train split."""
    split = colour_folder(root / "split", n_train=12, n_test=0, size=16)
    return split / "train"


def test_auto_split_resolution(tmp_path: Path, colour_folder: Callable[..., Path]) -> None:
    unsplit = _unsplit(tmp_path, colour_folder)
    pre_split = tmp_path / "split"
    assert pretrain_split(str(unsplit), "auto") == "all"
    assert pretrain_split(str(pre_split), "auto") == "train"
    assert pretrain_split("synthetic", "auto") == "train"
    assert pretrain_split("cifar10", "auto") == "train"
    assert pretrain_split(str(unsplit), "train") == "train"  # an explicit split is kept
    n = len(build_dataset(str(unsplit), "all", size=8))
    assert n == 36 and len(build_dataset(str(unsplit), "train", size=8)) < n  # the seeded 70 % share


@pytest.mark.parametrize(("split", "resolved"), [("auto", "all"), ("train", "train")])
def test_pretrain_on_unsplit_folder_uses_every_image(
    split: str, resolved: str, tmp_path: Path, colour_folder: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    unsplit = _unsplit(tmp_path, colour_folder)
    expected = len(build_dataset(str(unsplit), resolved, size=16, seed=0))  # all 36, or the seeded 70 % share
    args = ["pretrain", "--out", str(tmp_path / "run"), *TINY, f"data.name={unsplit}", "data.size=16"]
    args += ["data.num_workers=0", f"data.split={split}", "trainer.batch_size=8", "trainer.max_steps=1"]
    assert main(args) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("data: ")]
    assert len(lines) == 1 and lines[0].startswith(f"data: {expected} images of "), lines
    assert ("un-split folder: every image" in lines[0]) == (split == "auto")
