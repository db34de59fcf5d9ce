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

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from augself.data.errors import CorruptImageError

__all__ = ["crop_box", "load_rgb", "to_rgb", "to_source"]


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
    Raises :class:`CorruptImageError` naming the file if it is truncated, corrupt or not an image.
    """
    path = str(path)
    try:
        with Image.open(path) as im:
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            if draft_size is not None and im.format == "JPEG":
                w, h = im.size
                f = max(1, min(w, h) // max(1, draft_size))
                if f >= 2:
                    im.draft("RGB", (max(1, w // f), max(1, h // f)))
            im.load()
            return to_rgb(im).copy()
    except CorruptImageError:
        raise
    except FileNotFoundError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError) as e:
        raise CorruptImageError(path, f"{type(e).__name__}: {e}") from e


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
