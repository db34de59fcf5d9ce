"""Settings of learned per-input augmentations (InstaAug; Miao et al., ICML 2023), the ``augment.learned`` entry.

``augment.learned: {crop: {...}, angle: {...}, color: {...}, lr: ..., ...}``: each key that names an augmentation
turns on a learned sampler for it (its fixed ranges are then not used); the other keys are shared settings of the
invariance module. Every default cites the reference code, NingMiao/InstaAug at ``adee496`` (paths relative to its
root); where the reference's two code generations differ the HEAD value is used, and deliberate deviations are listed
in ``docs/reproduction.md`` ("Learned augmentations").

Entropy term, per family (reference ``examples/mixmo-pytorch/mixmo/core/loss.py:323-324`` and
``examples/self-supervised/train.py:144-157``): with ``target_entropy`` unset, a linear bonus
``-entropy_weight * mean_i H(x_i)`` (supervised configs); with ``target_entropy`` set, a quadratic penalty
``entropy_weight * (mean_i H(x_i) - target_t)^2`` whose target ramps linearly from the first step's batch entropy to
``target_entropy`` over ``target_ramp_epochs`` (the contrastive config, weight 0.3). ``entropy_bounds: [lo, hi]``
adapts the linear bonus's weight once per epoch as ``InstaAug_module/scheduler.py`` does (x1.2 after two epochs below
``lo``, /1.2 after two above ``hi``, at most 50 net steps), from the epoch's training entropy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from augself.config_error import ConfigError
from augself.names import close_match_hint

__all__ = [
    "FAMILIES",
    "EntropyConfig",
    "LearnedAngleConfig",
    "LearnedColorConfig",
    "LearnedConfig",
    "LearnedCropConfig",
    "parse_learned",
]


@dataclass(frozen=True)
class EntropyConfig:
    """The entropy term of one family (module docstring)."""

    weight: float
    target: float | None = None
    ramp_epochs: float = 0.0
    bounds: tuple[float, float] | None = None


@dataclass(frozen=True)
class LearnedCropConfig:
    """Crop: a categorical distribution over a fixed grid of square candidate crops, trained with REINFORCE.

    ``grid``: one ``(cells, side, bias)`` row per level: ``cells x cells`` crops whose side is ``side`` times the
    image side, centred on the cells of an even grid, with prior logit offset ``bias - log(cells^2)``. Default: the
    reference's Tiny-ImageNet supervised levels ``crop_layer: [2, 3, -1]`` = 16x16 at 37.5 %, 8x8 at 75 %, the whole
    image (``mixmo_resnet_feature.py:308-319`` scopes 0.375 / 0.75 / 1), ``crop_layer_bias: [0, 1, 3]``
    (``configs/config_crop_supervised.yaml``). The contrastive config uses ``[[8, 0.75, 1.0], [1, 1.0, 1.0]]``
    (``config_crop_contrastive.yaml``: layers ``[3, -1]``, bias ``[1, 1]``).
    ``jitter``: the paper-era code's position / size jitter within each cell (``6d9c256``
    ``augmentation_ConvFeature.py:89-92``); HEAD has none.
    """

    grid: tuple[tuple[int, float, float], ...] = ((16, 0.375, 0.0), (8, 0.75, 1.0), (1, 1.0, 3.0))
    jitter: bool = False
    entropy: EntropyConfig = field(default_factory=lambda: EntropyConfig(0.2, bounds=(3.0, 3.5)))
    """``entropy_weights: [0.2]``, ``entropy_min/max_thresholds: [3.0] / [3.5]`` (``config_crop_supervised.yaml``)."""


@dataclass(frozen=True)
class LearnedAngleConfig:
    """Rotation by a continuous angle theta ~ U[-lo(x), hi(x)], reparameterised (Mario-Iggy experiment).

    ``lo, hi = max_deg * sigmoid(p - offset_shift)`` per input: ``distribution.py:409-428``
    (``torch.sigmoid(param-2)*np.pi``: max 180 deg, shift 2). The entropy is the reference's: the two widths in
    radians, each weighted ``entropy_weight`` (``configs/config_rotation_supervised.yaml``: ``[0.1, 0.1]``).
    """

    max_deg: float = 180.0
    offset_shift: float = 2.0
    entropy: EntropyConfig = field(default_factory=lambda: EntropyConfig(0.1))


@dataclass(frozen=True)
class LearnedColorConfig:
    """Colour jitter with per-input uniform ranges for brightness, saturation and hue, reparameterised (RawFooT).

    Factor ``1 + delta`` (hue: shift ``delta``), ``delta ~ U[-lo(x), hi(x)]``, ``lo, hi = max * sigmoid(p - 4)``
    (``distribution.py:361-396``: ``sigmoid(param-4)`` times ``max_range`` h 0.0, s 0.0, v 0.8; so only brightness is
    learned in the reference's config). Entropy = the widths, weight 0.1 each
    (``config_color_jittering_supervised.yaml``). Brightness scales RGB, which is the reference's V scaling below
    saturation; saturation is torchvision's blend with grey, not the reference's S scaling (docs/reproduction.md).
    """

    brightness: float = 0.8
    saturation: float = 0.0
    hue: float = 0.0
    offset_shift: float = 4.0
    entropy: EntropyConfig = field(default_factory=lambda: EntropyConfig(0.1))


FAMILIES: dict[str, type] = {"crop": LearnedCropConfig, "angle": LearnedAngleConfig, "color": LearnedColorConfig}
"""Augmentations with a learned sampler: the record field(s) it fills are the augmentation's own."""


@dataclass(frozen=True)
class LearnedConfig:
    """The invariance module and its optimisation (shared by the families)."""

    crop: LearnedCropConfig | None = None
    angle: LearnedAngleConfig | None = None
    color: LearnedColorConfig | None = None
    widths: tuple[int, ...] = (8, 8, 16, 32)
    """Pre-activation ResNet widths, one block per stage after the stem (``mixmo_resnet_feature.py:122-126``)."""
    net_size: int | None = None
    """Side the module's input is resized to; None: the image's own side (the reference feeds its 64-px inputs)."""
    lr: float = 1e-5
    """The module's learning rate (``config_*_supervised.yaml`` ``lr: 0.00001``; contrastive: 1e-4)."""
    weight_decay: float = 0.0
    warmup_epochs: float = 10.0
    """Linear lr ramp of the module (``warmup_period: 10``, ``abstract_learner.py:319-322``; contrastive 0)."""
    start_epoch: float = 0.0
    """Epochs with the module frozen at lr 0 (contrastive ``no_train_period: 50``; supervised 0)."""

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(n for n in FAMILIES if getattr(self, n) is not None)


_SHARED = tuple(f.name for f in fields(LearnedConfig) if f.name not in FAMILIES)
_ENTROPY_KEYS = ("entropy_weight", "target_entropy", "target_ramp_epochs", "entropy_bounds")


def _number(value: Any, key: str, *, positive: bool = False, nonneg: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{key} must be a number, got {value!r}")
    try:
        x = float(value)
    except ValueError:
        raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ConfigError(f"{key} must be finite, got {value!r}")
    if positive and x <= 0:
        raise ConfigError(f"{key} must be > 0, got {value!r}")
    if nonneg and x < 0:
        raise ConfigError(f"{key} must be >= 0, got {value!r}")
    return x


def _entropy(raw: Mapping[str, Any], default: EntropyConfig, key: str) -> EntropyConfig:
    w = _number(raw.get("entropy_weight", default.weight), f"{key}.entropy_weight", nonneg=True)
    t = raw.get("target_entropy", default.target)
    target = None if t is None else _number(t, f"{key}.target_entropy")
    ramp = _number(raw.get("target_ramp_epochs", default.ramp_epochs), f"{key}.target_ramp_epochs", nonneg=True)
    # a target replaces the default adaptive bounds unless bounds are given too
    b = raw.get("entropy_bounds", None if "target_entropy" in raw else default.bounds)
    bounds = None
    if b is not None:
        if not isinstance(b, list | tuple) or len(b) != 2:
            raise ConfigError(f"{key}.entropy_bounds must be [low, high] or null, got {b!r}")
        lo, hi = (_number(v, f"{key}.entropy_bounds") for v in b)
        if lo > hi:
            raise ConfigError(f"{key}.entropy_bounds must have low <= high, got {b!r}")
        bounds = (lo, hi)
    if target is not None and bounds is not None:
        raise ConfigError(
            f"{key}: give target_entropy (quadratic penalty) or entropy_bounds (adaptive bonus), not both"
        )
    return EntropyConfig(w, target, ramp, bounds)


def _grid(value: Any, key: str) -> tuple[tuple[int, float, float], ...]:
    if not isinstance(value, list | tuple) or not value:
        raise ConfigError(f"{key} must be a list of [cells, side, bias] rows, e.g. [[8, 0.75, 1.0], [1, 1.0, 1.0]]")
    rows = []
    for i, row in enumerate(value):
        if not isinstance(row, list | tuple) or len(row) != 3:
            raise ConfigError(f"{key}[{i}] must be [cells, side, bias], got {row!r}")
        cells = _number(row[0], f"{key}[{i}] cells", positive=True)
        if cells != int(cells):
            raise ConfigError(f"{key}[{i}] cells must be a whole number, got {row[0]!r}")
        side = _number(row[1], f"{key}[{i}] side", positive=True)
        if side > 1:
            raise ConfigError(f"{key}[{i}] side must be in (0, 1] (a fraction of the image side), got {row[1]!r}")
        rows.append((int(cells), side, _number(row[2], f"{key}[{i}] bias")))
    return tuple(rows)


def _family(name: str, raw: Any, key: str) -> Any:
    if raw is None or raw is True:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key} must be a mapping of settings ({{}} = the reference defaults), got {raw!r}")
    cls = FAMILIES[name]
    default = cls()
    valid = [f.name for f in fields(cls) if f.name != "entropy"] + list(_ENTROPY_KEYS)
    for k in raw:
        if k not in valid:
            raise ConfigError(f"unknown key {key}.{k}; valid: {', '.join(valid)}.{close_match_hint(k, valid)}")
    values: dict[str, Any] = {"entropy": _entropy(raw, default.entropy, key)}
    for f in fields(cls):
        if f.name == "entropy" or f.name not in raw:
            continue
        sub = f"{key}.{f.name}"
        if f.name == "grid":
            values[f.name] = _grid(raw[f.name], sub)
        elif f.name == "jitter":
            if not isinstance(raw[f.name], bool):
                raise ConfigError(f"{sub} must be true or false, got {raw[f.name]!r}")
            values[f.name] = raw[f.name]
        else:
            values[f.name] = _number(raw[f.name], sub, nonneg=True)
    if name == "angle" and not 0 < values.get("max_deg", default.max_deg) <= 180:
        raise ConfigError(f"{key}.max_deg must be in (0, 180], got {values['max_deg']!r}")
    if name == "color":
        ranges = {k: values.get(k, getattr(default, k)) for k in ("brightness", "saturation", "hue")}
        if ranges["hue"] > 0.5:
            raise ConfigError(f"{key}.hue must be in [0, 0.5] (a fraction of the hue circle), got {ranges['hue']!r}")
        if not any(v > 0 for v in ranges.values()):
            raise ConfigError(f"{key}: at least one of brightness, saturation, hue must be > 0")
    return cls(**values)


def parse_learned(raw: Mapping[str, Any] | None, key: str = "augment.learned") -> LearnedConfig | None:
    """``augment.learned`` as a :class:`LearnedConfig`, or None when it is empty; one-line :class:`ConfigError`."""
    if raw is None or (isinstance(raw, Mapping) and not raw):
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key} must be a mapping such as {{angle: {{}}}}, got {raw!r}")
    valid = [*FAMILIES, *_SHARED]
    values: dict[str, Any] = {}
    for k, v in raw.items():
        sub = f"{key}.{k}"
        if k in FAMILIES:
            if v is not None and v is not False:
                values[k] = _family(k, v, sub)
        elif k == "widths":
            if not isinstance(v, list | tuple) or not v:
                raise ConfigError(f"{sub} must be a list of channel counts, e.g. [8, 8, 16, 32], got {v!r}")
            ws = [_number(w, sub, positive=True) for w in v]
            if any(w != int(w) for w in ws):
                raise ConfigError(f"{sub} must be whole numbers, got {v!r}")
            values[k] = tuple(int(w) for w in ws)
        elif k == "net_size":
            if v is not None:
                n = _number(v, sub, positive=True)
                if n != int(n) or n < 8:
                    raise ConfigError(f"{sub} must be a whole number >= 8, got {v!r}")
                values[k] = int(n)
        elif k in _SHARED:
            values[k] = _number(v, sub, nonneg=True)
        else:
            hint = close_match_hint(k, valid)
            raise ConfigError(
                f"unknown key {sub}: learned samplers exist for {', '.join(FAMILIES)}; shared settings are "
                f"{', '.join(_SHARED)}.{hint}"
            )
    cfg = LearnedConfig(**values)
    if not cfg.families:
        names = ", ".join(FAMILIES)
        raise ConfigError(f"{key} names no augmentation to learn; add one of {names}, e.g. {{angle: {{}}}}")
    return cfg
