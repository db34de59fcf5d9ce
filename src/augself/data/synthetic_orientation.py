"""A Mario-Iggy analogue from the controlled generator: classes defined by orientation next to rotation-free ones.

InstaAug's rotation experiment (Miao et al., ICML 2023, Sec. 5.1; reference ``examples/mixmo-pytorch/mixmo/loaders/
mario_iggy.py``) uses two sprites, each upright (angle ~ U[-45, 45] deg) or upside-down (180 + U[-45, 45] deg): 4
classes that a rotation of more than about 45 degrees can change, so a learned per-input rotation range should stay
narrow there. This set keeps those 4 classes with two of :mod:`augself.data.synthetic`'s asymmetric shapes and adds 2
classes whose label does *not* depend on orientation (a shape at any angle), where the learned range should be
wide. Classes (``CLASSES``, index = label):

* 0 ``star``, 1 ``crescent``: rotation-free (``KINDS[0]``): any angle has the same label, but the training (and
  val) images show only the upright sector, angle ~ U[-pi/4, pi/4], while the test images cover the whole circle. The
  invariance is a property of the class that the training data does not show: an augmentation must add it, and a
  fixed range wide enough for these classes (more than +-45 deg) turns the orientation-defined ones into each other.
  This is InstaAug's premise (the right invariance depends on the input) made measurable by test accuracy;
* 2 ``heart-up`` / 3 ``heart-down``, 4 ``arrow-up`` / 5 ``arrow-down``: orientation-defined (``KINDS[1]``), angle
  ~ U[-pi/4, pi/4] (up) or pi + U[-pi/4, pi/4] (down), the reference's ``max_rot_angle=np.pi / 2``
  (``loader.py:236-240``). Both shapes have no rotational symmetry (``synthetic.SYMMETRY`` 1): the heart points its
  tip down or up, the arrow right or left, so upright and upside-down renderings differ in every pixel row.

Other factors: the object is centred (so any rotation about the image centre keeps it inside and in place), its
diameter is U[0.6, 0.75] of the side, its colour is a random HSV colour (hue U[0, 1), saturation and value in the
generator's ranges) drawn independently of the class, and the background is black: the rotation op fills uncovered
corners with zero, as the reference's ``grid_sample`` does on its sprites (``mario_iggy.py:142-153``), so a rotated
training image carries no border cue. Angles are counter-clockwise on screen, the convention of the ``angle``
augmentation, so an upright image at offset phi rotated by theta is label-preserving for theta in
[-45 - phi, 45 - phi] degrees (the reference's ideal per-input range, ``docs`` of issue 16).

Splits: ``train`` and ``val`` draw every factor at random (rotation-free classes in the upright sector); ``test``
uses evenly spaced angles per class, as the
reference's test set (``mario_iggy.py:78-92``: ``r = arange(l) / l``, ``angle = r * max - max / 2 (+ pi)``; here
``2 pi r`` for the rotation-free classes), so per-class test summaries over the angle are not subject to sampling
gaps. Labels cycle through the classes (``label = i % 6``), so every split is balanced. A split is a function of
(``n``, ``size``, ``seed``, ``split``).

Recorded per image (``factors``): ``angle`` (radians, as rendered), ``offset`` (radians: ``angle`` minus the class's
canonical angle 0 or pi for orientation-defined classes, NaN for rotation-free ones), ``kind`` (index into
``KINDS``), ``shape`` (index into ``synthetic.SHAPES``), ``hue``, ``saturation``, ``value``, ``scale``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from augself.data.synthetic import SAT_RANGE, SHAPES, VAL_RANGE, _render_batch

__all__ = ["CLASSES", "KINDS", "SPLITS", "SyntheticOrientation", "make_orientation_split", "render_centred"]

KINDS: tuple[str, ...] = ("rotation_free", "orientation_defined")
# (class name, generator shape, kind index, canonical angle in radians or None = any angle)
_CLASS_SPEC: tuple[tuple[str, str, int, float | None], ...] = (
    ("star", "star", 0, None),
    ("crescent", "crescent", 0, None),
    ("heart-up", "heart", 1, 0.0),
    ("heart-down", "heart", 1, math.pi),
    ("arrow-up", "arrow", 1, 0.0),
    ("arrow-down", "arrow", 1, math.pi),
)
CLASSES: tuple[str, ...] = tuple(c[0] for c in _CLASS_SPEC)
SPLITS: dict[str, int] = {"train": 0, "test": 1, "val": 2}
MAX_ROT = math.pi / 2
"""Width of an orientation-defined class's angle range (reference ``loader.py:236``: ``max_rot_angle=np.pi / 2``)."""
SCALE_RANGE = (0.6, 0.75)
"""Object diameter as a fraction of the side (a mild variation; the generator's largest size is 0.75)."""
_RENDER_BATCH = 256


