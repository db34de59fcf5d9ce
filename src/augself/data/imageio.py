"""Robust image decoding to 8-bit RGB and resizing to a fixed square source size.

Conversion rules of :func:`load_rgb` (every PIL mode ends as 8-bit ``RGB``):

* ``1`` / ``L`` / ``P`` / ``CMYK`` / ``YCbCr``: PIL's own conversion (palette looked up, CMYK naive).
* ``LA`` / ``RGBA`` / ``PA`` (any alpha): the alpha channel is **dropped**, not composited, exactly as
  torchvision's ``ImageFolder`` loader (``img.convert("RGB")``) used by the reference code does.
* ``I;16*`` (16-bit) and ``I`` (32-bit int, how PIL opens many 16-bit PNG/TIFF): values are read as
  16-bit intensities and scaled by 255/65535 (rounded), so 16-bit mid-grey 32768 becomes 128.
  PIL's ``convert("L")`` would clip them instead, turning almost every pixel white.
* ``F`` (float): values in [0, 1] are scaled by 255, otherwise taken as 0..255; both clipped.
* Animated images (GIF/WebP): the first frame.

Orientation metadata (EXIF) is ignored, like torchvision.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from augself.data.errors import CorruptImageError

__all__ = ["crop_box", "draft_factor", "load_rgb", "resized_crops", "to_rgb", "to_source"]


def _gray_to_rgb(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(a.astype(np.uint8))).convert("RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert an opened PIL image of any mode to 8-bit RGB (rules in the module docstring)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(img).astype(np.float64)
        if a.ndim == 3:  # rare multi-channel 16-bit decoders
            a = a[..., :3]
        a = np.clip(a, 0, 65535) * (255.0 / 65535.0)
        a = np.floor(a + 0.5)
        if a.ndim == 3:
            return Image.fromarray(np.ascontiguousarray(a.astype(np.uint8)), "RGB")
        return _gray_to_rgb(a)
    if mode == "F":
        a = np.asarray(img).astype(np.float64)
        finite = a[np.isfinite(a)]
        scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0
        a = np.nan_to_num(a, nan=0.0, posinf=255.0 / scale, neginf=0.0)
        return _gray_to_rgb(np.clip(np.floor(a * scale + 0.5), 0, 255))
    if mode in ("RGBA", "RGBa", "RGBX"):
        return img.convert("RGB")  # drops alpha
    if mode in ("LA", "La", "1", "L"):
        return img.convert("L").convert("RGB")
    if mode in ("P", "PA"):
        return img.convert("RGBA").convert("RGB")
    return img.convert("RGB")


def load_rgb(path: str | os.PathLike[str], draft_size: int | None = None) -> Image.Image:
    """Decode ``path`` fully into an 8-bit RGB PIL image.

    ``draft_size`` lets JPEG decoding shrink by a power of two while both sides stay >= ``draft_size``
    (much faster for large photos; the crop fractions of :func:`to_source` are unaffected).
    Raises :class:`CorruptImageError` naming the file if it is truncated, corrupt, not an image, or declares more
    than twice ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (PIL's decompression-bomb limit, about 179 M pixels);
    ``FileNotFoundError`` / ``PermissionError`` / ``IsADirectoryError`` pass through unchanged.
    """
    path = str(path)
    with _decode_errors(path), Image.open(path) as im:
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)
        if draft_size is not None and im.format == "JPEG":
            w, h = im.size
            f = max(1, min(w, h) // max(1, draft_size))
            if f >= 2:
                im.draft("RGB", (max(1, w // f), max(1, h // f)))
        im.load()
        return to_rgb(im).copy()


def crop_box(width: int, height: int, size: int) -> tuple[float, float, float, float]:
    """Centre crop after resizing the short side to ``size``, as fractions [top, left, h, w] of the image.

    The resized image has short side exactly ``size`` and long side ``round(long * size / short)``
    (at least ``size``); the square is centred with the floor of the margin on the top/left.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image has an empty side: {width}x{height}")
    if width <= height:
        new_w, new_h = size, max(size, round(height * size / width))
    else:
        new_w, new_h = max(size, round(width * size / height)), size
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return top / new_h, left / new_w, size / new_h, size / new_w


def to_source(img: Image.Image, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize the short side to ``size`` (bilinear, antialiased) and centre-crop a square.

    Returns ``(uint8 tensor (3, size, size), source_crop float tensor (4,))`` where ``source_crop`` is
    ``[top, left, height, width]`` of the kept region as fractions of the original image. The resampling
    reads exactly that region (PIL ``resize(box=...)``), so the fractions are exact, not rounded to pixels
    of the original. Smaller images are upscaled.
    """
    if img.mode != "RGB":
        img = to_rgb(img)
    w, h = img.size
    t, l, hh, ww = crop_box(w, h, size)
    if (w, h) != (size, size):
        box = (l * w, t * h, (l + ww) * w, (t + hh) * h)
        img = img.resize((size, size), Image.BILINEAR, box=box, reducing_gap=None)
    arr = np.asarray(img, dtype=np.uint8)
    image = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    return image, torch.tensor([t, l, hh, ww], dtype=torch.float32)


def is_image_file(path: str | os.PathLike[str], extensions: tuple[str, ...]) -> bool:
    """True if ``path``'s suffix (case-insensitive) is one of ``extensions`` (with dots) and not hidden."""
    p = Path(path)
    return not p.name.startswith(".") and p.suffix.lower() in extensions


# ---- full-image RandomResizedCrop in the DataLoader worker ---------------------------------------------------
DRAFT_FACTORS: tuple[int, ...] = (8, 4, 2)
"""JPEG DCT scaling factors PIL's ``draft`` can decode at (libjpeg: 1/8, 1/4, 1/2)."""

Box = tuple[int, int, int, int]
"""``(top, left, height, width)`` in integer pixels of the original image (torchvision's ``(i, j, h, w)``)."""


def draft_factor(boxes: Sequence[Box], sizes: Sequence[int]) -> int:
    """Largest JPEG reduction ``s`` in :data:`DRAFT_FACTORS` (else 1) at which every box still spans at least its
    output size (``floor(h / s) >= S`` and ``floor(w / s) >= S``): decoding at 1/s then only drops detail that the
    antialiased downscale to S would remove anyway."""
    for s in DRAFT_FACTORS:
        if all(h // s >= S and w // s >= S for (_, _, h, w), S in zip(boxes, sizes, strict=True)):
            return s
    return 1


def resized_crops(
    path: str | os.PathLike[str],
    sample_boxes: Callable[[int, int], Sequence[Box]],
    sizes: Sequence[int],
    reduced_decode: bool = False,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Decode ``path`` once and cut one RandomResizedCrop view per box from the **whole original image**.

    ``sample_boxes(H, W)`` gets the original size (read from the header) and returns one box per view; view v is
    resized to ``sizes[v]`` x ``sizes[v]`` with antialiased bilinear interpolation on uint8 (``F.interpolate(...,
    antialias=True)``, torch's uint8 kernel: what torchvision's ``RandomResizedCrop`` runs on uint8 tensors, within
    a few grey levels of its PIL path). Returns ``(views, crops)``: uint8 (3, S_v, S_v) tensors and float (V, 4)
    ``[top, left, h, w]`` fractions of the original image (the reference's ``[i/H, j/W, h/H, w/W]``).

    ``reduced_decode=True`` decodes JPEGs at 1/2, 1/4 or 1/8 scale (DCT scaling, :func:`draft_factor`) when every
    box keeps at least its output size there; the boxes are then snapped to that coarser grid and the record holds
    the snapped box (fractions of the reduced image, which shows the whole original). Pixels differ slightly from
    a full decode (measured in ``benchmarks/loader_throughput.py``). Errors as :func:`load_rgb`.
    """
    if len(sizes) == 0:
        raise ValueError("resized_crops needs at least one view size")
    path = str(path)
    with _decode_errors(path):
        im = Image.open(path)
    try:
        with _decode_errors(path):
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            W, H = im.size
            if W <= 0 or H <= 0:
                raise ValueError(f"image has an empty side: {W}x{H}")
        boxes = list(sample_boxes(H, W))
        if len(boxes) != len(sizes):
            raise ValueError(f"sample_boxes returned {len(boxes)} boxes for {len(sizes)} views")
        with _decode_errors(path):
            s = draft_factor(boxes, sizes) if reduced_decode and im.format == "JPEG" else 1
            if s > 1:
                im.draft(im.mode, (W // s, H // s))
            im.load()
            rgb = to_rgb(im)
            with warnings.catch_warnings():  # read-only buffer: only read (sliced and interpolated) below
                warnings.simplefilter("ignore", UserWarning)
                hwc = torch.from_numpy(np.asarray(rgb, dtype=np.uint8))
    finally:
        im.close()
    x = hwc.permute(2, 0, 1).unsqueeze(0)  # (1, 3, h, w) view with channels-last strides: torch's fast uint8 path
    dh, dw = x.shape[-2:]
    views: list[torch.Tensor] = []
    crops: list[list[float]] = []
    for (t, l, h, w), S in zip(boxes, sizes, strict=True):
        if (dh, dw) != (H, W):  # reduced decode: the same box on the coarser grid
            t, l = min(round(t * dh / H), dh - 1), min(round(l * dw / W), dw - 1)
            h, w = max(1, min(round(h * dh / H), dh - t)), max(1, min(round(w * dw / W), dw - l))
        region = x[:, :, t : t + h, l : l + w]
        out = torch.nn.functional.interpolate(region, size=(S, S), mode="bilinear", align_corners=False, antialias=True)
        views.append(out[0])
        crops.append([t / dh, l / dw, h / dh, w / dw])
    return views, torch.tensor(crops, dtype=torch.float32)


@contextlib.contextmanager
def _decode_errors(path: str) -> Iterator[None]:
    """Turn what PIL raises on a malformed file into :class:`CorruptImageError` naming ``path``.

    Missing, unreadable and directory paths pass through unchanged (not about the bytes: the CLI reports them as
    they are). PIL raises many types on malformed files (OSError, ValueError, SyntaxError, EOFError, TypeError,
    struct.error, IndexError, DecompressionBombError, ...: found by tests/test_image_fuzz.py); all mean "cannot be
    decoded". A MemoryError is a huge declared size below PIL's decompression-bomb limit on a small machine.
    """
    try:
        yield
    except (CorruptImageError, FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except MemoryError as e:
        raise CorruptImageError(path, "MemoryError: the image is too large to decode in the memory available") from e
    except Exception as e:
        raise CorruptImageError(path, f"{type(e).__name__}: {e}") from e
