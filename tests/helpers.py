"""Constants shared by several test files (``from helpers import TINY_RUN``; fixtures live in ``conftest.py``)."""

from __future__ import annotations

TINY_RUN: tuple[str, ...] = (
    "data.name=synthetic",
    "data.n=64",
    "data.size=16",
    "data.num_workers=0",
    "augment.size=16",
    "model.backbone=small_cnn",
    "trainer.batch_size=32",
    "trainer.accelerator=cpu",
    "trainer.devices=1",
    "trainer.progress_bar=false",
)
"""Overrides of a pretraining run that takes seconds on a CPU: 64 synthetic 16 px images, the small CNN, batches of
32 on one CPU device; each test file adds its own epochs / logging / method settings."""
