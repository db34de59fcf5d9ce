"""Procedural controlled-factor dataset: shapes with recorded colour, position, size and orientation.

Each image shows one antialiased object (rasterised from a signed distance on the pixel grid) on a
random textured background. Recorded factors per sample (``factors`` arrays):

* ``shape``: int in [0, 10) (``SHAPES``; no rotation-invariant shape, so orientation is always defined);
* ``hue`` in [0, 1), ``saturation`` in [0.65, 1], ``value`` in [0.75, 1] (HSV of the object colour);
* ``cy``, ``cx``: object centre as fractions of the image side (0 = top/left, 1 = bottom/right);
* ``scale`` in [0.4, 0.75]: diameter of the object's bounding circle as a fraction of the image side;
  the object is kept fully inside the image for every angle;
* ``angle`` in [0, 2*pi): in-plane rotation (radians, counter-clockwise on screen);
* ``pos_u``, ``pos_v`` in [0, 1): the centre's relative position along y / x inside the range the centre
  may take for that scale (0 = as far up/left as the object fits).

Downstream tasks (:meth:`SyntheticShapes.task_labels`, classes in ``TASKS``):

* ``shape``: 10 classes, the semantic task.
* ``color``: 8 equal hue bins, ``floor(8 * hue)``. Hue is uniform over the full circle and the background
  is independent and desaturated, so strong hue jitter (or grayscale) destroys it.
* ``position``: 3x3 cell of (``pos_u``, ``pos_v``), i.e. thirds of the *feasible* centre range, which
  keeps the 9 classes balanced for every size. Random resized crops destroy it.
* ``size``: 4 equal bins of ``scale``.
* ``orientation``: 4 equal bins of ``angle mod (2*pi / m)`` where ``m`` is the shape's rotational symmetry
  (``SYMMETRY``): the angle is only defined up to that period (e.g. 90 degrees for a square).

Generation is vectorised in torch over chunks of ``CHUNK`` samples; chunk ``j`` of split ``s`` uses its
own generator seeded by ``(seed, split id, j)``, so sample ``i`` depends only on (seed, split, i):
any prefix, range or parallel generation gives identical images. Different splits never share a stream.
Backgrounds (low-frequency colour noise, faint stripes, faint blobs) are drawn independently of all
factors, so they do not leak labels. About 18-23k images/s at 32 px and 6.8-7.9k at 64 px on one core
(``benchmarks/synthetic_speed.py``; the figures move with the host's load).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = [
    "CHUNK",
    "SHAPES",
    "SPLITS",
    "SYMMETRY",
    "TASKS",
    "SyntheticShapes",
    "generate",
    "make_split",
    "task_labels",
]

CHUNK = 1024
SHAPES: tuple[str, ...] = (
    "square",
    "triangle",
    "cross",
    "star",
    "hexagon",
    "bar",
    "heart",
    "crescent",
    "arrow",
    "c-ring",
)
SYMMETRY: tuple[int, ...] = (4, 3, 4, 5, 6, 2, 1, 1, 1, 1)
TASKS: dict[str, int] = {"shape": len(SHAPES), "color": 8, "position": 9, "size": 4, "orientation": 4}
SPLITS: dict[str, int] = {"train": 0, "test": 1, "val": 2}
SCALE_RANGE = (0.4, 0.75)
SAT_RANGE = (0.65, 1.0)
VAL_RANGE = (0.75, 1.0)
FACTOR_NAMES = ("shape", "hue", "saturation", "value", "cy", "cx", "scale", "angle", "pos_u", "pos_v")


# ----------------------------------------------------------------------------------------------------
# signed distances at unit scale (every shape lies inside the unit disk); x right, y down
def _box(x: Tensor, y: Tensor, hx: float, hy: float) -> Tensor:
    qx, qy = x.abs().sub_(hx), y.abs().sub_(hy)
    outside = qx.clamp(min=0).pow_(2).add_(qy.clamp(min=0).pow_(2)).sqrt_()
    return outside.add_(torch.maximum(qx, qy, out=qx).clamp_(max=0))


# the polygon distances below are maxima of edge-plane distances, built in two reused buffers
def _ngon(x: Tensor, y: Tensor, n: int, circumradius: float, offset: float = 0.0) -> Tensor:
    apothem = circumradius * math.cos(math.pi / n)
    d, e, t = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)
    for i in range(n):
        a = offset + 2 * math.pi * (i + 0.5) / n
        torch.mul(x, math.cos(a), out=d if i == 0 else e).add_(torch.mul(y, math.sin(a), out=t))
        if i:
            torch.maximum(d, e, out=d)
    return d.sub_(apothem)


def _halfplanes(x: Tensor, y: Tensor, pts: list[tuple[float, float]]) -> Tensor:
    """Convex polygon (counter-clockwise in x-right/y-down maths, any consistent order) via edge planes."""
    d, e, t = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)
    cx = sum(p[0] for p in pts) / len(pts)
    cy = sum(p[1] for p in pts) / len(pts)
    for i, ((x0, y0), (x1, y1)) in enumerate(zip(pts, pts[1:] + pts[:1], strict=True)):
        nx, ny = y1 - y0, -(x1 - x0)
        norm = math.hypot(nx, ny)
        nx, ny = nx / norm, ny / norm
        if nx * (cx - x0) + ny * (cy - y0) > 0:  # make the normal point outwards
            nx, ny = -nx, -ny
        torch.sub(x, x0, out=d if i == 0 else e).mul_(nx).add_(torch.sub(y, y0, out=t).mul_(ny))
        if i:
            torch.maximum(d, e, out=d)
    return d


def _sdf(k: int, x: Tensor, y: Tensor) -> Tensor:
    """Signed distance (negative inside) of shape ``k`` at unit scale."""
    if k == 0:  # square, half side 0.69
        return _box(x, y, 0.69, 0.69)
    if k == 1:  # equilateral triangle, circumradius 0.98, pointing up
        return _ngon(x, y, 3, 0.98, offset=math.pi / 2 - 2 * math.pi * 0.5 / 3 + math.pi / 3)
    if k == 2:  # plus-shaped cross
        return torch.minimum(_box(x, y, 0.92, 0.32), _box(x, y, 0.32, 0.92))
    if k == 3:  # five-pointed star (polar radius profile)
        r = torch.sqrt(x * x + y * y)
        a = torch.atan2(x, -y)  # 0 = up
        sector = 2 * math.pi / 5
        t = torch.remainder(a, sector) / sector  # 0..1, points at 0 and 1
        t = (2 * t - 1).abs()  # 1 at the points, 0 between them
        rad = 0.42 + (0.98 - 0.42) * t**1.5
        return (r - rad) * 0.6
    if k == 4:  # regular hexagon, circumradius 0.97
        return _ngon(x, y, 6, 0.97)
    if k == 5:  # bar
        return _box(x, y, 0.93, 0.27)
    if k == 6:  # heart (Inigo Quilez), fitted into the unit disk, tip pointing down
        s, cy0 = 0.675, 0.55
        px = (x * s).abs()
        py = -y * s + cy0  # heart frame: y up, tip at (0, 0)
        lobe = torch.sqrt((px - 0.25) ** 2 + (py - 0.75) ** 2) - math.sqrt(2) / 4
        m = (px + py).clamp(min=0) * 0.5
        body = torch.sqrt(torch.minimum(px**2 + (py - 1) ** 2, (px - m) ** 2 + (py - m) ** 2))
        body = body * torch.sign(px - py)
        return torch.where(px + py > 1.0, lobe, body) / s
    if k == 7:  # crescent
        outer = torch.sqrt(x * x + y * y) - 0.97
        inner = torch.sqrt((x - 0.5) ** 2 + (y + 0.1) ** 2) - 0.72
        return torch.maximum(outer, -inner)
    if k == 8:  # arrow pointing right
        shaft = _box(x + 0.42, y, 0.53, 0.19)
        head = _halfplanes(x, y, [(0.08, -0.55), (0.97, 0.0), (0.08, 0.55)])
        return torch.minimum(shaft, head)
    if k == 9:  # ring with a gap on the right ("C")
        r = torch.sqrt(x * x + y * y)
        ring = (r - 0.73).abs() - 0.24
        gap = _box(x - 0.75, y, 0.4, 0.26)
        return torch.maximum(ring, -gap)
    raise ValueError(f"unknown shape index {k}")


def _hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """Vectorised HSV -> RGB, inputs (...), output (..., 3)."""
    n = torch.tensor([5.0, 3.0, 1.0], dtype=h.dtype)
    k = torch.remainder(n + h[..., None] * 6.0, 6.0)
    f = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return v[..., None] - v[..., None] * s[..., None] * f


# ----------------------------------------------------------------------------------------------------
def _draw_chunk_factors(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    shape = rng.integers(0, len(SHAPES), n)
    hue = rng.random(n)
    sat = rng.uniform(*SAT_RANGE, n)
    val = rng.uniform(*VAL_RANGE, n)
    scale = rng.uniform(*SCALE_RANGE, n)
    pos_u, pos_v = rng.random(n), rng.random(n)
    angle = rng.uniform(0.0, 2 * math.pi, n)
    return {
        "shape": shape,
        "hue": hue,
        "saturation": sat,
        "value": val,
        "scale": scale,
        "pos_u": pos_u,
        "pos_v": pos_v,
        "angle": angle,
    }


def _centre_range(scale: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Feasible centre range (fractions of the side) so the bounding circle plus 1 px stays inside."""
    margin = scale / 2 + 1.0 / size
    return margin, 1.0 - margin


