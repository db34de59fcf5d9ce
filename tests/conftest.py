"""Shared test set-up: deterministic, small, CPU only."""

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np
import pytest
import torch

COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]


def _write_colour_folder(root: Path, n_train: int = 12, n_test: int = 8, size: int = 16, seed: int = 0) -> Path:
    """``root/{train,test}/c<k>/*.png``: class k = noisy images of colour k (a random CNN separates them)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for c, col in enumerate(COLOURS):
            d = root / split / f"c{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = np.clip(np.array(col)[None, None] + rng.normal(0, 30, (size, size, 3)), 0, 255)
                Image.fromarray(a.astype(np.uint8)).save(d / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def colour_folder() -> Callable[..., Path]:
    """Writes a tiny three-colour ImageFolder: ``colour_folder(root, n_train=12, n_test=8, size=16, seed=0)``."""
    return _write_colour_folder


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch intra-op thread and one BLAS / OpenMP thread for a module of small problems (spin-waiting threads
    make tiny tensor ops up to 20x slower on a busy 2-core machine). A file opts in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    from threadpoolctl import threadpool_limits

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _log_to_current_stderr() -> None:
    """Lightning's log handlers keep the stderr of the test that imported Lightning; point them at this one's."""
    import logging
    import sys

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.stream = sys.stderr


@contextlib.contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    """Raise ``TimeoutError`` in the main thread after ``seconds`` (SIGALRM interrupts Python-level loops)."""

    def fail(*_: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session")
def time_limit() -> Callable[[int], contextlib.AbstractContextManager[None]]:
    """``with time_limit(20): ...`` fails with ``TimeoutError`` instead of hanging the suite."""
    return _time_limit
