"""What one augmentation declares about itself (:class:`AugmentationSpec`), in one place.

A spec holds the augmentation's config fields, its record fields with their identity values, how it is
sampled, the op, its AugSelf targets (relative and absolute forms; Lee et al., NeurIPS 2021, Sec. 3), its
awareness isolation and strengths and its preview label. :mod:`augself.augment.specs.registry` lists the specs
in pipeline order; ``ViewConfig``, ``ViewParams``, ``TARGETS``, the awareness tables and the preview text are
derived from that list.

This module imports nothing else of augself (``ViewConfig`` itself is built from the specs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

if TYPE_CHECKING:
    from augself.augment.config import ViewConfig
    from augself.augment.params import ViewParams

Check = Literal["", "prob", "nonneg", "range"]


@dataclass(frozen=True)
class ConfigField:
    """One ``ViewConfig`` field (a YAML key under ``augment:`` / ``augment.views[i]``)."""

    name: str
    type: Any
    default: Any
    doc: str
    check: Check = ""
    """``prob``: in [0, 1]; ``nonneg``: >= 0; ``range``: a pair with 0 < low <= high; "": none (or ``choices``)."""
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    """Older spellings of the key, still read from configs (rewritten to ``name`` by
    :func:`augself.config_aliases.canonical_config`, with one warning line each)."""


@dataclass(frozen=True)
class RecordField:
    """One ``ViewParams`` field: a per-sample tensor whose first dimension is the batch."""

    name: str
    identity: Callable[[int, torch.device], Tensor]
    """The value of a sample where the augmentation was not applied (AugSelf reference quirk Q2)."""
    doc: str


@dataclass(frozen=True)
class Target:
    """An AugSelf target: ``relative(a, b, cfg_a, cfg_b)`` is ω_a - ω_b in view a's frame, ``absolute(p, cfg)``
    one view's ω; regression and binary targets are float (B, dim), class targets long (B,)."""

    name: str
    dim: int
    """Output dimension of the head (number of classes for ``class``)."""
    kind: Literal["regression", "binary", "class"]
    relative: Callable[[ViewParams, ViewParams, ViewConfig, ViewConfig], Tensor]
    absolute: Callable[[ViewParams, ViewConfig], Tensor]
    dims: tuple[str, ...] = ()
    """Names of the regression dimensions (the awareness report's per-dimension R^2)."""
    preview: bool = True
    """Shown by ``augself preview`` when its augmentation is on."""
    uses_cfg: bool = False
    """Normalised by the view's settings (needs the ``ViewConfig`` each record was sampled with)."""
    aliases: tuple[str, ...] = ()
    """Older spellings of the target's ``augself: {...}`` key, still read from configs."""


@dataclass(frozen=True)
class Awareness:
    """How the awareness report isolates this augmentation (every other op off) and at which strengths."""

    strengths: tuple[float, ...]
    """Strengths at which invariance is measured."""
    probe_strength: float
    """Pretraining-default setting used for the predictability probe."""
    isolate: Callable[[float], dict[str, Any]]
    """``ViewConfig`` settings that apply this augmentation alone at a strength (on top of ``off`` of all)."""
    label: str
    """Format of a strength for the report, e.g. ``"p={:g}"``."""
    rank: int = 100
    """Position in the report's lists (its original order: crop, color, flip, blur, rot, sol); ties: registry
    order."""
    default: bool = True
    """Part of the report's default augmentation list."""
    invariance: Callable[[ViewParams, ViewConfig, torch.Generator], ViewParams] | None = None
    """Optional change of the sampled record before the invariance measurement (rotation: a real turn)."""


@dataclass
class Draws:
    """What a spec's ``sample`` gets: the view's config, the batch and the random source.

    ``u`` holds the spec's ``columns`` of the shared uniform block (drawn once per view after the ``first``
    specs); ``rand(*shape)`` draws fresh uniforms (B, *shape) from the same generator, in registry order.
    """

    cfg: ViewConfig
    batch: int
    device: torch.device
    generator: torch.Generator | None
    input_size: tuple[int, int] | None
    u: Tensor | None = None
    source_crop: Tensor | None = None
    """(B, 4) region of the original image the input shows (the crop is recorded in the original's frame)."""

    def rand(self, *shape: int) -> Tensor:
        return uniform((self.batch, *shape), self.generator, self.device)


def no_flags(n: int, device: torch.device | None) -> Tensor:
    """Identity value of a per-sample "applied" record field: ``n`` times False."""
    return torch.zeros(n, dtype=torch.bool, device=device)


def uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """U[0, 1) drawn on the generator's device, then moved (the same values whatever ``device``)."""
    draw_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=draw_device).to(device)


@dataclass(frozen=True)
class AugmentationSpec:
    """Everything about one augmentation (see the module docstring). ``name`` is the one vocabulary key:
    the AugSelf weight key (``augself: {name: lambda}``), its main target and log key ``train/augself/<name>``,
    the awareness name, the prefix of its preview label and of every name that belongs to it: each config field,
    record field and further target is ``name`` or ``name_<what>`` (checked by the registry; the table is
    ``docs/augmentations.md``)."""

    name: str
    config: tuple[ConfigField, ...]
    record: tuple[RecordField, ...]
    sample: Callable[[Draws], dict[str, Tensor]]
    """Per-sample parameters of one view -> record fields (identity values where not applied)."""
    off: Mapping[str, Any] = field(default_factory=dict)
    """``ViewConfig`` settings that switch this augmentation off (awareness isolation)."""
    enabled: Callable[[ViewConfig], bool] = lambda cfg: True
    """Whether the view can apply it at all (e.g. probability > 0)."""
    columns: int = 0
    """Columns of the shared uniform block (the original augmentations' draw layout)."""
    first: bool = False
    """Sampled before the shared block (the crop)."""
    always_draws: bool = True
    """Draws even when ``enabled`` is false. Augmentations added later keep it False, so a config without them
    consumes exactly the random numbers it did before they existed (same seed, same views)."""
    apply: Callable[[Tensor, ViewParams, ViewConfig], Tensor] | None = None
    """The op on an owned float batch in [0, 1] (may write into it), after colour jitter, in registry order.
    None: done by the pipeline's fused first pass (crop + resize + flip, colour jitter with CPU chunking)."""
    targets: tuple[Target, ...] = ()
    awareness: Awareness | None = None
    describe: Callable[[ViewParams, int], str | None] | None = None
    """One sample's parameters as a short label (None: nothing to show)."""
    preview_line: int = 2
    """Line of the preview's parameter text (0: geometry, 1: colour, 2: the rest)."""
    validate: Callable[[ViewConfig], None] | None = None
    """Checks across its fields that the per-field ``check`` cannot express (raise ``ValueError``)."""