def _render_chunk(
    seed: int,
    split_id: int,
    chunk: int,
    size: int,
    rows: tuple[int, int],
    img: Tensor,
    mask: Tensor | None,
    scratch: tuple[Tensor, Tensor | None],
) -> dict[str, np.ndarray]:
    """Draw chunk ``chunk``'s factors (all of them: the stream is per chunk) and render its samples
    ``rows[0]..rows[1]-1`` into ``img`` (and their coverage into ``mask``); returns the chunk's factors.
    ``scratch`` holds (at least) those rows' images and coverage in shape order."""
    n = CHUNK
    rng = np.random.default_rng([int(seed), int(split_id), int(chunk), 0x5EED])
    f = _draw_chunk_factors(rng, n)
    lo, hi = _centre_range(f["scale"], size)
    f["cy"] = lo + f["pos_u"] * (hi - lo)
    f["cx"] = lo + f["pos_v"] * (hi - lo)
    # background parameters (drawn after the factors, independent of them)
    base = rng.uniform(0.25, 0.6, (n, 1, 1, 1))
    tint = rng.uniform(-0.08, 0.08, (n, 3, 1, 1))
    grid = rng.uniform(-0.14, 0.14, (n, 3, 4, 4))
    st_amp = rng.uniform(0.0, 0.08, n)
    st_freq = rng.uniform(1.5, 5.0, n)
    st_dir = rng.uniform(0.0, math.pi, n)
    st_phase = rng.uniform(0.0, 2 * math.pi, n)
    blob_c = rng.uniform(0.0, 1.0, (n, 2, 2))
    blob_r = rng.uniform(0.08, 0.3, (n, 2))
    blob_amp = rng.uniform(-0.1, 0.1, (n, 2))

    p = {
        "base": base + tint,
        "grid": grid,
        "st_amp": st_amp,
        "st_freq": st_freq,
        "st_dir": st_dir,
        "st_phase": st_phase,
        "blob_c": blob_c,
        "blob_r": blob_r,
        "blob_amp": blob_amp,
        **f,
    }
    p = {k: torch.from_numpy(np.asarray(v, dtype=np.int64 if k == "shape" else np.float32)) for k, v in p.items()}
    lo_row, hi_row = rows
    # render in shape order: each sub-batch then holds one or two shapes as contiguous slices, so the
    # per-shape distance code runs a few times per sub-batch on views instead of ten times on gathered
    # copies (every op is per sample, so the pixels do not depend on the order); one gather at the end
    # puts the rows back in sample order
    order = torch.argsort(p["shape"][lo_row:hi_row], stable=True) + lo_row
    sorted_img = scratch[0][: hi_row - lo_row]
    sorted_mask = None if scratch[1] is None else scratch[1][: hi_row - lo_row]
    for a in range(0, hi_row - lo_row, _SUB):  # small sub-batches keep buffers in cache
        sl = slice(a, a + _SUB)
        cover = _render_batch({k: v[order[sl]] for k, v in p.items()}, size, sorted_img[sl])
        if sorted_mask is not None:
            sorted_mask[sl] = cover
    back = torch.argsort(order)  # sorted position of each row (a dim-0 gather is a fast row copy)
    torch.index_select(sorted_img, 0, back, out=img)
    if sorted_mask is not None:  # allocated exactly when mask is wanted (generate)
        torch.index_select(sorted_mask, 0, back, out=mask)
    return f


