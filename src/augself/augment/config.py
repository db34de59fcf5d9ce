"""Configuration of the augmentation pipeline (one :class:`ViewConfig` per view).

Defaults are SimCLR's (Chen et al., 2020) as used by AugSelf (Lee et al., NeurIPS 2021, Sec. 4 / App. A):
random resized crop scale (0.2, 1.0) with log-uniform aspect ratio (3/4, 4/3), horizontal flip p=0.5,
colour jitter (0.4, 0.4, 0.4, 0.1) with p=0.8 in random order, grayscale p=0.2, Gaussian blur p=0.5 with
sigma in [0.1, 2.0] and a kernel of about 10 % of the image size.

The fields of :class:`ViewConfig` are the view's own (``size`` first; ``mean``, ``std``, ``normalize`` last) and
those each augmentation declares in its spec (:mod:`augself.augment.specs`), in pipeline order; each field's
documentation is in its spec (``ViewConfig.field_doc(name)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass, replace
from typing import Any

from augself.augment.specs.base import ConfigField
from augself.augment.specs.registry import SPECS

VIEW_HEAD = (ConfigField("size", int, 32, "Output side length S (pixels)."),)
VIEW_TAIL = (
    ConfigField("mean", tuple[float, ...], (0.5, 0.5, 0.5), "Normalisation mean per channel."),
    ConfigField("std", tuple[float, ...], (0.25, 0.25, 0.25), "Normalisation std per channel."),
    ConfigField("normalize", bool, True, "Normalise the view ((x - mean) / std); false keeps [0, 1]."),
)
CONFIG_FIELDS: tuple[ConfigField, ...] = (*VIEW_HEAD, *(f for s in SPECS for f in s.config), *VIEW_TAIL)
"""Every ``ViewConfig`` field, in order."""
if any(a in {f.name for f in CONFIG_FIELDS} for f in CONFIG_FIELDS for a in f.aliases):
    raise RuntimeError("a ViewConfig field alias is the name of another field")


class _ViewConfigMethods:
    """Derived ranges and validation shared by every :class:`ViewConfig`."""

    def __post_init__(self) -> None:
        self.validate()

    # ---- derived ranges -------------------------------------------------------------------------------
    def factor_range(self, name: str) -> tuple[float, float]:
        """Range of a jitter factor after the colour-strength scaling (``name``: brightness, contrast, saturation
        or hue; its setting is the field ``color_<name>``)."""
        s = self.color_strength  # type: ignore[attr-defined]
        if name == "hue":
            h = min(self.color_hue * s, 0.5)  # type: ignore[attr-defined]
            return (-h, h)
        v = getattr(self, f"color_{name}") * s
        return (max(0.0, 1.0 - v), 1.0 + v)

    @property
    def effective_gray_p(self) -> float:
        return min(1.0, self.gray_p * self.color_strength)  # type: ignore[attr-defined]

    @property
    def blur_kernel(self) -> int:
        k = round(self.blur_kernel_frac * self.size)  # type: ignore[attr-defined]
        k = k if k % 2 == 1 else k + 1
        return max(3, k)

    @staticmethod
    def field_doc(name: str) -> str:
        """Documentation of a field (from the spec that declares it)."""
        for f in CONFIG_FIELDS:
            if f.name == name:
                return f.doc
        raise KeyError(name)

    def validate(self) -> None:
        """Raise ``ValueError`` with a clear message for impossible settings."""
        size = self.size  # type: ignore[attr-defined]
        if int(size) != size or size < 1:
            raise ValueError(f"view size must be a positive integer, got {size!r}")
        for f in CONFIG_FIELDS:
            if f.check == "prob" and not 0.0 <= float(getattr(self, f.name)) <= 1.0:
                raise ValueError(f"{f.name} must be a probability in [0, 1], got {getattr(self, f.name)!r}")
        for f in CONFIG_FIELDS:
            if f.check == "nonneg" and float(getattr(self, f.name)) < 0:
                raise ValueError(f"{f.name} must be >= 0, got {getattr(self, f.name)!r}")
        for f in CONFIG_FIELDS:
            if f.check == "range":
                lo, hi = getattr(self, f.name)
                if not (0.0 < float(lo) <= float(hi)):
                    raise ValueError(f"{f.name} must satisfy 0 < low <= high, got {(lo, hi)!r}")
        for f in CONFIG_FIELDS:
            if f.choices and getattr(self, f.name) not in f.choices:
                choices = " or ".join(repr(c) for c in f.choices)
                raise ValueError(f"{f.name} must be {choices}, got {getattr(self, f.name)!r}")
        for s in SPECS:
            if s.validate is not None:
                s.validate(self)  # type: ignore[arg-type]
        mean, std = self.mean, self.std  # type: ignore[attr-defined]
        if len(mean) != len(std) or any(float(s) <= 0 for s in std):
            raise ValueError("mean and std must have the same length and std must be positive")

    def with_(self, **changes: object) -> Any:
        return replace(self, **changes)  # type: ignore[type-var]


ViewConfig: Any = make_dataclass(
    "ViewConfig",
    [(f.name, f.type, field(default=f.default, metadata={"doc": f.doc})) for f in CONFIG_FIELDS],
    bases=(_ViewConfigMethods,),
)
ViewConfig.__module__ = __name__
ViewConfig.__doc__ = "Settings of one view. All probabilities are per sample; fields: see :data:`CONFIG_FIELDS`."


@dataclass
class AugmentConfig:
    """N-view pipeline: ``views[i]`` configures view i (BYOL-style asymmetric views differ per view)."""

    views: list[ViewConfig] = field(default_factory=lambda: [ViewConfig(), ViewConfig()])

    @classmethod
    def symmetric(cls, n: int = 2, **kw: object) -> AugmentConfig:
        return cls(views=[ViewConfig(**kw) for _ in range(n)])  # type: ignore[arg-type]

    @classmethod
    def byol(cls, size: int = 32, **kw: object) -> AugmentConfig:
        """BYOL's asymmetric views (Grill et al., 2020, Table 6): blur 1.0 / 0.1, solarize 0.0 / 0.2."""
        return cls(
            views=[
                ViewConfig(size=size, blur_p=1.0, sol_p=0.0, **kw),  # type: ignore[arg-type]
                ViewConfig(size=size, blur_p=0.1, sol_p=0.2, **kw),  # type: ignore[arg-type]
            ]
        )
