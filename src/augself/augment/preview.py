"""PNG grid of augmented view pairs with their recorded parameters and AugSelf targets (a visual check).

Each row shows the source image (with both crop boxes drawn: view 1 red, view 2 blue), view 1 and view 2
(un-normalised for display), then the recorded parameters of each view and the AugSelf difference targets
(Lee et al., NeurIPS 2021, Sec. 3) of the pair. Uses matplotlib's Agg canvas (no global backend change).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from augself.augment.config import AugmentConfig, ViewConfig
from augself.augment.params import ViewParams
from augself.augment.pipeline import Augmenter
from augself.augment.targets import relative_targets


def _display(x: Tensor, cfg: ViewConfig) -> Tensor:
    """Normalised (C, H, W) view -> (H, W, C) in [0, 1] for imshow."""
    x = x.detach().float().cpu()
    if cfg.normalize:
        C = x.shape[0]
        mean, std = list(cfg.mean), list(cfg.std)
        if len(mean) != C:
            mean, std = ([sum(mean) / len(mean)] * C, [sum(std) / len(std)] * C)
        x = x * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
    return x.clamp(0, 1).permute(1, 2, 0)


def _fmt(v: Tensor) -> str:
    return "[" + ", ".join(f"{float(t):+.2f}" for t in v.flatten()) + "]"


def describe(p: ViewParams, b: int) -> str:
    """One sample's recorded parameters as a short multi-line string."""
    c = p.crop[b]
    lines = [f"crop t{c[0]:.2f} l{c[1]:.2f} h{c[2]:.2f} w{c[3]:.2f}  flip {int(p.flip[b])}"]
    if p.jitter[b]:
        bb, cc, ss, hh = p.color[b].tolist()
        order = "".join("bcsh"[i] for i in p.order[b].tolist())
        lines.append(f"jit b{bb:.2f} c{cc:.2f} s{ss:.2f} h{hh:+.2f} ({order})")
    else:
        lines.append("jit -")
    extra = f"gray {int(p.gray[b])}  blur {float(p.sigma[b]):.2f}"
    if p.solarize[b]:
        extra += f"  sol {float(p.threshold[b]):.2f}"
    if p.rot[b]:
        extra += f"  rot {int(p.rot[b])}"
    lines.append(extra)
    return "\n".join(lines)