_SUB = 64


def _smooth_basis(size: int, k: int) -> Tensor:
    """(size, k) weights interpolating a k-point grid smoothly (Gaussian bumps, rows sum to 1)."""
    pos = (torch.arange(size, dtype=torch.float32) + 0.5) / size * k - 0.5
    w = torch.exp(-0.5 * ((pos[:, None] - torch.arange(k, dtype=torch.float32)[None]) / 0.6) ** 2)
    return w / w.sum(1, keepdim=True)


def _render_batch(p: dict[str, Tensor], size: int, out: Tensor) -> Tensor:
    """Render samples sorted by shape into uint8 ``out`` (n, 3, size, size); returns their coverage."""
    n = p["shape"].shape[0]
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size  # pixel centres, fraction of side
    yy = coords.view(1, size, 1)
    xx = coords.view(1, 1, size)
    col = lambda a: a.view(n, 1, 1)  # noqa: E731

    # in-place steps (with operands swapped where that is exact) keep the big temporaries few: every
    # allocation of this size costs page faults on each sub-batch
    basis = _smooth_basis(size, p["grid"].shape[-1])
    bg = (basis @ p["grid"] @ basis.T).add_(p["base"])  # low-frequency colour noise
    wave = xx * col(torch.cos(p["st_dir"])) + yy * col(torch.sin(p["st_dir"]))
    wave.mul_(2 * math.pi * col(p["st_freq"])).add_(col(p["st_phase"])).sin_()
    bg += wave.mul_(col(p["st_amp"])).unsqueeze(1)  # faint stripes
    inside, zero = torch.empty(n, size, size, dtype=torch.bool), torch.zeros(())
    for b in range(p["blob_r"].shape[1]):  # faint discs
        d2 = (yy - col(p["blob_c"][:, b, 0])) ** 2 + (xx - col(p["blob_c"][:, b, 1])) ** 2
        r = col(p["blob_r"][:, b])
        torch.lt(d2, r * r, out=inside)
        bg += torch.where(inside, col(p["blob_amp"][:, b]), zero, out=d2).unsqueeze(1)

    # object: unit-scale coordinates of each pixel; counter-clockwise on screen (y down) by angle
    half = col(p["scale"] / 2)  # bounding radius as a fraction of the side
    dy = (yy - col(p["cy"])) / half
    dx = (xx - col(p["cx"])) / half
    ca, sa = col(torch.cos(p["angle"])), col(torch.sin(p["angle"]))
    ux = dx * ca - dy * sa
    uy = dx * sa + dy * ca
    sdf = torch.empty(n, size, size)
    shapes, counts = torch.unique_consecutive(p["shape"], return_counts=True)  # sorted by the caller
    start = 0
    for k, c in zip(shapes.tolist(), counts.tolist(), strict=True):
        sdf[start : start + c] = _sdf(k, ux[start : start + c], uy[start : start + c])
        start += c
    # antialiased coverage: distance in pixels = sdf * radius in pixels
    cover = sdf.mul_(half * size).neg_().add_(0.5).clamp_(0.0, 1.0)  # 0.5 - sdf * radius
    rgb = _hsv_to_rgb(p["hue"], p["saturation"], p["value"]).view(n, 3, 1, 1)
    c4 = cover.unsqueeze(1)
    img = bg.clamp_(0.0, 1.0).sub_(rgb).mul_(1 - c4).add_(rgb)  # bg * (1 - c) + rgb * c
    # round half up; via int32 because float -> int32 is vectorised and float -> uint8 is not (same values)
    out.copy_(img.mul_(255.0).add_(0.5).clamp_(0, 255).to(torch.int32))
    return cover


