"""Awareness reports of several backbones on the same images, written side by side (``augself eval awareness``).

Loads each backbone with its pretraining preprocessing, draws seeded images of a dataset once per view size and
writes ``awareness.json`` / ``.md`` / ``.png`` through :mod:`augself.eval.report`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from augself.data.errors import CorruptImageError
from augself.data.registry import GENERATED, build_dataset
from augself.eval.awareness.learned import find_learned, learned_ranges
from augself.eval.awareness.measure import awareness_report
from augself.eval.backbone_loading import EVAL_INTERPOLATION, load_for_eval
from augself.eval.eval_data import set_interpolation
from augself.eval.report import awareness_markdown, plot_awareness, plot_learned, write_json

__all__ = ["load_images", "run_awareness"]


def load_images(
    data: str,
    *,
    size: int,
    n: int,
    seed: int = 0,
    split: str = "test",
    root: str | None = None,
    skip_corrupt: bool = False,
    skipped: list[str] | None = None,
    interpolation: str = EVAL_INTERPOLATION,
    labels: list[int] | None = None,
    classes: list[str] | None = None,
) -> Tensor:
    """``n`` seeded images (uint8 (n, C, size, size)) of ``split`` of a dataset (name or image-folder path).

    Uses :func:`augself.data.build_dataset`; all images when the split has fewer than ``n``. With
    ``skip_corrupt`` an undecodable image is left out (its path appended to ``skipped``) and the next one of the
    seeded order taken instead, so without corrupt files the images are the same as without the option.
    ``interpolation``: the resize filter of image files (as the evaluation's; generated images are made at ``size``).
    ``labels`` / ``classes``: when given, the images' labels (-1: unlabelled) and the split's class names are appended.
    """
    kw: dict[str, Any] = {"n": int(n)} if data in GENERATED else {}  # generate only what is used
    ds = set_interpolation(build_dataset(data, split, size=int(size), root=root, seed=int(seed), **kw), interpolation)
    total = len(ds)  # type: ignore[arg-type]
    if total == 0:
        raise ValueError(f"dataset {data!r} split {split!r} is empty")
    order = torch.randperm(total, generator=torch.Generator().manual_seed(int(seed))).tolist()
    chosen: list[int] = []
    bad: list[str] = []
    images: dict[int, Tensor] = {}
    found: dict[int, int] = {}
    for i in order:
        if len(chosen) == int(n):
            break
        try:
            sample = ds[i]  # type: ignore[index]
            images[i] = torch.as_tensor(sample["image"])
            found[i] = int(sample.get("label", -1))
        except CorruptImageError as e:
            if not skip_corrupt:
                raise
            bad.append(getattr(e, "path", str(e)))
            continue
        chosen.append(i)
    if skipped is not None:
        skipped.extend(bad)
    if not chosen:
        raise ValueError(f"dataset {data!r} split {split!r}: none of its {total} images could be decoded")
    if labels is not None:
        labels.extend(found[i] for i in sorted(chosen))
    if classes is not None:
        classes.extend(str(c) for c in getattr(ds, "classes", []))
    return torch.stack([images[i] for i in sorted(chosen)])


def _run_label(path: Path, used: set[str]) -> str:
    base = path.parent.name if path.name == "backbone.pt" else path.stem
    label, k = base or str(path), 2
    while label in used:
        label, k = f"{base}-{k}", k + 1
    used.add(label)
    return label


def _training_size(run_dir: Path, module: torch.nn.Module, fallback: int) -> int:
    """The side of the images the invariance module saw in training: its recorded ``image_size``, else the run's
    ``data.size`` (``config.yaml``), else ``fallback``."""
    size = getattr(module, "image_size", None)
    if size:
        return int(size)
    cfg_path = run_dir / "config.yaml"
    if cfg_path.is_file():
        import yaml

        cfg = yaml.safe_load(cfg_path.read_text()) or {}
        data = cfg.get("data") if isinstance(cfg, dict) else None
        if isinstance(data, dict) and isinstance(data.get("size"), int):
            return int(data["size"])
    return int(fallback)


def learned_section(
    run_dir: Path | None,
    data: str,
    *,
    fallback_size: int,
    n: int,
    seed: int,
    split: str,
    root: str | None,
    skip_corrupt: bool,
    interpolation: str,
    device: str | None,
) -> dict[str, Any] | None:
    """The "Learned augmentation ranges" content of a run with ``learned.pt`` (else None): the same seeded images
    of ``data`` at the size the module was trained on, grouped by their classes
    (:func:`augself.eval.awareness.learned.learned_ranges`)."""
    path = find_learned(run_dir)
    if path is None or run_dir is None:
        return None
    from augself.augment.learned.io import load_learned

    module = load_learned(path)
    s = _training_size(run_dir, module, fallback_size)
    labels: list[int] = []
    classes: list[str] = []
    images = load_images(
        data,
        size=s,
        n=n,
        seed=seed,
        split=split,
        root=root,
        skip_corrupt=skip_corrupt,
        interpolation=interpolation,
        labels=labels,
        classes=classes,
    )
    return learned_ranges(module, images, torch.tensor(labels), classes, file=path, device=device)


def run_awareness(
    backbones: list[str | Path],
    data: str,
    out: Path,
    *,
    size: int | None = None,
    n: int = 2000,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    split: str = "test",
    root: str | None = None,
    skip_corrupt: bool = False,
    evaluation: Mapping[str, Any] | None = None,
    interpolation: str = EVAL_INTERPOLATION,
    **report_kw: Any,
) -> dict[str, Any]:
    """Awareness reports of several backbones on the same images, written side by side.

    Each entry of ``backbones`` is a ``backbone.pt`` or a run directory (``<run>/backbone.pt``); its
    pretraining preprocessing (view size, mean, std) is read from the run's ``config.yaml`` when present
    (``size`` overrides the resolution). ``n`` seeded images of ``data``'s ``split`` are used. Writes
    ``out/awareness.json`` (strict JSON: undefined values are ``null``), ``out/awareness.md`` (table, runs side
    by side) and ``out/awareness.png``; returns the JSON content. A run folder with ``learned.pt`` (pretrained with
    ``augment.learned``) also gets a ``learned`` entry (per-class learned augmentation ranges:
    :func:`learned_section`), a Markdown section and ``out/awareness-learned.png``. ``skip_corrupt``: undecodable
    images are replaced by the next ones of the seeded order and counted (``skipped_corrupt``). ``interpolation``:
    the resize filter (default bicubic, as ``augself eval``), recorded in each run's ``preprocessing``.
    ``evaluation`` (what ``augself eval awareness`` identifies the report by) is stored as given.
    """
    if not backbones:
        raise ValueError("give at least one backbone (a backbone.pt or a run directory)")
    if int(n) < 10:
        raise ValueError(f"the awareness report needs n >= 10 images, got {n}")
    out = Path(out)
    dev = None if device in (None, "auto") else device
    loaded = [load_for_eval(b, size=size, interpolation=interpolation) for b in backbones]  # fail fast: bad paths
    images_by_size: dict[int, Tensor] = {}
    skipped: list[str] = []
    runs: list[dict[str, Any]] = []
    used: set[str] = set()
    for path, lb in zip(backbones, loaded, strict=True):
        net, prep = lb.backbone, {**lb.pre.to_dict(), "backbone_path": str(lb.path)}
        s = int(size if size is not None else prep["size"])
        if s not in images_by_size:
            images_by_size[s] = load_images(
                data,
                size=s,
                n=n,
                seed=seed,
                split=split,
                root=root,
                skip_corrupt=skip_corrupt,
                skipped=skipped,
                interpolation=interpolation,
            )
        rep = awareness_report(
            net,
            images_by_size[s],
            mean=prep["mean"],
            std=prep["std"],
            size=s,
            device=dev,
            seed=seed,
            progress=progress,
            **{"name": f"backbone {lb.path}", **report_kw},
        )
        entry = {
            "name": _run_label(Path(prep["backbone_path"]), used),
            "backbone": str(path),
            "preprocessing": {**prep, "size": s},
            "report": rep,
        }
        learned = learned_section(
            lb.run_dir or lb.path.parent,
            data,
            fallback_size=s,
            n=n,
            seed=seed,
            split=split,
            root=root,
            skip_corrupt=skip_corrupt,
            interpolation=interpolation,
            device=dev,
        )
        if learned is not None:
            entry["learned"] = learned
        runs.append(entry)
    result = {
        "protocol": "awareness",
        "dataset": data,
        "split": split,
        "n_images": int(next(iter(images_by_size.values())).shape[0]),
        "seed": int(seed),
        "runs": runs,
    }
    if skip_corrupt:
        unique = list(dict.fromkeys(skipped))
        result["skipped_corrupt"] = {"count": len(unique), "examples": unique[:5]}
        if unique:
            warnings.warn(f"{data}/{split}: skipped {len(unique)} corrupt image(s), e.g. {unique[0]!r}", stacklevel=2)
    if evaluation is not None:
        result["evaluation"] = dict(evaluation)
    write_json(result, out / "awareness.json")
    (out / "awareness.md").write_text(awareness_markdown(result))
    plot_awareness(result, out / "awareness.png")
    plot_learned(result, out / "awareness-learned.png")  # only when a run has learned.pt
    return result
