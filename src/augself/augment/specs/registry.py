"""The registry: every augmentation's spec, in pipeline order, and the tables derived from it.

Adding an augmentation: write ``specs/<name>.py`` with a ``SPEC`` (:class:`~augself.augment.specs.base.
AugmentationSpec`) and add its module name to :data:`MODULES`. ``ViewConfig`` fields, ``ViewParams`` fields and
identity values, ``TARGETS``, the AugSelf weight names, the awareness tables and the preview labels follow.

Op order (SimCLR / AugSelf, Lee et al., NeurIPS 2021, App. A): crop + resize -> flip -> colour jitter ->
grayscale -> blur -> solarize -> rotation (-> the augmentations added later: sharpness, continuous rotation) ->
normalise. Random draws per view: the ``first`` specs (the crop), one shared uniform block (the original
augmentations' columns, in this order), then each spec's own draws in this order.
"""

from __future__ import annotations

import importlib
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from augself.augment.specs.base import AugmentationSpec, RecordField, Target
from augself.names import check_name, unknown_name_message

if TYPE_CHECKING:
    from augself.augment.config import ViewConfig
    from augself.augment.params import ViewParams

MODULES: tuple[str, ...] = (
    "crop",
    "flip",
    "color",
    "gray",
    "blur",
    "sol",
    "rot",
    "sharp",
    "angle",  # continuous rotation last: a geometric op like rot, and no later op smooths its zero-filled corners
)
"""Modules of ``augself.augment.specs``, one per augmentation, in pipeline order."""

SPECS: tuple[AugmentationSpec, ...] = tuple(importlib.import_module(f"augself.augment.specs.{m}").SPEC for m in MODULES)
REGISTRY: dict[str, AugmentationSpec] = {s.name: s for s in SPECS}
"""Augmentation name -> spec, in pipeline order."""


def _check_registry() -> None:
    seen: dict[str, str] = {}
    for kind, names in (
        ("augmentation", [s.name for s in SPECS]),
        ("config field", [f.name for s in SPECS for f in s.config]),
        ("record field", [f.name for s in SPECS for f in s.record]),
        ("target", [t.name for s in SPECS for t in s.targets]),
    ):
        for n in names:
            if n in seen and seen[n] == kind:
                raise RuntimeError(f"augmentation registry: {kind} {n!r} is declared twice")
            seen[n] = kind
    for s in SPECS:  # the one vocabulary: every name of an augmentation is its name or starts with it
        for kind, names in (
            ("config field", [f.name for f in s.config]),
            ("record field", [f.name for f in s.record]),
            ("target", [t.name for t in s.targets]),
        ):
            for n in names:
                if n != s.name and not n.startswith(s.name + "_"):
                    raise RuntimeError(f"augmentation {s.name!r}: {kind} {n!r} must be {s.name!r} or {s.name}_<what>")
        ranges = {f.name for f in s.config if typing.get_origin(f.type) is tuple}
        for f in s.record:  # a config key may name a record field only as the range that field is drawn from
            if f.name in {c.name for c in s.config} and f.name not in ranges:
                raise RuntimeError(f"augmentation {s.name!r}: record field {f.name!r} is also a config setting")
    for kind, current, aliases in (
        (
            "config field",
            [f.name for s in SPECS for f in s.config],
            [a for s in SPECS for f in s.config for a in f.aliases],
        ),
        (
            "target",
            [t.name for s in SPECS for t in s.targets],
            [a for s in SPECS for t in s.targets for a in t.aliases],
        ),
    ):
        for a in aliases:
            if a in current or aliases.count(a) > 1:
                raise RuntimeError(f"augmentation registry: {kind} alias {a!r} is a current name or declared twice")
    for s in SPECS:
        if s.columns and not s.always_draws:
            raise RuntimeError(f"augmentation {s.name!r}: shared-block columns need always_draws=True")
        if s.first and s.columns:
            raise RuntimeError(f"augmentation {s.name!r}: a first spec draws its own numbers (columns=0)")


_check_registry()

RECORD_FIELDS: dict[str, RecordField] = {f.name: f for s in SPECS for f in s.record}
"""``ViewParams`` field name -> declaration, in pipeline order."""

TARGET_TABLE: dict[str, Target] = {t.name: t for s in SPECS for t in s.targets}
"""AugSelf target name -> target (dim, kind, relative and absolute forms)."""