def render_preview(
    images: Tensor,
    augmenter: Augmenter,
    path: str | Path,
    n_pairs: int = 8,
    seed: int = 0,
    names: Sequence[str] = ("crop", "color", "flip", "blur"),
    source_crop: Tensor | None = None,
) -> Path:
    """Render ``n_pairs`` rows (source, view 1, view 2, params and targets) of ``images`` into a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    if augmenter.num_views < 2:
        raise ValueError("render_preview needs an augmenter with at least two views")
    n = min(int(n_pairs), images.shape[0])
    if n < 1:
        raise ValueError("render_preview needs at least one image")
    images = images[:n]
    sc = source_crop[:n] if source_crop is not None else None
    views = augmenter(images, source_crop=sc, generator=torch.Generator().manual_seed(seed))
    (x1, p1), (x2, p2) = views[0], views[1]
    cfg1, cfg2 = augmenter.views[0], augmenter.views[1]
    targets = relative_targets(p1, p2, names, cfg1, cfg_b=cfg2)

    fig = Figure(figsize=(11, 2.3 * n))
    FigureCanvasAgg(fig)
    H, W = images.shape[-2:]
    src = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    for r in range(n):
        ax0, ax1, ax2, ax3 = (fig.add_subplot(n, 4, 4 * r + k + 1) for k in range(4))
        ax0.imshow(src[r].clamp(0, 1).permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray")
        s_top, s_left, s_h, s_w = sc[r].tolist() if sc is not None else (0.0, 0.0, 1.0, 1.0)
        for p, colour in ((p1, "red"), (p2, "blue")):
            t, le, h, w = p.crop[r].tolist()
            t, le, h, w = (t - s_top) / s_h, (le - s_left) / s_w, h / s_h, w / s_w
            box = Rectangle((le * W - 0.5, t * H - 0.5), w * W, h * H, fill=False, color=colour, lw=1.5)
            ax0.add_patch(box)
        ax1.imshow(_display(x1[r], cfg1).squeeze(-1).numpy(), cmap="gray")
        ax2.imshow(_display(x2[r], cfg2).squeeze(-1).numpy(), cmap="gray")
        for ax, title in ((ax0, "source"), (ax1, "view 1"), (ax2, "view 2")):
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
        ax3.axis("off")
        tgt = "\n".join(
            f"{k}: {_fmt(v[r])}" if v.dtype.is_floating_point else f"{k}: {int(v[r])}" for k, v in targets.items()
        )
        text = f"view 1: {describe(p1, r)}\nview 2: {describe(p2, r)}\ntargets (1 - 2):\n{tgt}"
        ax3.text(0.0, 1.0, text, va="top", ha="left", fontsize=6.5, family="monospace", transform=ax3.transAxes)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _load_preview_images(data: str, source_size: int, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` uint8 images (n, C, s, s) and their source crops from a dataset name or image-folder path.

    The generated ``synthetic`` set is drawn with exactly ``n`` samples (fast); other datasets are read
    through :func:`augself.data.build_dataset` (split ``all`` for one un-split folder, else ``train``) and
    ``n`` samples are taken evenly spaced over the split, so several classes show up.
    """
    from augself.data import build_dataset

    if data == "synthetic":
        ds = build_dataset("synthetic", "train", size=source_size, seed=seed, n=n)
    else:
        try:
            ds = build_dataset(data, "all", size=source_size, seed=seed)
        except ValueError:  # pre-split folder or named dataset without an "all" split
            ds = build_dataset(data, "train", size=source_size, seed=seed)
    total = len(ds)  # type: ignore[arg-type]
    if total == 0:
        raise ValueError(f"dataset {data!r} has no images to preview")
    idx = torch.linspace(0, total - 1, min(n, total)).round().long().unique().tolist()
    samples = [ds[i] for i in idx]
    images = torch.stack([s["image"] for s in samples])
    crops = torch.stack([torch.as_tensor(s["source_crop"], dtype=torch.float32) for s in samples])
    return images, crops


def preview_dataset(
    data: str = "synthetic",
    out: str | Path = "runs/preview.png",
    *,
    size: int = 64,
    n_pairs: int = 6,
    seed: int = 0,
    source_size: int | None = None,
    augment: AugmentConfig | None = None,
) -> Path:
    """Render view pairs of ``data`` (a dataset name, e.g. the built-in ``synthetic``, or an image-folder path)
    with their recorded parameters and AugSelf targets into the PNG ``out``; returns its path.

    Images are brought to ``source_size`` (default ``size``) as the data loaders do (the decode crop is
    recorded and composed into the views' crops), then augmented by ``augment`` (default: two SimCLR/AugSelf
    views of side ``size`` plus solarize 0.2 and rotation 0.25 so every recorded field shows up) with a
    generator seeded by ``seed``. Takes about a second for the defaults.
    """
    if int(size) < 8:
        raise ValueError(f"preview size must be at least 8 pixels, got {size}")
    if int(n_pairs) < 1:
        raise ValueError(f"preview needs at least one pair (n_pairs >= 1), got {n_pairs}")
    src = int(source_size) if source_size is not None else int(size)
    if src < 1:
        raise ValueError(f"source_size must be positive, got {source_size}")
    images, crops = _load_preview_images(str(data), src, int(n_pairs), int(seed))
    if augment is None:
        augment = AugmentConfig.symmetric(2, size=int(size), solarize_p=0.2, rotate_p=0.25)
    aug = Augmenter(augment)
    names = ["crop", "color", "flip", "blur"]
    if any(v.solarize_p > 0 for v in aug.views):
        names.append("sol")
    if any(v.rotate_p > 0 for v in aug.views):
        names.append("rot")
    return render_preview(images, aug, out, n_pairs=int(n_pairs), seed=int(seed), names=names, source_crop=crops)
