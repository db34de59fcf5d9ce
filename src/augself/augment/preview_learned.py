"""Per-input text and crop heat maps of learned augmentation distributions, for ``augself preview --run``.

A run pretrained with ``augment.learned`` (InstaAug, Miao et al., ICML 2023) keeps its invariance module in
``<run>/learned.pt``. For each previewed input, :func:`learned_label` writes the learned ranges from
:meth:`LearnedAugment.summary` (rotation ``theta ~ U[-lo, hi]``, crop entropy and expected side, colour ranges
``delta ~ U[-lo, hi]``), and :func:`render_crop_heatmaps` draws the crop distribution: the probability mass of every
candidate crop centre of each grid level, over the input (the cells of an ``n x n`` level tile the image, each
crop being centred on its own cell: reference ``mixmo_resnet_feature.py:277-293``, without its anti-diagonal flip).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["COLOR_NAMES", "crop_levels", "crop_path", "learned_label", "render_crop_heatmaps"]

COLOR_NAMES: dict[str, str] = {"brightness": "bright", "saturation": "sat", "hue": "hue"}
"""Short names of the learned colour factors in the labels."""


def learned_label(summary: dict[str, Tensor], b: int) -> str:
    """Input ``b``'s learned ranges as short lines, e.g. ``angle -12.0..+38.0°``, ``crop H=2.10 nats,
    E[side]=0.62``, ``bright -0.10..+0.20`` (colour factor ``1 + delta``; hue: shift ``delta`` of the hue circle)."""
    lines = []
    if "angle_lo_deg" in summary and "angle_hi_deg" in summary:
        lo, hi = float(summary["angle_lo_deg"][b]), float(summary["angle_hi_deg"][b])
        lines.append(f"angle -{lo:.1f}..+{hi:.1f}°")
    if "crop_entropy" in summary:
        text = f"crop H={float(summary['crop_entropy'][b]):.2f} nats"
        if "crop_expected_side" in summary:
            text += f", E[side]={float(summary['crop_expected_side'][b]):.2f}"
        lines.append(text)
    for key in summary:
        if key.startswith("color_") and key.endswith("_lo") and key.removesuffix("_lo") + "_hi" in summary:
            factor = key.removeprefix("color_").removesuffix("_lo")
            lo, hi = float(summary[key][b]), float(summary[key.removesuffix("_lo") + "_hi"][b])
            lines.append(f"{COLOR_NAMES.get(factor, factor)} -{lo:.2f}..+{hi:.2f}")
    return "\n".join(lines)


def crop_levels(probs: Tensor, grid: Sequence[Sequence[float]]) -> list[tuple[int, float, Tensor]]:
    """Split one input's candidate probabilities ``probs`` (K,) into ``(cells, side, (cells, cells) mass)`` per grid
    level (rows ``(cells, side, bias)``; candidates level by level, each level row-major: top row first)."""
    out, start = [], 0
    for row in grid:
        cells, side = int(row[0]), float(row[1])
        k = cells * cells
        out.append((cells, side, probs[start : start + k].reshape(cells, cells)))
        start += k
    if start != probs.numel():
        raise ValueError(f"crop probabilities have {probs.numel()} candidates, the grid {list(grid)} has {start}")
    return out


def crop_path(out: str | Path) -> Path:
    """Where the crop heat maps go next to the preview ``out``: ``<stem>-crop<suffix>``."""
    p = Path(out)
    return p.with_name(f"{p.stem}-crop{p.suffix or '.png'}")


def render_crop_heatmaps(
    images: Tensor, summary: dict[str, Tensor], grid: Sequence[Sequence[float]], path: str | Path
) -> Path:
    """One row per input: the input, then per grid level with more than one cell the probability mass of its
    candidate crop centres as a heat map over the input (title: cells, crop side, the level's total mass; colour
    scale per panel). Single-cell levels (the whole image) are listed with their mass above the input."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    probs = summary["crop_probs"]
    n = min(int(images.shape[0]), int(probs.shape[0]))
    shown = [i for i, row in enumerate(grid) if int(row[0]) > 1]
    cols = 1 + len(shown)
    fig = Figure(figsize=(2.3 * cols, 2.5 * n))
    FigureCanvasAgg(fig)
    src = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    H, W = src.shape[-2:]
    for r in range(n):
        levels = crop_levels(probs[r].float().cpu(), grid)
        picture = src[r].clamp(0, 1).permute(1, 2, 0).squeeze(-1).cpu().numpy()
        ax = fig.add_subplot(n, cols, r * cols + 1)
        ax.imshow(picture, cmap="gray")
        whole = ", ".join(
            f"{'whole image' if s >= 1 else f'centre crop {s:.2f}'}: {float(m.sum()):.0%}"
            for c, s, m in levels
            if c == 1
        )
        head = f"H={float(summary['crop_entropy'][r]):.2f} nats" if "crop_entropy" in summary else ""
        ax.set_title("\n".join(t for t in (f"input {r + 1} {head}", whole) if t), fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
        for j, i in enumerate(shown):
            cells, side, mass = levels[i]
            ax = fig.add_subplot(n, cols, r * cols + j + 2)
            ax.imshow(picture, cmap="gray", extent=(-0.5, W - 0.5, H - 0.5, -0.5))
            im = ax.imshow(
                mass.numpy(),
                cmap="magma",
                alpha=0.7,
                extent=(-0.5, W - 0.5, H - 0.5, -0.5),
                vmin=0.0,
                interpolation="nearest",
            )
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=5)
            ax.set_title(f"{cells}x{cells}, side {side:.2f}: {float(mass.sum()):.0%}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=110)
    return p
