"""PNG grid of augmented views with their recorded parameters and AugSelf targets (a visual check).

Each row shows the source image (with every view's crop box drawn: view 1 red, view 2 blue, ...), each view
(un-normalised for display), then the recorded parameters of each view and the AugSelf difference targets
(Lee et al., NeurIPS 2021, Sec. 3) of views 1 and 2. Uses matplotlib's Agg canvas (no global backend change).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from augself.augment.config import AugmentConfig, ViewConfig
from augself.augment.params import ViewParams
from augself.augment.pipeline import Augmenter
from augself.augment.preview_learned import crop_path, learned_label, render_crop_heatmaps
from augself.augment.specs.registry import describe as describe_record
from augself.augment.specs.registry import preview_targets
from augself.augment.targets import relative_targets
from augself.config import PretrainConfig, load_config
from augself.data import build_dataset
from augself.data.registry import GENERATED
from augself.essl import views_with_essl


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


_BOX_COLOURS = ["red", "blue", "green", "orange", "purple", "cyan", "magenta", "yellow"]
"""Crop-box colour of view 1, 2, ... on the source image (repeated beyond eight views)."""


def _fmt(v: Tensor) -> str:
    return "[" + ", ".join(f"{float(t):+.2f}" for t in v.flatten()) + "]"


def describe(p: ViewParams, b: int) -> str:
    """One sample's recorded parameters as a short multi-line string (each augmentation's spec label)."""
    return describe_record(p, b)


def render_preview(
    images: Tensor,
    augmenter: Augmenter,
    path: str | Path,
    n_pairs: int = 8,
    seed: int = 0,
    names: Sequence[str] | None = None,
    source_crop: Tensor | None = None,
    titles: Sequence[str] | None = None,
    learned: nn.Module | None = None,
) -> Path:
    """Render ``n_pairs`` rows (source, every view of ``augmenter``, params and the targets of views 1 and 2) of
    ``images`` into a PNG. ``titles``: one column title per view (default ``view 1``, ``view 2``, ...).
    ``learned``: a :class:`~augself.augment.learned.LearnedAugment` (a run's ``learned.pt``): the views draw the
    learned augmentations from its per-input distributions and each row lists the input's learned ranges
    (:func:`augself.augment.preview_learned.learned_label`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    if augmenter.num_views < 1:
        raise ValueError("render_preview needs an augmenter with at least one view")
    n = min(int(n_pairs), images.shape[0])
    if n < 1:
        raise ValueError("render_preview needs at least one image")
    images = images[:n]
    sc = source_crop[:n] if source_crop is not None else None
    gen = torch.Generator().manual_seed(seed)
    if learned is None:
        views = augmenter(images, source_crop=sc, generator=gen)
        learned_text = [""] * n
    else:
        with torch.no_grad():
            views = augmenter(images, source_crop=sc, generator=gen, learned=learned)
            summary = learned.summary(images)  # type: ignore[operator]
        learned_text = [f"learned (this input):\n{learned_label(summary, r)}\n" for r in range(n)]
    n_views = len(views)
    titles = list(titles) if titles is not None else [f"view {k + 1}" for k in range(n_views)]
    if len(titles) != n_views:
        raise ValueError(f"render_preview got {len(titles)} titles for {n_views} views")
    targets: dict[str, Tensor] = {}
    if n_views >= 2:  # a single view (e.g. a supervised run) has no AugSelf targets
        p1, p2 = views[0].params, views[1].params
        cfg1, cfg2 = augmenter.views[0], augmenter.views[1]
        targets = relative_targets(p1, p2, preview_targets((cfg1, cfg2)) if names is None else names)

    cols = n_views + 2
    extra = max(t.count("\n") for t in learned_text)
    row_h = max(2.3, 0.11 * (3 * n_views + 1 + len(targets) + extra))  # room for every view's record lines
    fig = Figure(figsize=(2.75 * cols, row_h * n))
    FigureCanvasAgg(fig)
    H, W = images.shape[-2:]
    src = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    for r in range(n):
        axes = [fig.add_subplot(n, cols, cols * r + k + 1) for k in range(cols)]
        ax0, ax_text = axes[0], axes[-1]
        ax0.imshow(src[r].clamp(0, 1).permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray")
        s_top, s_left, s_h, s_w = sc[r].tolist() if sc is not None else (0.0, 0.0, 1.0, 1.0)
        for k, v in enumerate(views):
            t, le, h, w = v.params.crop[r].tolist()
            t, le, h, w = (t - s_top) / s_h, (le - s_left) / s_w, h / s_h, w / s_w
            box = Rectangle(
                (le * W - 0.5, t * H - 0.5), w * W, h * H, fill=False, color=_BOX_COLOURS[k % len(_BOX_COLOURS)], lw=1.5
            )
            ax0.add_patch(box)
        for ax, v, cfg in zip(axes[1:-1], views, augmenter.views, strict=True):
            ax.imshow(_display(v.image[r], cfg).squeeze(-1).numpy(), cmap="gray")
        for ax, title in zip(axes[:-1], ["source", *titles], strict=True):
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
        ax_text.axis("off")
        tgt = "\n".join(
            f"{k}: {_fmt(v[r])}" if v.dtype.is_floating_point else f"{k}: {int(v[r])}" for k, v in targets.items()
        )
        records = "\n".join(f"{title}: {describe(v.params, r)}" for title, v in zip(titles, views, strict=True))
        text = f"{learned_text[r]}{records}" + (f"\ntargets (1 - 2):\n{tgt}" if targets else "")
        ax_text.text(0.0, 1.0, text, va="top", ha="left", fontsize=6.5, family="monospace", transform=ax_text.transAxes)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _load_preview_images(
    data: str, source_size: int, n: int, seed: int, root: str | None = None
) -> tuple[Tensor, Tensor]:
    """``n`` uint8 images (n, C, s, s) and their source crops from a dataset name or image-folder path.

    The generated sets (``synthetic``, ``synthetic_orientation``) are drawn with exactly ``n`` samples (fast); other
    datasets are read through :func:`augself.data.build_dataset` (under ``root``; split ``all`` for one un-split
    folder, else ``train``) and ``n`` samples are taken evenly spaced over the split, so several classes show up.
    """
    if data in GENERATED:
        ds = build_dataset(data, "train", size=source_size, seed=seed, n=n)
    else:
        try:
            ds = build_dataset(data, "all", size=source_size, root=root, seed=seed)
        except ValueError:  # pre-split folder or named dataset without an "all" split
            ds = build_dataset(data, "train", size=source_size, root=root, seed=seed)
    total = len(ds)  # type: ignore[arg-type]
    if total == 0:
        raise ValueError(f"dataset {data!r} has no images to preview")
    idx = torch.linspace(0, total - 1, min(n, total)).round().long().unique().tolist()
    samples = [ds[i] for i in idx]
    images = torch.stack([s["image"] for s in samples])
    crops = torch.stack([torch.as_tensor(s["source_crop"], dtype=torch.float32) for s in samples])
    return images, crops


DEFAULT_PREVIEW_SIZE = 64
"""View side of ``augself preview`` without a config (large enough to see the ops on the generated shapes)."""


def default_preview_augment(size: int = DEFAULT_PREVIEW_SIZE) -> AugmentConfig:
    """The pipeline ``augself preview`` shows without a config: two SimCLR/AugSelf views (:class:`ViewConfig`
    defaults: crop scale 0.2-1, flip 0.5, jitter 0.8, grayscale 0.2, blur 0.5) of side ``size`` plus solarize 0.2
    and rotation 0.25, so every recorded field shows up. Not any config's pipeline: pass one to see its views."""
    return AugmentConfig.symmetric(2, size=int(size), sol_p=0.2, rot_p=0.25)


def config_views(cfg: PretrainConfig) -> tuple[AugmentConfig, list[str]]:
    """The views a pretraining run of ``cfg`` draws, with their column titles: ``augment`` (shared settings merged
    with each ``augment.views[i]``), then E-SSL's rotation view when ``essl.weight > 0`` (as
    :class:`augself.train.module.PretrainModule` builds them: :func:`augself.essl.views_with_essl`)."""
    aug, n = views_with_essl(cfg)
    return aug, [f"view {k + 1}" for k in range(n)] + ["E-SSL rotation view (x4 turns)"] * (len(aug.views) - n)


def _shown_targets(views: Sequence[ViewConfig]) -> list[str]:
    """AugSelf targets of views 1 and 2 whose augmentation either view can apply (from the augmentation specs);
    none for a single view."""
    return preview_targets(views[:2]) if len(views) >= 2 else []


def preview_dataset(
    data: str | None = None,
    out: str | Path = "runs/preview.png",
    *,
    size: int | None = None,
    n_pairs: int = 6,
    seed: int = 0,
    source_size: int | None = None,
    augment: AugmentConfig | None = None,
    config: str | Path | PretrainConfig | None = None,
    overrides: Sequence[str] = (),
    learned: nn.Module | None = None,
) -> Path:
    """Render views of ``data`` (a dataset name, e.g. the built-in ``synthetic``, or an image-folder path) with
    their recorded parameters and the AugSelf targets of views 1 and 2 into the PNG ``out``; returns its path.

    With ``config`` (a pretraining YAML, merged with ``key=value`` ``overrides`` by :func:`augself.config.load_config`,
    or a loaded config) the views are that run's (:func:`config_views`: every ``augment`` view, E-SSL's rotation
    view when ``essl.weight > 0``) on its ``data.name`` (unless ``data`` is given), ``data.root`` and ``data.size``.
    Without it: ``data`` (default ``synthetic``) at ``source_size`` (default ``size``, default 64), augmented by
    ``augment`` (default :func:`default_preview_augment`). Images are brought to the source size as the data
    loaders do for fixed-size sets and ``data.crop: centre_square`` (the decode crop is recorded and composed into
    the views' crops); views are drawn with a generator seeded by ``seed``. About a second for the defaults.
    ``learned``: a learned augmentation module (see :func:`render_preview`; :func:`preview_run` loads a run's).
    """
    root: str | None = None
    titles: list[str] | None = None
    if config is not None:
        clash = [k for k, v in (("size", size), ("source_size", source_size), ("augment", augment)) if v is not None]
        if clash:
            raise ValueError(
                f"{', '.join(clash)} cannot be combined with a config: its augment section sets the views "
                "(e.g. augment.size=96) and data.size the source size"
            )
        cfg = config if isinstance(config, PretrainConfig) else load_config(config, list(overrides))
        augment, titles = config_views(cfg)
        data = cfg.data.name if data is None else data
        root, src = cfg.data.root, int(cfg.data.size)
    elif overrides:
        raise ValueError(f"key=value overrides ({' '.join(overrides)}) need a config (--config)")
    else:
        size = DEFAULT_PREVIEW_SIZE if size is None else int(size)
        if size < 8:
            raise ValueError(f"preview size must be at least 8 pixels, got {size}")
        src = int(source_size) if source_size is not None else size
        augment = default_preview_augment(size) if augment is None else augment
        data = "synthetic" if data is None else data
    if int(n_pairs) < 1:
        raise ValueError(f"preview needs at least one pair (n_pairs >= 1), got {n_pairs}")
    if src < 1:
        raise ValueError(f"source_size must be positive, got {src}")
    aug = Augmenter(augment)
    images, crops = _load_preview_images(str(data), src, int(n_pairs), int(seed), root)
    names = _shown_targets(aug.views)
    return render_preview(
        images,
        aug,
        out,
        n_pairs=int(n_pairs),
        seed=int(seed),
        names=names,
        source_crop=crops,
        titles=titles,
        learned=learned,
    )


LEARNED_FILE = "learned.pt"
"""The invariance module of a run pretrained with ``augment.learned`` (next to ``config.yaml``)."""


def preview_run(
    run: str | Path,
    out: str | Path | None = None,
    *,
    data: str | None = None,
    n_pairs: int = 6,
    seed: int = 0,
    overrides: Sequence[str] = (),
) -> list[Path]:
    """Preview a run pretrained with ``augment.learned``: its config's views (``<run>/config.yaml`` merged with
    ``overrides``) on its data (or ``data``), the learned augmentations drawn from the per-input distributions of
    ``<run>/learned.pt``, each row listing the input's learned ranges; with a learned crop also the crop
    distribution's heat maps (:func:`augself.augment.preview_learned.render_crop_heatmaps`) in ``<stem>-crop.png``.
    ``out`` defaults to ``<run>/preview.png``. Returns the written paths."""
    from augself.augment.learned.io import load_learned

    run = Path(run).expanduser()
    if not run.is_dir():
        raise FileNotFoundError(f"run folder not found: {str(run)!r}")
    cfg_file, learned_file = run / "config.yaml", run / LEARNED_FILE
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{str(run)!r} has no config.yaml (give a pretraining run folder)")
    if not learned_file.is_file():
        raise FileNotFoundError(
            f"{str(run)!r} has no {LEARNED_FILE} (it was not pretrained with augment.learned); "
            f"to preview its views use --config {cfg_file}"
        )
    module = load_learned(learned_file)
    out = Path(out) if out is not None else run / "preview.png"
    cfg = load_config(cfg_file, list(overrides))
    paths = [preview_dataset(data, out, n_pairs=n_pairs, seed=seed, config=cfg, learned=module)]
    crop = getattr(module.cfg, "crop", None)
    if crop is not None:
        images, _ = _load_preview_images(
            str(cfg.data.name if data is None else data), int(cfg.data.size), int(n_pairs), int(seed), cfg.data.root
        )
        with torch.no_grad():
            summary = module.summary(images)  # type: ignore[operator]
        paths.append(render_crop_heatmaps(images, summary, crop.grid, crop_path(out)))
    return paths