CONFIG_ALIASES: dict[str, str] = {a: f.name for s in SPECS for f in s.config for a in f.aliases}
"""Old spelling of a view setting -> its name (read from configs by :mod:`augself.config_aliases`)."""

TARGET_ALIASES: dict[str, str] = {a: t.name for s in SPECS for t in s.targets for a in t.aliases}
"""Old spelling of an ``augself: {...}`` key -> its target name."""

SHARED_COLUMNS: int = sum(s.columns for s in SPECS)
"""Width of the shared uniform block drawn once per view (9: the original draw layout)."""

POST_OPS: tuple[AugmentationSpec, ...] = tuple(s for s in SPECS if s.apply is not None)
"""Specs whose op runs after colour jitter, in order (grayscale, blur, solarize, rotation, ...)."""


def identity_record(batch: int, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Every record field at its identity value (nothing applied, full crop)."""
    dev = torch.device(device)
    return {n: f.identity(batch, dev) for n, f in RECORD_FIELDS.items()}


# ---- awareness ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AwarenessTable:
    """The awareness report's tables, derived from the specs (see :func:`awareness_table`)."""

    augmentations: tuple[str, ...]
    """Augmentations the report knows (AUGMENTATIONS)."""
    defaults: tuple[str, ...]
    """Its default list (DEFAULT_AUGMENTATIONS)."""
    strengths: dict[str, tuple[float, ...]]
    """Strengths at which invariance is measured (DEFAULT_STRENGTHS)."""
    probe_strength: dict[str, float]
    """Setting of the predictability probe (PROBE_STRENGTH)."""
    target_dims: dict[str, list[str]]
    """Per-dimension names of the regression targets (TARGET_DIMS)."""


def _aware() -> list[AugmentationSpec]:
    ranked = [(s.awareness.rank, i, s) for i, s in enumerate(SPECS) if s.awareness is not None]
    return [s for _, _, s in sorted(ranked, key=lambda t: (t[0], t[1]))]


def awareness_table() -> AwarenessTable:
    """The awareness tables (augmentation name = its main AugSelf target name)."""
    specs = _aware()
    return AwarenessTable(
        augmentations=tuple(s.name for s in specs),
        defaults=tuple(s.name for s in specs if s.awareness and s.awareness.default),
        strengths={s.name: tuple(s.awareness.strengths) for s in specs if s.awareness},
        probe_strength={s.name: float(s.awareness.probe_strength) for s in specs if s.awareness},
        target_dims={
            s.name: list(TARGET_TABLE[s.name].dims)
            for s in specs
            if TARGET_TABLE[s.name].kind == "regression" and TARGET_TABLE[s.name].dims
        },
    )


def check_augmentations(names: Iterable[str] | str) -> list[str]:
    """Validate awareness augmentation names (deduplicated, in the given order); unknown or none: ``ValueError``."""
    valid = awareness_table().augmentations
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError(f"no augmentations given; valid: {', '.join(valid)}")
    for n in names:
        check_name(n, valid, "augmentation")
    return list(dict.fromkeys(names))


def _awareness_spec(name: str) -> AugmentationSpec:
    valid = awareness_table().augmentations
    if name not in valid:
        raise ValueError(unknown_name_message(name, valid, "augmentation"))
    return REGISTRY[name]


def off_settings() -> dict[str, Any]:
    """``ViewConfig`` settings with every augmentation off (full crop, nothing applied)."""
    out: dict[str, Any] = {}
    for s in SPECS:
        out.update(s.off)
    return out


def isolated_view(
    name: str | None, strength: float, size: int, mean: Iterable[float], std: Iterable[float]
) -> ViewConfig:
    """A view applying augmentation ``name`` alone at ``strength`` (``None``: the identity view), normalised
    with ``mean`` / ``std`` (the awareness report's isolation; see each spec's ``awareness.isolate``)."""
    from augself.augment.config import ViewConfig  # lazy: import cycle (augment.config is built from SPECS)

    kw: dict[str, Any] = {
        "size": int(size),
        **off_settings(),
        "mean": tuple(float(m) for m in mean),
        "std": tuple(float(s) for s in std),
    }
    if name is not None:
        aw = _awareness_spec(name).awareness
        assert aw is not None
        kw.update(aw.isolate(float(strength)))
    return ViewConfig(**kw)


def strength_label(name: str, strength: float) -> str:
    """A strength as the report shows it, e.g. ``scale>=0.2``, ``p=1``."""
    aw = _awareness_spec(name).awareness
    assert aw is not None
    return aw.label.format(float(strength))


def invariance_params(name: str, p: ViewParams, cfg: ViewConfig, generator: torch.Generator) -> ViewParams:
    """The sampled record used for the invariance measurement of ``name`` (rotation: a real turn)."""
    aw = _awareness_spec(name).awareness
    assert aw is not None
    return aw.invariance(p, cfg, generator) if aw.invariance is not None else p


# ---- preview -----------------------------------------------------------------------------------------------
def describe(p: ViewParams, b: int) -> str:
    """Sample ``b``'s recorded parameters as short lines (geometry / colour / the rest)."""
    lines: dict[int, list[str]] = {}
    for s in SPECS:
        if s.describe is None:
            continue
        text = s.describe(p, b)
        if text:
            lines.setdefault(s.preview_line, []).append(text)
    return "\n".join("  ".join(lines[k]) for k in sorted(lines))


def preview_targets(views: Iterable[ViewConfig]) -> list[str]:
    """AugSelf targets worth showing for these views: those of every augmentation some view applies."""
    views = list(views)
    return [t.name for s in SPECS if any(s.enabled(v) for v in views) for t in s.targets if t.preview]


# ---- names ----------------------------------------------------------------------------------------------
LOG_PREFIX = "train/augself/"
"""``metrics.csv`` column of an AugSelf loss term: ``train/augself/<target>`` (:class:`augself.augself_head.AugSelf`
logs ``augself/<target>``, :class:`augself.train.module.PretrainModule` adds ``train/``)."""


def vocabulary() -> dict[str, dict[str, Any]]:
    """Per augmentation, the names that belong to it: ``config`` keys (under ``augment:`` / ``augment.views[i]``
    / ``essl.view``), ``record`` fields (of :class:`~augself.augment.params.ViewParams`), AugSelf ``targets`` (the
    keys of ``augself: {...}``), their ``logs`` (``metrics.csv`` columns), ``aliases`` (old spelling -> name of a
    view setting) and ``target_aliases`` (old ``augself:`` key -> target); old spellings are still read."""
    return {
        s.name: {
            "config": tuple(f.name for f in s.config),
            "record": tuple(f.name for f in s.record),
            "targets": tuple(t.name for t in s.targets),
            "logs": tuple(f"{LOG_PREFIX}{t.name}" for t in s.targets),
            "aliases": {a: f.name for f in s.config for a in f.aliases},
            "target_aliases": {a: t.name for t in s.targets for a in t.aliases},
        }
        for s in SPECS
    }


def vocabulary_markdown() -> str:
    """The vocabulary as a Markdown table (``docs/augmentations.md``, kept in step by ``tests/test_vocabulary.py``;
    regenerate with :func:`update_vocabulary_doc`)."""

    def code(names: Iterable[str]) -> str:
        return ", ".join(f"`{n}`" for n in names) or "-"

    rows = [
        "| augmentation | config keys | record fields | targets (`augself:` keys) | log keys (`metrics.csv`) "
        "| old spellings (still read) |",
        "|---|---|---|---|---|---|",
    ]
    for name, v in vocabulary().items():
        old = [f"`{a}` -> `{n}`" for a, n in v["aliases"].items()]
        old += [f"`{a}` -> `{n}` (`augself:` key)" for a, n in v["target_aliases"].items()]
        rows.append(
            f"| `{name}` | {code(v['config'])} | {code(v['record'])} | {code(v['targets'])} | {code(v['logs'])} "
            f"| {', '.join(old) or '-'} |"
        )
    return "\n".join(rows) + "\n"


DOC_BEGIN = "<!-- vocabulary: generated by augself.augment.specs.registry.vocabulary_markdown; do not edit -->"
DOC_END = "<!-- end of vocabulary -->"


def update_vocabulary_doc(path: str) -> bool:
    """Rewrite the generated table between :data:`DOC_BEGIN` and :data:`DOC_END` of ``path``; True if it changed."""
    from pathlib import Path

    text = Path(path).read_text(encoding="utf-8")
    head, _, rest = text.partition(DOC_BEGIN + "\n")
    _, _, tail = rest.partition(DOC_END)
    new = f"{head}{DOC_BEGIN}\n{vocabulary_markdown()}{DOC_END}{tail}"
    if new != text:
        Path(path).write_text(new, encoding="utf-8")
    return new != text
