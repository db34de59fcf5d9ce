"""Shared test set-up: deterministic, small, CPU only."""

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _log_to_current_stderr() -> None:
    """Lightning's log handlers keep the stderr of the test that imported Lightning; point them at this one's."""
    import logging
    import sys

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.stream = sys.stderr
