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

Bringing an image to ``size`` x ``size`` (:func:`to_source`, evaluation and ``data.crop: centre_square``) is
torchvision's ``Resize(size)`` + ``CenterCrop(size)`` on the PIL image, pixel for pixel; ``docs/preprocessing.md``
says what every command does to an image.
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
from augself.names import check_name

__all__ = [
    "DECODE_MODES",
    "INTERPOLATIONS",
    "centre_offsets",
    "crop_box",
    "decode_mode",
    "draft_factor",
    "load_rgb",
    "resized_crops",
    "resized_size",
    "to_rgb",
    "to_source",
]


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

    ``draft_size=None`` (default) decodes every pixel, as torchvision's loaders (``Image.open(f).convert("RGB")``)
    do. ``draft_size=S`` (``decode: draft``) lets JPEG decoding shrink by a power of two while both sides stay >= S
    (libjpeg DCT scaling, PIL ``Image.draft``): faster for large photos, but the pixels are not those of a full
    decode followed by the resize.
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


def resized_size(width: int, height: int, size: int) -> tuple[int, int]:
    """``(new_width, new_height)`` of torchvision's ``Resize(size)``: the short side becomes ``size``, the long side
    ``int(size * long / short)`` (truncated, not rounded; torchvision ``transforms/functional.py``
    ``_compute_resized_output_size``)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image has an empty side: {width}x{height}")
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


def centre_offsets(width: int, height: int, size: int) -> tuple[int, int]:
    """``(top, left)`` of torchvision's ``CenterCrop(size)`` on a ``width`` x ``height`` image (both sides >= size):
    ``int(round((side - size) / 2.0))``, Python's round half to even (``transforms/functional.py`` ``center_crop``)."""
    return round((height - size) / 2.0), round((width - size) / 2.0)


def crop_box(width: int, height: int, size: int) -> tuple[float, float, float, float]:
    """The region ``Resize(size) + CenterCrop(size)`` keeps, as fractions [top, left, h, w] of the original image.

    The resize maps the whole image onto :func:`resized_size`, so the fractions are those of the integer crop
    (:func:`centre_offsets`) in the resized image: exact, not rounded to pixels of the original.
    """
    new_w, new_h = resized_size(width, height, size)
    top, left = centre_offsets(new_w, new_h, size)
    return top / new_h, left / new_w, size / new_h, size / new_w


INTERPOLATIONS: dict[str, int] = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
"""Resampling filters of :func:`to_source`: torchvision ``Resize``'s default (bilinear) and the reference's
evaluation filter (``Resize(S, interpolation=BICUBIC)``, AugSelf ``datasets.py`` ``load_datasets``)."""

DECODE_MODES: tuple[str, ...] = ("exact", "draft")
"""``exact``: every pixel decoded (PIL ``Image.open`` + ``load``, what torchvision's loaders do). ``draft``: JPEGs
decoded at 1/2, 1/4 or 1/8 scale (libjpeg DCT scaling) when the result stays at least the needed size: faster,
pixels differ (``benchmarks/loader_throughput.py``); an option for pretraining only."""


def decode_mode(value: str | bool) -> str:
    """``value`` as one of :data:`DECODE_MODES`; ``True`` / ``False`` (the old ``reduced_decode`` flag) map to
    ``draft`` / ``exact``. Anything else is a ``ValueError`` naming the valid modes."""
    if isinstance(value, bool):
        return "draft" if value else "exact"
    return check_name(value, DECODE_MODES, "decode mode")


def to_source(img: Image.Image, size: int, interpolation: str = "bilinear") -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's ``Resize(size, interpolation)`` + ``CenterCrop(size)`` on a PIL image, as uint8 pixels.

    The pixels equal ``pil_to_tensor(CenterCrop(size)(Resize(size)(img)))`` exactly: PIL ``resize`` to
    :func:`resized_size` (antialiased, PIL's own filter support; skipped when the size is already right, as
    torchvision does), then the integer crop at :func:`centre_offsets`. ``/255`` and the mean/std normalisation
    follow on the batch (:func:`augself.eval.features.normalise_images`, the same float32 operations as
    ``ToTensor`` + ``Normalize``). Smaller images are upscaled.

    Returns ``(uint8 tensor (3, size, size), source_crop float tensor (4,))``; ``source_crop`` is :func:`crop_box`.
    """
    if img.mode != "RGB":
        img = to_rgb(img)
    w, h = img.size
    new_w, new_h = resized_size(w, h, size)
    if (new_w, new_h) != (w, h):
        try:
            resample = INTERPOLATIONS[interpolation]
        except KeyError:
            raise ValueError(f"unknown interpolation {interpolation!r}; valid: {', '.join(INTERPOLATIONS)}") from None
        img = img.resize((new_w, new_h), resample)
    top, left = centre_offsets(new_w, new_h, size)
    arr = np.asarray(img, dtype=np.uint8)[top : top + size, left : left + size]
    image = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    crop = torch.tensor([top / new_h, left / new_w, size / new_h, size / new_w], dtype=torch.float32)
    return image, crop


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
