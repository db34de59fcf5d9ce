"""Each augmentation alone: the names the awareness report knows, their strengths and the isolated view.

A view applies one augmentation with every other op off (full crop, no flip / jitter / grayscale / blur /
solarize / rotation), as CASSLE's ``transfer_feature_invariance.py`` (reference §6.3) measures each one alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from augself.augment.config import ViewConfig

__all__ = [
    "AUGMENTATIONS",
    "DEFAULT_AUGMENTATIONS",
    "DEFAULT_STRENGTHS",
    "PROBE_STRENGTH",
    "TARGET_DIMS",
    "check_augmentations",
    "strength_label",
    "view_config",
]

AUGMENTATIONS: tuple[str, ...] = ("crop", "color", "flip", "blur", "rot", "sol")
"""Augmentations the report knows (the AugSelf target names, :data:`augself.augment.targets.TARGETS`)."""

DEFAULT_AUGMENTATIONS: tuple[str, ...] = ("crop", "color", "flip", "blur", "rot")

DEFAULT_STRENGTHS: dict[str, tuple[float, ...]] = {
    "crop": (0.8, 0.5, 0.2),  # lower bound of the crop area fraction (AugSelf / SimCLR default 0.2)
    "color": (0.5, 1.0, 2.0),  # AugSelf's colour-strength knob s (jitter ranges x s; paper Sec. 4.3)
    "blur": (0.5, 1.0, 2.0),  # upper bound of sigma, drawn from U(0.1, s) (SimCLR default 2.0)
    "flip": (1.0,),  # probability; every sample is flipped
    "rot": (1.0,),  # probability; quarter turns k in {1, 2, 3} for invariance
    "sol": (1.0,),  # probability; threshold ~ U[0, 1] (BYOL)
}
"""Strengths at which invariance is measured, per augmentation (see :func:`view_config`)."""

PROBE_STRENGTH: dict[str, float] = {"crop": 0.2, "color": 1.0, "blur": 2.0, "flip": 0.5, "rot": 1.0, "sol": 1.0}
"""Pretraining-default setting of each augmentation used for the predictability probe (flip: p = 0.5, so
"same flip state" is balanced; rot: p = 1, the difference is uniform over the four classes)."""

TARGET_DIMS: dict[str, list[str]] = {
    "crop": ["d_cy", "d_cx", "d_h", "d_w"],
    "color": ["d_brightness", "d_contrast", "d_saturation", "d_hue"],
    "blur": ["d_sigma"],
    "sol": ["d_threshold"],
}
"""Names of the regression target's dimensions (the order of :func:`augself.augment.targets.relative_targets`)."""


def _off(size: int, mean: Sequence[float], std: Sequence[float]) -> dict[str, Any]:
    """ViewConfig settings with every op off (full crop, no flip/jitter/gray/blur/solarize/rotation)."""
    return dict(
        size=int(size),
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        flip_p=0.0,
        jitter_p=0.0,
        gray_p=0.0,
        blur_p=0.0,
        solarize_p=0.0,
        rotate_p=0.0,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
    )


def view_config(
    name: str | None, strength: float, size: int, mean: Sequence[float], std: Sequence[float]
) -> ViewConfig:
    """A view applying augmentation ``name`` alone at ``strength`` (``None``: the identity view).

    crop: ``crop_scale=(strength, 1)``; color: colour jitter with p = 1 and ``color_strength=strength``
    (grayscale off); blur: p = 1, ``sigma ~ U(0.1, strength)``; flip / rot / sol: applied with probability
    ``strength``.
    """
    kw = _off(size, mean, std)
    if name is None:
        pass
    elif name == "crop":
        kw.update(crop_scale=(float(strength), 1.0), crop_ratio=(3 / 4, 4 / 3))
    elif name == "color":
        kw.update(jitter_p=1.0, color_strength=float(strength))
    elif name == "blur":
        kw.update(blur_p=1.0, blur_sigma=(min(0.1, float(strength)), float(strength)))
    elif name == "flip":
        kw.update(flip_p=float(strength))
    elif name == "rot":
        kw.update(rotate_p=float(strength))
    elif name == "sol":
        kw.update(solarize_p=float(strength))
    else:
        raise ValueError(f"unknown augmentation {name!r}; valid: {', '.join(AUGMENTATIONS)}")
    return ViewConfig(**kw)


def strength_label(name: str, s: float) -> str:
    """How a strength of augmentation ``name`` reads in the report (``scale>=0.2``, ``p=0.5``, ...)."""
    return {
        "crop": f"scale>={s:g}",
        "color": f"strength {s:g}",
        "blur": f"sigma<={s:g}",
        "flip": f"p={s:g}",
        "rot": f"p={s:g}",
        "sol": f"p={s:g}",
    }[name]


def check_augmentations(augmentations: Iterable[str]) -> list[str]:
    """The given augmentation names, de-duplicated in order; none or an unknown one raises ``ValueError``."""
    names = [augmentations] if isinstance(augmentations, str) else list(augmentations)
    if not names:
        raise ValueError(f"no augmentations given; valid: {', '.join(AUGMENTATIONS)}")
    for n in names:
        if n not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {n!r}; valid: {', '.join(AUGMENTATIONS)}")
    return list(dict.fromkeys(names))
