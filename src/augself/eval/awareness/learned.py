"""Learned augmentation ranges of a run, grouped by the classes of the evaluation set (awareness report section).

A run pretrained with ``augment.learned`` (InstaAug, Miao et al., ICML 2023) saves its invariance module as
``<run>/learned.pt``; :meth:`LearnedAugment.summary` gives per-input values of each learned distribution (rotation
range ``[-lo, hi]`` in degrees, crop entropy in nats and expected crop side, colour ranges). This module reduces
them to mean ± std per class of the evaluation images and to a histogram of the expected crop side per class, so
the report shows whether the module learned *class-dependent* invariances (the Mario-Iggy experiment of the paper,
Sec. 5.1: upright vs upside-down sprites get different rotation ranges).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "LEARNED_FILE",
    "QUANTITY_LABELS",
    "find_learned",
    "group_stats",
    "learned_ranges",
    "per_input_summary",
    "scalar_quantities",
]

LEARNED_FILE = "learned.pt"
"""The invariance module's file in a run folder (written by pretraining with ``augment.learned``)."""

SIDE_BINS = 20
"""Bins of the expected-crop-side histogram over [0, 1]."""

QUANTITY_LABELS: dict[str, str] = {
    "angle_lo_deg": "angle lo (deg)",
    "angle_hi_deg": "angle hi (deg)",
    "crop_entropy": "crop entropy (nats)",
    "crop_expected_side": "crop E[side]",
}
"""Display names of the summary's scalar quantities (colour ranges are named ``<factor> lo`` / ``<factor> hi``)."""


def quantity_label(key: str) -> str:
    """Display name of a summary key: the table above, else ``color_<factor>_<lo|hi>`` -> ``<factor> lo|hi``."""
    if key in QUANTITY_LABELS:
        return QUANTITY_LABELS[key]
    if key.startswith("color_"):
        return key.removeprefix("color_").replace("_", " ")
    return key.replace("_", " ")


def find_learned(run_dir: str | Path | None) -> Path | None:
    """``<run_dir>/learned.pt`` when the run learned augmentations, else None."""
    if run_dir is None:
        return None
    p = Path(run_dir) / LEARNED_FILE
    return p if p.is_file() else None


@torch.no_grad()
def per_input_summary(
    module: nn.Module, images: Tensor, *, batch_size: int = 256, device: str | torch.device | None = None
) -> dict[str, Tensor]:
    """:meth:`LearnedAugment.summary` of ``images`` (uint8 / float (N, C, H, W)) in batches, concatenated on CPU.

    The module's training mode is kept as it is and restored (the reference never switches its batch norm to eval,
    ``learner.py:69,76``; ``summary`` decides what it uses)."""
    dev = torch.device(device) if device is not None else next(module.parameters()).device
    orig = next(module.parameters()).device
    module.to(dev)
    try:
        parts: dict[str, list[Tensor]] = {}
        for i in range(0, images.shape[0], int(batch_size)):
            out = module.summary(images[i : i + int(batch_size)].to(dev))  # type: ignore[operator]
            for k, v in out.items():
                parts.setdefault(k, []).append(v.detach().float().cpu())
    finally:
        module.to(orig)
    return {k: torch.cat(v) for k, v in parts.items()}


def scalar_quantities(summary: dict[str, Tensor]) -> list[str]:
    """The summary keys with one value per input (``crop_probs`` and other per-candidate tensors left out), in the
    order angle, crop, colour."""
    keys = [k for k, v in summary.items() if v.ndim == 1]
    order = {"angle": 0, "crop": 1, "color": 2}
    return sorted(keys, key=lambda k: (order.get(k.split("_")[0], 3), list(summary).index(k)))


def _stats(v: Tensor) -> dict[str, float]:
    n = int(v.numel())
    mean = float(v.mean()) if n else math.nan
    std = float(v.std(correction=1)) if n > 1 else math.nan
    return {"mean": mean, "std": std}


def group_stats(
    summary: dict[str, Tensor], labels: Tensor, classes: Sequence[str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per class of ``labels`` (negative = unlabelled: one group ``all``): ``{"name", "label", "n", "stats": {key:
    {"mean", "std"}}}`` for every scalar quantity (sample std, NaN for one image); and the same over all images."""
    keys = scalar_quantities(summary)
    labels = labels.long().cpu()
    groups: list[dict[str, Any]] = []
    for c in sorted(set(labels[labels >= 0].tolist())):
        m = labels == c
        name = str(classes[c]) if 0 <= c < len(classes) else str(c)
        groups.append(
            {"name": name, "label": int(c), "n": int(m.sum()), "stats": {k: _stats(summary[k][m]) for k in keys}}
        )
    overall = {"name": "all", "label": None, "n": int(labels.numel()), "stats": {k: _stats(summary[k]) for k in keys}}
    return groups, overall


def _side_histogram(summary: dict[str, Tensor], labels: Tensor, groups: list[dict[str, Any]]) -> dict[str, Any] | None:
    side = summary.get("crop_expected_side")
    if side is None:
        return None
    edges = torch.linspace(0.0, 1.0, SIDE_BINS + 1)
    counts: dict[str, list[int]] = {}
    for g in groups:
        v = side[labels.long().cpu() == g["label"]].clamp(0.0, 1.0)
        counts[g["name"]] = torch.histc(v, bins=SIDE_BINS, min=0.0, max=1.0).long().tolist()
    counts["all"] = torch.histc(side.clamp(0.0, 1.0), bins=SIDE_BINS, min=0.0, max=1.0).long().tolist()
    return {"edges": [round(float(e), 6) for e in edges], "counts": counts}


def learned_ranges(
    module: nn.Module,
    images: Tensor,
    labels: Tensor,
    classes: Sequence[str],
    *,
    file: str | Path | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """The report section's content (JSON-serialisable): per-class mean ± std of every learned per-input quantity
    and the per-class histogram of the expected crop side (``crop_side_hist``: ``SIDE_BINS`` bins over [0, 1]).

    ``images``: the evaluation images at the size the module saw in training (the run's ``data.size``);
    ``labels``: their classes (negative: unlabelled, then only the ``all`` row)."""
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"learned_ranges got {images.shape[0]} images and {labels.shape[0]} labels")
    summary = per_input_summary(module, images, batch_size=batch_size, device=device)
    groups, overall = group_stats(summary, labels, classes)
    cfg = getattr(module, "cfg", None)
    families = list(getattr(cfg, "families", ())) if cfg is not None else []
    keys = scalar_quantities(summary)
    return {
        "file": None if file is None else str(file),
        "families": families,
        "n_images": int(images.shape[0]),
        "image_size": int(images.shape[-1]),
        "quantities": keys,
        "labels": {k: quantity_label(k) for k in keys},
        "groups": groups,
        "all": overall,
        "crop_side_hist": _side_histogram(summary, labels, groups),
    }