def generate(
    seed: int, start: int, stop: int, size: int = 32, split: str = "train", return_mask: bool = False
) -> tuple[Tensor, dict[str, np.ndarray]] | tuple[Tensor, dict[str, np.ndarray], Tensor]:
    """Render samples ``start..stop-1`` of stream (``seed``, ``split``) at ``size`` px.

    Returns uint8 images (n, 3, size, size), the factor arrays (``FACTOR_NAMES``) and, with
    ``return_mask``, the float object coverage (n, size, size) in [0, 1].
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if not 0 <= start <= stop:
        raise ValueError(f"need 0 <= start <= stop, got {start}, {stop}")
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    images = torch.empty(stop - start, 3, size, size, dtype=torch.uint8)  # chunks render straight into it
    mask = torch.empty(stop - start, size, size) if return_mask else None
    # rows in shape order, before the gather back (one buffer for all chunks: no page faults per chunk)
    scratch = (
        torch.empty(min(CHUNK, stop - start), 3, size, size, dtype=torch.uint8),
        None if mask is None else torch.empty(min(CHUNK, stop - start), size, size),
    )
    facts = []
    threads = torch.get_num_threads()
    for j in range(start // CHUNK, (stop + CHUNK - 1) // CHUNK):
        a, b = max(start - j * CHUNK, 0), min(stop - j * CHUNK, CHUNK)
        o = j * CHUNK + a - start
        # single-threaded on purpose: the ops are small, and intra-op threads on a busy machine cost
        # 5-50x (results do not depend on it); parallelise over chunks instead
        torch.set_num_threads(1)
        try:
            rows = slice(o, o + b - a)
            f = _render_chunk(
                seed, SPLITS[split], j, size, (a, b), images[rows], None if mask is None else mask[rows], scratch
            )
        finally:
            torch.set_num_threads(threads)
        facts.append({k: v[a:b] for k, v in f.items()})
    if facts:
        factors = {k: np.concatenate([f[k] for f in facts]) for k in FACTOR_NAMES}
    else:
        factors = {k: np.empty(0) for k in FACTOR_NAMES}
    factors["shape"] = factors["shape"].astype(np.int64)
    if mask is not None:
        return images, factors, mask
    return images, factors


def make_split(n: int, size: int = 32, seed: int = 0, split: str = "train") -> tuple[Tensor, dict[str, np.ndarray]]:
    """The first ``n`` samples of stream (``seed``, ``split``): (uint8 images (n,3,S,S), factors)."""
    out = generate(seed, 0, n, size, split)
    return out[0], out[1]


def task_labels(factors: dict[str, np.ndarray], task: str) -> np.ndarray:
    """Integer labels of a downstream task (see the module docstring) from factor arrays."""
    if task == "shape":
        return factors["shape"].astype(np.int64)
    if task in ("color", "colour", "hue"):
        return np.minimum((factors["hue"] * 8).astype(np.int64), 7)
    if task == "position":
        r = np.minimum((factors["pos_u"] * 3).astype(np.int64), 2)
        c = np.minimum((factors["pos_v"] * 3).astype(np.int64), 2)
        return r * 3 + c
    if task == "size":
        lo, hi = SCALE_RANGE
        return np.clip(((factors["scale"] - lo) / (hi - lo) * 4).astype(np.int64), 0, 3)
    if task == "orientation":
        period = 2 * np.pi / np.asarray(SYMMETRY, dtype=np.float64)[factors["shape"]]
        frac = np.remainder(factors["angle"], period) / period
        return np.minimum((frac * 4).astype(np.int64), 3)
    raise ValueError(f"unknown task {task!r}; valid: {', '.join(TASKS)}")


class SyntheticShapes(Dataset):
    """Eagerly generated controlled-factor dataset returning ``{"image", "label", "source_crop"}``.

    ``label`` is the task label of ``label`` (a ``TASKS`` name) or -1 with ``label=None``;
    ``source_crop`` is always [0, 0, 1, 1]. ``factors`` holds the raw factor arrays, ``images`` the
    uint8 tensor (n, 3, size, size); ``task_labels(task)`` gives any task's labels.
    """

    def __init__(
        self, n: int, size: int = 32, seed: int = 0, label: str | None = "shape", split: str = "train"
    ) -> None:
        if label is not None and label not in TASKS:
            raise ValueError(f"unknown label task {label!r}; valid: {', '.join(TASKS)} or None")
        self.n, self.size, self.seed, self.split, self.label = int(n), int(size), int(seed), split, label
        self.images, self.factors = make_split(self.n, self.size, self.seed, split)
        self.classes: list[str] = (
            list(SHAPES) if label == "shape" else [str(i) for i in range(TASKS[label])] if label else []
        )
        labels = self.task_labels(label) if label else np.full(self.n, -1, dtype=np.int64)
        self._labels = torch.from_numpy(labels)
        self._crop = torch.tensor([0.0, 0.0, 1.0, 1.0])

    @property
    def targets(self) -> list[int]:
        return self._labels.tolist()

    def task_labels(self, task: str) -> np.ndarray:
        return task_labels(self.factors, task)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            "image": self.images[index],
            "label": int(self._labels[index]),
            "source_crop": self._crop.clone(),
        }
