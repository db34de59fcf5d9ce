"""Configuration of the augmentation pipeline (one :class:`ViewConfig` per view).

Defaults are SimCLR's (Chen et al., 2020) as used by AugSelf (Lee et al., NeurIPS 2021, Sec. 4 / App. A):
random resized crop scale (0.2, 1.0) with log-uniform aspect ratio (3/4, 4/3), horizontal flip p=0.5,
colour jitter (0.4, 0.4, 0.4, 0.1) with p=0.8 in random order, grayscale p=0.2, Gaussian blur p=0.5 with
sigma in [0.1, 2.0] and a kernel of about 10 % of the image size.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass
class ViewConfig:
    """Settings of one view. All probabilities are per sample."""

    size: int = 32
    """Output side length S (pixels)."""
    crop_scale: tuple[float, float] = (0.2, 1.0)
    """Area fraction range of the random resized crop (AugSelf: (0.2, 1.0))."""
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    """Aspect-ratio range, sampled log-uniformly (torchvision default)."""
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    """Brightness factor range is [1 - b*s, 1 + b*s] where s = ``color_strength``."""
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    """Hue shift range is [-h*s, h*s] (fraction of a full turn)."""
    color_strength: float = 1.0
    """AugSelf's colour-strength knob s (0.5 weak / 1 default / 2 strong): scales jitter ranges and gray_p."""
    saturation_mode: str = "blend"
    """``blend``: torchvision's saturation, a blend toward the grayscale image (modern default; also what E-SSL's
    torchvision ``ColorJitter`` does, ``cifar10/main.py`` line 29). ``hsv``: the AugSelf reference's kornia 0.4.1
    saturation, ``s <- clamp(s * f, 0, 1)`` in HSV (``transforms.py`` line 48 -> kornia ``enhance/adjust.py``
    line 61); the AugSelf paper configs select it."""
    color_order: str = "sample"
    """Random order of the four colour ops: one permutation per ``sample`` (torchvision's ``ColorJitter``, called
    per image: E-SSL) or one per ``batch`` and view (kornia 0.4.1's ``random_color_jitter_generator`` draws one
    ``torch.randperm(4)`` per call, ``random_generator.py`` line 77: the AugSelf reference); the AugSelf paper
    configs select ``batch``."""
    gray_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel_frac: float = 0.1
    """Kernel size = nearest odd integer to ``blur_kernel_frac * size`` (at least 3)."""
    solarize_p: float = 0.0
    """Solarize probability (BYOL uses 0.0 / 0.2 for its two views)."""
    solarize_threshold: tuple[float, float] = (0.0, 1.0)
    """Threshold ~ U[low, high]: (0, 1) as kornia's ``RandomSolarize(0.5, 0.0)`` in AugSelf's ``stl10_sol``; (0.5,
    0.5) is PIL's fixed ``ImageOps.solarize`` threshold 128 on 8-bit values (BYOL, E-SSL ImageNet ``utils.py``
    line 71)."""
    rotate_p: float = 0.0
    """Probability of a four-fold rotation k*90 deg, k ~ U{0,1,2,3} (AugSelf's `rot`)."""
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    normalize: bool = True

    def __post_init__(self) -> None:
        self.validate()

    # ---- derived ranges -------------------------------------------------------------------------------
    def factor_range(self, name: str) -> tuple[float, float]:
        """Range of a jitter factor after the colour-strength scaling (``name`` in b/c/s/h)."""
        s = self.color_strength
        if name == "hue":
            h = min(self.hue * s, 0.5)
            return (-h, h)
        v = getattr(self, name) * s
        return (max(0.0, 1.0 - v), 1.0 + v)

    @property
    def effective_gray_p(self) -> float:
        return min(1.0, self.gray_p * self.color_strength)

    @property
    def blur_kernel(self) -> int:
        k = round(self.blur_kernel_frac * self.size)
        k = k if k % 2 == 1 else k + 1
        return max(3, k)

    def validate(self) -> None:
        """Raise ``ValueError`` with a clear message for impossible settings."""
        if int(self.size) != self.size or self.size < 1:
            raise ValueError(f"view size must be a positive integer, got {self.size!r}")
        for name in ("flip_p", "jitter_p", "gray_p", "blur_p", "solarize_p", "rotate_p"):
            p = getattr(self, name)
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
        for name in ("brightness", "contrast", "saturation", "hue", "color_strength", "blur_kernel_frac"):
            v = getattr(self, name)
            if float(v) < 0:
                raise ValueError(f"{name} must be >= 0, got {v!r}")
        for name, lo_min in (("crop_scale", 0.0), ("crop_ratio", 0.0), ("blur_sigma", 0.0)):
            lo, hi = getattr(self, name)
            if not (lo_min < float(lo) <= float(hi)):
                raise ValueError(f"{name} must satisfy 0 < low <= high, got {(lo, hi)!r}")
        if self.crop_scale[1] > 1.0:
            raise ValueError(f"crop_scale upper bound must be <= 1, got {self.crop_scale!r}")
        if self.saturation_mode not in ("blend", "hsv"):
            raise ValueError(f"saturation_mode must be 'blend' or 'hsv', got {self.saturation_mode!r}")
        if self.color_order not in ("sample", "batch"):
            raise ValueError(f"color_order must be 'sample' or 'batch', got {self.color_order!r}")
        lo, hi = (float(v) for v in self.solarize_threshold)
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"solarize_threshold must satisfy 0 <= low <= high <= 1, got {self.solarize_threshold!r}")
        if len(self.mean) != len(self.std) or any(float(s) <= 0 for s in self.std):
            raise ValueError("mean and std must have the same length and std must be positive")

    def with_(self, **changes: object) -> ViewConfig:
        return replace(self, **changes)


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
                ViewConfig(size=size, blur_p=1.0, solarize_p=0.0, **kw),  # type: ignore[arg-type]
                ViewConfig(size=size, blur_p=0.1, solarize_p=0.2, **kw),  # type: ignore[arg-type]
            ]
        )
