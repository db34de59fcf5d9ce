"""Fuzzing the image decoder (issue 13, "Also"): random bytes, truncated and bit-flipped real images, written to
files with image extensions, through :func:`load_rgb` and the dataset's ``__getitem__`` / ``skip_corrupt`` path.

Each input either decodes to an 8-bit RGB image or raises :class:`CorruptImageError` naming the file (or is
skipped and counted with ``skip_corrupt=True``): never another exception type, a crash or a hang. Bounded to a few
hundred examples (about 10 s on one core); every example also runs under a 30 s alarm so that a hang fails the
test instead of stalling the suite.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from augself.data.errors import CorruptImageError
from augself.data.folder import IMG_EXTENSIONS, FileListDataset
from augself.data.imageio import load_rgb

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # PIL's notes on damaged TIFF tags, skip counts

FUZZ = settings(
    max_examples=200,
    deadline=timedelta(seconds=5),  # a decode of these <= 4 kB inputs takes milliseconds; 5 s means "hung"
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # the same examples on every machine and run
)


def _real_images() -> dict[str, bytes]:
    """Small real files of every format the readers accept (RGB noise, so the encoders cannot collapse them)."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    out = {}
    for fmt, ext in [("PNG", ".png"), ("JPEG", ".jpg"), ("GIF", ".gif"), ("BMP", ".bmp"), ("WEBP", ".webp")]:
        b = io.BytesIO()
        rgb.save(b, fmt)
        out[ext] = b.getvalue()
    b = io.BytesIO()
    rgb.save(b, "TIFF", compression="tiff_deflate")
    out[".tif"] = b.getvalue()
    b = io.BytesIO()
    rgb.convert("L").save(b, "JPEG", progressive=True)
    out[".jpeg"] = b.getvalue()
    return out


REAL = _real_images()
MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"II*\x00"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _write(folder: Path, data: bytes, ext: str) -> Path:
    p = folder / f"x{ext}"
    p.write_bytes(data)
    return p


def _check_decoder(path: Path, time_limit: Callable[[int], Any]) -> None:
    """``load_rgb`` and the dataset paths on ``path``: a decoded RGB image or a CorruptImageError naming it."""
    with time_limit(30):
        try:
            img = load_rgb(path, draft_size=8)
        except CorruptImageError as e:
            assert e.path == str(path) and str(path) in str(e) and "--skip-corrupt" in str(e)
            decodable = False
        else:
            assert img.mode == "RGB" and min(img.size) >= 1
            decodable = True
        ds = FileListDataset([(str(path), 0)], size=8)
        if decodable:
            item = ds[0]
            assert item["image"].dtype == torch.uint8 and item["image"].shape[0] == 3
        else:
            with pytest.raises(CorruptImageError):
                ds[0]
        skipping = FileListDataset([(str(path), 0)], size=8, skip_corrupt=True)
        assert len(skipping) == (1 if decodable else 0) and skipping.corrupt == ([] if decodable else [str(path)])


@FUZZ
@given(prefix=st.sampled_from(MAGIC), body=st.binary(max_size=2048), ext=st.sampled_from(IMG_EXTENSIONS))
def test_random_bytes(folder: Path, time_limit: Callable[[int], Any], prefix: bytes, body: bytes, ext: str) -> None:
    _check_decoder(_write(folder, prefix + body, ext), time_limit)


@FUZZ
@given(
    src=st.sampled_from(sorted(REAL)),
    cut=st.floats(0.0, 1.0, exclude_max=True),
    flips=st.lists(
        st.tuples(st.sampled_from(["head", "tail", "any"]), st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)),
        max_size=6,
    ),
    ext=st.sampled_from(IMG_EXTENSIONS),
)
# found by this test: a TIFF whose next-IFD offset (8 bytes before the end) points into pixel data gave PIL's
# TypeError("Missing dimensions"), which escaped as a traceback before load_rgb mapped every decode failure
@example(src=".tif", cut=0.0, flips=[("tail", 8 / 64, 10)], ext=".tif")
def test_truncated_and_damaged_real_images(
    folder: Path, time_limit: Callable[[int], Any], src: str, cut: float, flips: list[tuple[str, float, int]], ext: str
) -> None:
    data = bytearray(REAL[src])
    n = len(data)
    for region, pos, value in flips:  # damage a few bytes, mostly where the headers are (TIFF: its IFD at the end)
        at = {"head": int(pos * 64), "tail": n - 1 - int(pos * 64), "any": int(pos * n)}[region]
        data[at] = value
    if cut > 0:  # truncate (0: keep the whole file)
        data = data[: int(cut * len(data))]
    _check_decoder(_write(folder, bytes(data), ext), time_limit)


def test_intact_real_images_decode(folder: Path) -> None:
    """The control: every undamaged file decodes (so the fuzz tests above do exercise real decoders)."""
    for ext, data in REAL.items():
        img = load_rgb(_write(folder, data, ext))
        assert img.size == (24, 20) and img.mode == "RGB"


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def _bmp_header(width: int, height: int) -> bytes:
    dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(dib) + 64, 0, 0, 14 + len(dib)) + dib + b"\x00" * 64


@pytest.mark.parametrize(
    ("ext", "data"),
    [
        (".png", _png_header(100_000, 100_000)),  # 10^10 pixels declared in a 100-byte file
        (".png", _png_header(20_000, 10_000)),  # 2 * 10^8: just over twice PIL.Image.MAX_IMAGE_PIXELS
        (".bmp", _bmp_header(60_000, 60_000)),
    ],
)
def test_decompression_bomb_is_a_clear_error_not_a_memory_error(
    folder: Path, time_limit: Callable[[int], Any], ext: str, data: bytes
) -> None:
    path = _write(folder, data, ext)
    with time_limit(30), pytest.raises(CorruptImageError, match=r"decompression bomb|DecompressionBomb"):
        load_rgb(path)
    with time_limit(30):
        ds = FileListDataset([(str(path), 0)], size=8, skip_corrupt=True)
    assert len(ds) == 0 and ds.corrupt == [str(path)]


def test_memory_error_while_decoding_is_a_clear_error(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An image under the bomb limit that still does not fit in memory: a CorruptImageError, not a MemoryError."""
    path = _write(folder, REAL[".png"], ".png")

    def no_memory(self: Image.Image) -> None:
        raise MemoryError

    monkeypatch.setattr(Image.Image, "load", no_memory)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", no_memory)
    with pytest.raises(CorruptImageError, match="too large to decode"):
        load_rgb(path)
