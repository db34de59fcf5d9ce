"""The awareness report of one frozen backbone: invariance and predictability of each augmentation.

See :mod:`augself.eval.awareness` for what is measured and why (AugSelf, Lee et al., NeurIPS 2021, Sec. 1/3;
CASSLE's ``transfer_feature_invariance.py`` and ``transfer_aug_predict.py``, reference §6.3).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from augself.augment.params import ViewParams
from augself.augment.pipeline import Augmenter
from augself.augment.specs import awareness_table, check_augmentations, isolated_view, strength_label
from augself.augment.targets import TARGETS, relative_targets
from augself.eval.awareness.probe import fit_probe, pairs, probe_target, r2, split_images
from augself.eval.awareness.views import cosine, derangement, features, sample_isolated
from augself.eval.device import default_device
from augself.eval.features import check_finite
from augself.names import unknown_name_message

__all__ = ["awareness_report"]

_Features = Callable[[Augmenter, ViewParams], Tensor]


def awareness_report(
    backbone: nn.Module,
    images: Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    size: int | None = None,
    strengths: Mapping[str, Sequence[float]] | None = None,
    augmentations: Sequence[str] | None = None,
    predictability: bool = True,
    probe_hidden: int = 256,
    probe_steps: int = 300,
    probe_lr: float = 1e-3,
    probe_weight_decay: float = 1e-4,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    seed: int = 0,
    progress: bool = True,
    name: str = "backbone",
) -> dict[str, Any]:
    """Invariance and predictability of each augmentation for a frozen ``backbone`` (see the package docstring).

    ``images``: uint8 (N, C, H, W) (or float in [0, 1]) at the source size; views are ``size`` px (default
    ``W``) and normalised with the *pretraining* ``mean``/``std``. ``augmentations``: names of the augmentation
    registry's awareness table (default its ``defaults``: crop, color, flip, blur, rot); ``strengths`` overrides
    the table's strengths per augmentation. The probe (one hidden layer of ``probe_hidden`` units, 0 = linear;
    AdamW, full batch, ``probe_steps`` steps, the best step on a validation split kept) is trained on 60 % of the
    images, selected on 20 % and scored on the other 20 %. Seeded; the backbone runs in eval mode and its mode and
    device are restored. Returns a JSON-serialisable dict (undefined values, such as the R² of a constant target,
    are NaN there and ``null`` in the written JSON). Non-finite features of the unaugmented images raise
    :class:`~augself.eval.features.NonFiniteFeaturesError` naming ``name``.
    """
    table = awareness_table()
    names = check_augmentations(table.defaults if augmentations is None else augmentations)
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError("images must be a (N, C, H, W) tensor")
    n = int(images.shape[0])
    if n < 10:
        raise ValueError(f"the awareness report needs at least 10 images, got {n}")
    size = int(size if size is not None else images.shape[-1])
    for k in strengths or {}:
        if k not in table.augmentations:
            raise ValueError(f"strengths given for {unknown_name_message(k, table.augmentations, 'augmentation')}")
    strengths = {**table.strengths, **{k: tuple(v) for k, v in (strengths or {}).items()}}
    dev = default_device(device)
    t0 = time.perf_counter()
    params = list(backbone.parameters())
    orig_device = params[0].device if params else dev
    was_training = backbone.training
    backbone.eval().to(dev)
    hw = (int(images.shape[-2]), int(images.shape[-1]))
    g = torch.Generator().manual_seed(int(seed))
    feats: _Features = lambda aug, p: features(backbone, aug, images, p, dev, batch_size)  # noqa: E731
    predict: dict[str, dict[str, Any]] = {}
    total = sum(len(strengths[k]) for k in names) + (len(names) if predictability else 0) + 1
    bar = tqdm(total=total, desc="awareness", disable=not progress, leave=False)
    try:
        ident = Augmenter.from_views(isolated_view(None, 0.0, size, mean, std))
        f0 = feats(ident, ViewParams.identity(n))
        check_finite(f0, name)
        bar.update()
        invariance = _invariance(feats, f0, names, strengths, size, mean, std, hw, g, bar)
        if predictability:
            probe_kw = dict(
                hidden=int(probe_hidden),
                steps=int(probe_steps),
                lr=float(probe_lr),
                weight_decay=float(probe_weight_decay),
                seed=int(seed),
                device=dev,
            )
            predict = _predictability(feats, n, names, size, mean, std, hw, g, bar, probe_kw)
    finally:
        bar.close()
        backbone.train(was_training)
        backbone.to(orig_device)
    return {
        "invariance": invariance,
        "predictability": predict,
        "settings": {
            "n_images": n,
            "size": size,
            "mean": [float(m) for m in mean],
            "std": [float(s) for s in std],
            "augmentations": names,
            "strengths": {k: [float(v) for v in strengths[k]] for k in names},
            "probe": f"MLP 1 hidden layer x {probe_hidden}" if probe_hidden > 0 else "linear",
            "probe_steps": int(probe_steps),
            "probe_lr": float(probe_lr),
            "probe_weight_decay": float(probe_weight_decay),
            "probe_split": "images 60/20/20 train/val/test, both view orders",
            "seed": int(seed),
            "device": str(dev),
            "time_s": time.perf_counter() - t0,
        },
    }


def _invariance(
    feats: _Features,
    f0: Tensor,
    names: Sequence[str],
    strengths: Mapping[str, Sequence[float]],
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    hw: tuple[int, int],
    g: torch.Generator,
    bar: Any,
) -> dict[str, list[dict[str, Any]]]:
    """Per augmentation and strength: mean cosine of f(x) and f(t(x)) ("positive") and of shuffled pairs
    f(x_i), f(t(x_j)) with j != i ("shuffled"), their gap and the normalised invariance."""
    shuffle = derangement(f0.shape[0], g)
    invariance: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        rows = []
        for s in strengths[name]:
            aug = Augmenter.from_views(isolated_view(name, s, size, mean, std))
            ft = feats(aug, sample_isolated(aug, name, f0.shape[0], hw, g))
            pos = float(cosine(f0, ft).mean())
            neg = float(cosine(f0, ft[shuffle]).mean())
            rows.append(
                {
                    "strength": float(s),
                    "label": strength_label(name, float(s)),
                    "positive": pos,
                    "shuffled": neg,
                    "gap": pos - neg,
                    "normalised": (pos - neg) / (1 - neg) if 1 - neg > 1e-9 else float("nan"),
                }
            )
            bar.update()
        invariance[name] = rows
    return invariance


def _predictability(
    feats: _Features,
    n: int,
    names: Sequence[str],
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    hw: tuple[int, int],
    g: torch.Generator,
    bar: Any,
    probe_kw: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """Per augmentation (at its probe strength): the probe's held-out score (R² or accuracy %) and chance."""
    table = awareness_table()
    tr, va, te = split_images(n, g)
    predict: dict[str, dict[str, Any]] = {}
    for name in names:
        aug = Augmenter.from_views(isolated_view(name, table.probe_strength[name], size, mean, std))
        p1, p2 = aug.sample(0, n, generator=g, input_size=hw), aug.sample(0, n, generator=g, input_size=hw)
        f1, f2 = feats(aug, p1), feats(aug, p2)
        spec = TARGETS[name]
        t12 = probe_target(name, relative_targets(p1, p2, [name])[name])
        t21 = probe_target(name, relative_targets(p2, p1, [name])[name])
        xs, ys = zip(*(pairs(f1, f2, t12, t21, idx) for idx in (tr, va, te)), strict=True)
        kind = "class" if spec.kind in ("class", "binary") else "regression"
        out_dim = 2 if spec.kind == "binary" else spec.dim
        pred = fit_probe(xs, ys, kind=kind, out_dim=out_dim, **probe_kw)  # type: ignore[arg-type]
        y_te = ys[2]
        entry: dict[str, Any] = {"kind": spec.kind, "n_train": int(ys[0].shape[0]), "n_test": int(y_te.shape[0])}
        if kind == "class":
            counts = torch.bincount(ys[0].long(), minlength=out_dim).float()
            majority = int(counts.argmax())
            entry.update(
                metric="accuracy",
                score=float((pred == y_te.long()).double().mean() * 100),
                chance=float((y_te.long() == majority).double().mean() * 100),
                setting=strength_label(name, table.probe_strength[name]),
            )
            if spec.kind == "binary":  # a relative binary target: do both views share the state?
                entry["classes"] = ["different", "same"]
        else:
            per_dim = r2(pred, y_te)
            finite = [v for v in per_dim if math.isfinite(v)]
            entry.update(
                metric="r2",
                score=float(sum(finite) / len(finite)) if finite else float("nan"),
                chance=0.0,
                per_dim=dict(zip(table.target_dims[name], per_dim, strict=True)),
                setting=strength_label(name, table.probe_strength[name]),
            )
        predict[name] = entry
        bar.update()
    return predict