def _angles(label: np.ndarray, rng: np.random.Generator, even: bool) -> np.ndarray:
    """Rendering angle (radians) per sample: random per class, or evenly spaced per class (``even``, the test split).

    Rotation-free classes: U[-45, 45] deg when random (train, val), the whole circle when evenly spaced (test).
    """
    angle = np.empty(len(label))
    for c, (_, _, _, canon) in enumerate(_CLASS_SPEC):
        idx = np.flatnonzero(label == c)
        m = len(idx)
        r = np.arange(m) / max(m, 1) if even else rng.random(m)
        if canon is None:
            angle[idx] = 2 * math.pi * r if even else r * MAX_ROT - MAX_ROT / 2
        else:
            angle[idx] = r * MAX_ROT - MAX_ROT / 2 + canon
    return angle


def render_centred(
    shape: np.ndarray,
    angle: np.ndarray,
    size: int,
    hue: np.ndarray,
    saturation: np.ndarray,
    value: np.ndarray,
    scale: np.ndarray,
) -> Tensor:
    """uint8 images (n, 3, size, size) of generator shapes (``synthetic.SHAPES`` indices) centred on black, rotated
    counter-clockwise on screen by ``angle`` (radians), with the given HSV colour and diameter ``scale``."""
    n = len(shape)
    images = torch.zeros(n, 3, size, size, dtype=torch.uint8)
    order = np.argsort(shape, kind="stable")  # _render_batch wants samples grouped by shape
    factors = {"hue": hue, "saturation": saturation, "value": value, "scale": scale, "angle": angle}
    for a in range(0, n, _RENDER_BATCH):
        rows = order[a : a + _RENDER_BATCH]
        k = len(rows)
        p: dict[str, Tensor] = {
            name: torch.from_numpy(np.asarray(v)[rows].astype(np.float32)) for name, v in factors.items()
        }
        p["shape"] = torch.from_numpy(np.asarray(shape)[rows].astype(np.int64))
        p["cy"] = p["cx"] = torch.full((k,), 0.5)
        # a black background: the generator's background terms all zero
        p |= {
            "base": torch.zeros(k, 1, 1, 1),
            "grid": torch.zeros(k, 3, 4, 4),
            "st_amp": torch.zeros(k),
            "st_freq": torch.ones(k),
            "st_dir": torch.zeros(k),
            "st_phase": torch.zeros(k),
            "blob_c": torch.zeros(k, 1, 2),
            "blob_r": torch.zeros(k, 1),
            "blob_amp": torch.zeros(k, 1),
        }
        out = torch.empty(k, 3, size, size, dtype=torch.uint8)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small ops: see synthetic.generate
        try:
            _render_batch(p, size, out)
        finally:
            torch.set_num_threads(threads)
        images[torch.from_numpy(rows)] = out
    return images


def make_orientation_split(
    n: int, size: int = 32, seed: int = 0, split: str = "train"
) -> tuple[Tensor, np.ndarray, dict[str, np.ndarray]]:
    """Render ``n`` images of ``split``: (uint8 images (n, 3, size, size), int64 labels (n,), factors)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    rng = np.random.default_rng([int(seed), SPLITS[split], 0x0A1E])
    label = np.arange(n, dtype=np.int64) % len(CLASSES)
    shape_index = {name: i for i, name in enumerate(SHAPES)}
    f: dict[str, np.ndarray] = {
        "shape": np.array([shape_index[_CLASS_SPEC[c][1]] for c in label], dtype=np.int64),
        "kind": np.array([_CLASS_SPEC[c][2] for c in label], dtype=np.int64),
        "hue": rng.random(n),
        "saturation": rng.uniform(*SAT_RANGE, n),
        "value": rng.uniform(*VAL_RANGE, n),
        "scale": rng.uniform(*SCALE_RANGE, n),
        "angle": _angles(label, rng, even=split == "test"),
    }
    canon = np.array([np.nan if s[3] is None else s[3] for s in _CLASS_SPEC])[label]
    f["offset"] = f["angle"] - canon
    images = render_centred(f["shape"], f["angle"], size, f["hue"], f["saturation"], f["value"], f["scale"])
    return images, label, f


class SyntheticOrientation(Dataset):
    """Eagerly generated orientation set returning ``{"image", "label", "source_crop"}`` (module docstring).

    ``images`` (uint8 (n, 3, size, size)), ``labels`` (int64 numpy), ``factors`` (per-image recorded values),
    ``classes`` (``CLASSES``), ``kinds``: each class's kind name.
    """

    classes: list[str]

    def __init__(self, n: int, size: int = 32, seed: int = 0, split: str = "train") -> None:
        self.n, self.size, self.seed, self.split = int(n), int(size), int(seed), split
        self.images, self.labels, self.factors = make_orientation_split(self.n, self.size, self.seed, split)
        self.classes = list(CLASSES)
        self.kinds = [KINDS[s[2]] for s in _CLASS_SPEC]
        self._labels = torch.from_numpy(self.labels)
        self._crop = torch.tensor([0.0, 0.0, 1.0, 1.0])

    @property
    def targets(self) -> list[int]:
        return self._labels.tolist()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": self.images[index], "label": int(self._labels[index]), "source_crop": self._crop.clone()}
