"""Awareness report: what each augmentation left in a frozen representation.

AugSelf (Lee et al., NeurIPS 2021, Sec. 1/3) argues that invariance objectives discard augmentation-related
information (colour, position) that downstream tasks may need, and that predicting the *difference* of the
augmentation parameters of two views keeps it. This module measures both sides for any frozen backbone:

* **invariance** (as CASSLE's ``transfer_feature_invariance.py``; reference §6.3): for each augmentation
  *alone* (every other op off) at several strengths, the mean cosine similarity between ``f(x)`` and
  ``f(t(x))`` ("positive"), next to the same for shuffled pairs ``f(x_i)`` vs ``f(t(x_j))``, ``j != i``
  (the baseline: how similar *any* two images are). ``normalised = (positive - shuffled) / (1 - shuffled)``
  is 1 for a fully invariant representation and about 0 when ``t`` moves features as far as a different
  image would.
* **predictability** (as CASSLE's ``transfer_aug_predict.py``): a probe on the frozen features of two views
  ``[f(v1), f(v2)]`` (both orders, as AugSelf's head) predicts the AugSelf targets
  (:func:`augself.augment.targets.relative_targets`): R^2 on held-out images for the regression targets
  (crop, color, blur, sol), accuracy for the classes (flip: same flip state; rot: rotation difference mod 4),
  next to chance. The default probe is a one-hidden-layer MLP like AugSelf's heads: a *linear* probe on the
  concatenation cannot represent "same flip state" (an XOR of the two views' flip bits) even for a perfect
  encoder. ``probe_hidden=0`` gives the linear probe.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from augself.augment.config import ViewConfig
from augself.augment.params import ViewParams
from augself.augment.pipeline import Augmenter
from augself.augment.targets import TARGETS, relative_targets
from augself.eval.report import write_json

__all__ = [
    "AUGMENTATIONS",
    "DEFAULT_STRENGTHS",
    "awareness_report",
    "load_images",
    "run_awareness",
    "view_config",
]

AUGMENTATIONS: tuple[str, ...] = ("crop", "color", "flip", "blur", "rot", "sol")
"""Augmentations the report knows (the AugSelf target names, :data:`augself.augment.targets.TARGETS`)."""

DEFAULT_AUGMENTATIONS: tuple[str, ...] = ("crop", "color", "flip", "blur", "rot")

DEFAULT_STRENGTHS: dict[str, tuple[float, ...]] = {
    "crop": (0.8, 0.5, 0.2),  # lower bound of the crop area fraction (AugSelf / SimCLR default 0.2)
    "color": (0.5, 1.0, 2.0),  # AugSelf's colour-strength knob s (jitter ranges x s; paper Sec. 4.3)
    "blur": (0.5, 1.0, 2.0),  # upper bound of sigma, drawn from U(0.1, s) (SimCLR default 2.0)
    "flip": (1.0,),  # probability; every sample is flipped
    "rot": (1.0,),  # probability; quarter turns k in {1, 2, 3} for invariance
    "sol": (1.0,),  # probability; threshold ~ U[0, 1] (BYOL)
}
"""Strengths at which invariance is measured, per augmentation (see :func:`view_config`)."""

PROBE_STRENGTH: dict[str, float] = {"crop": 0.2, "color": 1.0, "blur": 2.0, "flip": 0.5, "rot": 1.0, "sol": 1.0}
"""Pretraining-default setting of each augmentation used for the predictability probe (flip: p = 0.5, so
"same flip state" is balanced; rot: p = 1, the difference is uniform over the four classes)."""

TARGET_DIMS: dict[str, list[str]] = {
    "crop": ["d_cy", "d_cx", "d_h", "d_w"],
    "color": ["d_brightness", "d_contrast", "d_saturation", "d_hue"],
    "blur": ["d_sigma"],
    "sol": ["d_threshold"],
}


def _off(size: int, mean: Sequence[float], std: Sequence[float]) -> dict[str, Any]:
    """ViewConfig settings with every op off (full crop, no flip/jitter/gray/blur/solarize/rotation)."""
    return dict(
        size=int(size),
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        flip_p=0.0,
        jitter_p=0.0,
        gray_p=0.0,
        blur_p=0.0,
        solarize_p=0.0,
        rotate_p=0.0,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
    )


def view_config(
    name: str | None, strength: float, size: int, mean: Sequence[float], std: Sequence[float]
) -> ViewConfig:
    """A view applying augmentation ``name`` alone at ``strength`` (``None``: the identity view).

    crop: ``crop_scale=(strength, 1)``; color: colour jitter with p = 1 and ``color_strength=strength``
    (grayscale off); blur: p = 1, ``sigma ~ U(0.1, strength)``; flip / rot / sol: applied with probability
    ``strength``.
    """
    kw = _off(size, mean, std)
    if name is None:
        pass
    elif name == "crop":
        kw.update(crop_scale=(float(strength), 1.0), crop_ratio=(3 / 4, 4 / 3))
    elif name == "color":
        kw.update(jitter_p=1.0, color_strength=float(strength))
    elif name == "blur":
        kw.update(blur_p=1.0, blur_sigma=(min(0.1, float(strength)), float(strength)))
    elif name == "flip":
        kw.update(flip_p=float(strength))
    elif name == "rot":
        kw.update(rotate_p=float(strength))
    elif name == "sol":
        kw.update(solarize_p=float(strength))
    else:
        raise ValueError(f"unknown augmentation {name!r}; valid: {', '.join(AUGMENTATIONS)}")
    return ViewConfig(**kw)


def _strength_label(name: str, s: float) -> str:
    return {
        "crop": f"scale>={s:g}",
        "color": f"strength {s:g}",
        "blur": f"sigma<={s:g}",
        "flip": f"p={s:g}",
        "rot": f"p={s:g}",
        "sol": f"p={s:g}",
    }[name]


def _check_augmentations(augmentations: Iterable[str]) -> list[str]:
    names = [augmentations] if isinstance(augmentations, str) else list(augmentations)
    if not names:
        raise ValueError(f"no augmentations given; valid: {', '.join(AUGMENTATIONS)}")
    for n in names:
        if n not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {n!r}; valid: {', '.join(AUGMENTATIONS)}")
    return list(dict.fromkeys(names))


@torch.no_grad()
def _features(
    backbone: nn.Module,
    aug: Augmenter,
    images: Tensor,
    params: ViewParams,
    device: torch.device,
    batch_size: int,
) -> Tensor:
    out = []
    for i in range(0, images.shape[0], batch_size):
        x = images[i : i + batch_size].to(device, non_blocking=True)
        v = aug.apply(x, params[i : i + batch_size].to(device), 0)
        out.append(backbone(v).flatten(1).float().cpu())
    return torch.cat(out)


def _sample(aug: Augmenter, name: str | None, n: int, size: tuple[int, int], g: torch.Generator) -> ViewParams:
    p = aug.sample(0, n, generator=g, input_size=size)
    if name == "rot" and aug.views[0].rotate_p >= 1.0:  # invariance to an actual turn: k in {1, 2, 3}
        p.rot = 1 + torch.randint(0, 3, (n,), generator=g)
    return p


def _cos(a: Tensor, b: Tensor) -> Tensor:
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1, eps=1e-12)


def _derangement(n: int, g: torch.Generator) -> Tensor:
    """A seeded permutation without fixed points (a random cyclic shift of a random order)."""
    perm = torch.randperm(n, generator=g)
    out = torch.empty(n, dtype=torch.long)
    out[perm] = perm.roll(1)
    return out


# ---------------------------------------------------------------------------------------------------------
# probe
# ---------------------------------------------------------------------------------------------------------


def _split_images(n: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Seeded 60 / 20 / 20 image split (train / val / test); both views of an image stay together."""
    perm = torch.randperm(n, generator=g)
    n_te = max(1, round(0.2 * n))
    n_va = max(1, round(0.2 * n))
    return perm[n_te + n_va :], perm[n_te : n_te + n_va], perm[:n_te]


def _pairs(f1: Tensor, f2: Tensor, t12: Tensor, t21: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """Probe inputs ``[f(a), f(b)]`` and targets for both orders (a, b) = (1, 2), (2, 1) (AugSelf)."""
    x = torch.cat([torch.cat([f1[idx], f2[idx]], 1), torch.cat([f2[idx], f1[idx]], 1)])
    return x, torch.cat([t12[idx], t21[idx]])


def _fit_probe(
    x: tuple[Tensor, Tensor, Tensor],
    y: tuple[Tensor, Tensor, Tensor],
    *,
    kind: str,
    out_dim: int,
    hidden: int,
    steps: int,
    lr: float,
    weight_decay: float,
    seed: int,
    device: torch.device,
) -> Tensor:
    """Train a probe (Adam, full batch, best val step kept) and return its test predictions (CPU).

    Inputs are standardised with the train statistics; regression targets too (predictions are returned in
    the original units).
    """
    xtr, xva, xte = (t.to(device, torch.float32) for t in x)
    ytr, yva = y[0].to(device), y[1].to(device)
    mu, sd = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
    xtr, xva, xte = ((t - mu) / sd for t in (xtr, xva, xte))
    if kind == "class":
        ymu = ysd = None
    else:
        ytr, yva = ytr.float(), yva.float()
        ymu, ysd = ytr.mean(0), ytr.std(0).clamp_min(1e-6)
        ytr, yva = (ytr - ymu) / ysd, (yva - ymu) / ysd
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        d = xtr.shape[1]
        layers: list[nn.Module] = (
            [nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, out_dim)] if hidden > 0 else [nn.Linear(d, out_dim)]
        )
        net = nn.Sequential(*layers).to(device)
    # plain AdamW written out: constructing a torch.optim optimizer imports torch._dynamo (seconds on a busy CPU)
    ps = [q for q in net.parameters()]
    m1 = [torch.zeros_like(q) for q in ps]
    m2 = [torch.zeros_like(q) for q in ps]
    b1, b2, eps = 0.9, 0.999, 1e-8

    def adamw_step(t: int) -> None:
        with torch.no_grad():
            for q, a, b in zip(ps, m1, m2, strict=True):
                gq = q.grad
                assert gq is not None
                q.mul_(1 - lr * weight_decay)
                a.mul_(b1).add_(gq, alpha=1 - b1)
                b.mul_(b2).addcmul_(gq, gq, value=1 - b2)
                denom = (b / (1 - b2**t)).sqrt_().add_(eps)
                q.addcdiv_(a, denom, value=-lr / (1 - b1**t))
                q.grad = None

    def loss_fn(out: Tensor, t: Tensor) -> Tensor:
        if kind == "class":
            return nn.functional.cross_entropy(out, t.long())
        return nn.functional.mse_loss(out, t)

    best = (math.inf, {k: v.detach().clone() for k, v in net.state_dict().items()})
    every = max(1, steps // 50)
    for step in range(1, steps + 1):
        loss_fn(net(xtr), ytr).backward()
        adamw_step(step)
        if step % every == 0 or step == steps:
            with torch.no_grad():
                v = float(loss_fn(net(xva), yva))
            if v < best[0]:
                best = (v, {k: t.detach().clone() for k, t in net.state_dict().items()})
    net.load_state_dict(best[1])
    with torch.no_grad():
        out = net(xte)
    if kind == "class":
        return out.argmax(1).cpu()
    assert ymu is not None and ysd is not None
    return (out * ysd + ymu).cpu()


def _r2(pred: Tensor, y: Tensor) -> list[float]:
    """Coefficient of determination per target dimension (NaN where the target is constant)."""
    y, pred = y.double(), pred.double()
    ss_res = ((y - pred) ** 2).sum(0)
    ss_tot = ((y - y.mean(0)) ** 2).sum(0)
    return [float(1 - r / t) if t > 1e-12 else float("nan") for r, t in zip(ss_res, ss_tot, strict=True)]


def _target_for_probe(name: str, t: Tensor) -> Tensor:
    if TARGETS[name].kind == "binary":
        return t.view(-1).long()  # flip: 1 = same flip state
    return t


# ---------------------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------------------


def awareness_report(
    backbone: nn.Module,
    images: Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    size: int | None = None,
    strengths: Mapping[str, Sequence[float]] | None = None,
    augmentations: Sequence[str] = DEFAULT_AUGMENTATIONS,
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
    """Invariance and predictability of each augmentation for a frozen ``backbone`` (see module docstring).

    ``images``: uint8 (N, C, H, W) (or float in [0, 1]) at the source size; views are ``size`` px (default
    ``W``) and normalised with the *pretraining* ``mean``/``std``. ``strengths`` overrides
    :data:`DEFAULT_STRENGTHS` per augmentation. The probe (one hidden layer of ``probe_hidden`` units, 0 =
    linear; AdamW, full batch, ``probe_steps`` steps, the best step on a validation split kept) is trained on
    60 % of the images, selected on 20 % and scored on the other 20 %. Seeded; the backbone runs in eval
    mode and its mode and device are restored. Returns a JSON-serialisable dict (undefined values, such as the
    R² of a constant target, are NaN there and ``null`` in the written JSON). Non-finite features of the
    unaugmented images raise :class:`~augself.eval.features.NonFiniteFeaturesError` naming ``name``.
    """
    from augself.eval.features import check_finite
    from augself.eval.linear import default_device

    names = _check_augmentations(augmentations)
    if not isinstance(images, Tensor) or images.ndim != 4:
        raise ValueError("images must be a (N, C, H, W) tensor")
    n = int(images.shape[0])
    if n < 10:
        raise ValueError(f"the awareness report needs at least 10 images, got {n}")
    size = int(size if size is not None else images.shape[-1])
    strengths = {**DEFAULT_STRENGTHS, **{k: tuple(v) for k, v in (strengths or {}).items()}}
    for k in strengths:
        if k not in AUGMENTATIONS:
            raise ValueError(f"strengths given for unknown augmentation {k!r}; valid: {', '.join(AUGMENTATIONS)}")
    dev = default_device(device)
    t0 = time.perf_counter()
    params = list(backbone.parameters())
    orig_device = params[0].device if params else dev
    was_training = backbone.training
    backbone.eval().to(dev)
    hw = (int(images.shape[-2]), int(images.shape[-1]))
    g = torch.Generator().manual_seed(int(seed))
    feats = lambda aug, p: _features(backbone, aug, images, p, dev, batch_size)  # noqa: E731
    invariance: dict[str, list[dict[str, Any]]] = {}
    predict: dict[str, dict[str, Any]] = {}
    total = sum(len(strengths[k]) for k in names) + (len(names) if predictability else 0) + 1
    bar = tqdm(total=total, desc="awareness", disable=not progress, leave=False)
    try:
        ident = Augmenter.from_views(view_config(None, 0.0, size, mean, std))
        f0 = feats(ident, ViewParams.identity(n))
        check_finite(f0, name)
        bar.update()
        shuffle = _derangement(n, g)
        for name in names:
            rows = []
            for s in strengths[name]:
                aug = Augmenter.from_views(view_config(name, s, size, mean, std))
                ft = feats(aug, _sample(aug, name, n, hw, g))
                pos = float(_cos(f0, ft).mean())
                neg = float(_cos(f0, ft[shuffle]).mean())
                rows.append(
                    {
                        "strength": float(s),
                        "label": _strength_label(name, float(s)),
                        "positive": pos,
                        "shuffled": neg,
                        "gap": pos - neg,
                        "normalised": (pos - neg) / (1 - neg) if 1 - neg > 1e-9 else float("nan"),
                    }
                )
                bar.update()
            invariance[name] = rows
        if predictability:
            tr, va, te = _split_images(n, g)
            for name in names:
                cfg = view_config(name, PROBE_STRENGTH[name], size, mean, std)
                aug = Augmenter.from_views(cfg)
                p1, p2 = aug.sample(0, n, generator=g, input_size=hw), aug.sample(0, n, generator=g, input_size=hw)
                f1, f2 = feats(aug, p1), feats(aug, p2)
                spec = TARGETS[name]
                t12 = _target_for_probe(name, relative_targets(p1, p2, [name], cfg)[name])
                t21 = _target_for_probe(name, relative_targets(p2, p1, [name], cfg)[name])
                xs, ys = zip(*(_pairs(f1, f2, t12, t21, idx) for idx in (tr, va, te)), strict=True)
                kind = "class" if spec.kind in ("class", "binary") else "regression"
                out_dim = 2 if spec.kind == "binary" else spec.dim
                pred = _fit_probe(
                    xs,  # type: ignore[arg-type]
                    ys,  # type: ignore[arg-type]
                    kind=kind,
                    out_dim=out_dim,
                    hidden=int(probe_hidden),
                    steps=int(probe_steps),
                    lr=float(probe_lr),
                    weight_decay=float(probe_weight_decay),
                    seed=int(seed),
                    device=dev,
                )
                y_te = ys[2]
                entry: dict[str, Any] = {
                    "kind": spec.kind,
                    "n_train": int(ys[0].shape[0]),
                    "n_test": int(y_te.shape[0]),
                }
                if kind == "class":
                    counts = torch.bincount(ys[0].long(), minlength=out_dim).float()
                    majority = int(counts.argmax())
                    entry.update(
                        metric="accuracy",
                        score=float((pred == y_te.long()).double().mean() * 100),
                        chance=float((y_te.long() == majority).double().mean() * 100),
                        setting=_strength_label(name, PROBE_STRENGTH[name]),
                    )
                    if name == "flip":
                        entry["classes"] = ["different", "same"]
                else:
                    per_dim = _r2(pred, y_te)
                    finite = [v for v in per_dim if math.isfinite(v)]
                    entry.update(
                        metric="r2",
                        score=float(sum(finite) / len(finite)) if finite else float("nan"),
                        chance=0.0,
                        per_dim=dict(zip(TARGET_DIMS[name], per_dim, strict=True)),
                        setting=_strength_label(name, PROBE_STRENGTH[name]),
                    )
                predict[name] = entry
                bar.update()
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


# ---------------------------------------------------------------------------------------------------------
# runs: load backbones + data, write awareness.{json,md,png}
# ---------------------------------------------------------------------------------------------------------


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
) -> Tensor:
    """``n`` seeded images (uint8 (n, C, size, size)) of ``split`` of a dataset (name or image-folder path).

    Uses :func:`augself.data.build_dataset`; all images when the split has fewer than ``n``. With
    ``skip_corrupt`` an undecodable image is left out (its path appended to ``skipped``) and the next one of the
    seeded order taken instead, so without corrupt files the images are the same as without the option.
    """
    from augself.data.errors import CorruptImageError
    from augself.data.registry import build_dataset

    kw: dict[str, Any] = {"n": int(n)} if data == "synthetic" else {}  # generate only what is used
    ds = build_dataset(data, split, size=int(size), root=root, seed=int(seed), **kw)
    total = len(ds)  # type: ignore[arg-type]
    if total == 0:
        raise ValueError(f"dataset {data!r} split {split!r} is empty")
    order = torch.randperm(total, generator=torch.Generator().manual_seed(int(seed))).tolist()
    chosen: list[int] = []
    bad: list[str] = []
    images: dict[int, Tensor] = {}
    for i in order:
        if len(chosen) == int(n):
            break
        try:
            images[i] = torch.as_tensor(ds[i]["image"])  # type: ignore[index]
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
    return torch.stack([images[i] for i in sorted(chosen)])


def _run_label(path: Path, used: set[str]) -> str:
    base = path.parent.name if path.name == "backbone.pt" else path.stem
    label, k = base or str(path), 2
    while label in used:
        label, k = f"{base}-{k}", k + 1
    used.add(label)
    return label


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
    **report_kw: Any,
) -> dict[str, Any]:
    """Awareness reports of several backbones on the same images, written side by side.

    Each entry of ``backbones`` is a ``backbone.pt`` or a run directory (``<run>/backbone.pt``); its
    pretraining preprocessing (view size, mean, std) is read from the run's ``config.yaml`` when present
    (``size`` overrides the resolution). ``n`` seeded images of ``data``'s ``split`` are used. Writes
    ``out/awareness.json`` (strict JSON: undefined values are ``null``), ``out/awareness.md`` (table, runs side
    by side) and ``out/awareness.png``; returns the JSON content. ``skip_corrupt``: undecodable images are
    replaced by the next ones of the seeded order and counted (``skipped_corrupt``). ``evaluation`` (what
    ``augself eval awareness`` identifies the report by) is stored as given.
    """
    from augself.eval.backbone_loading import load_for_eval

    if not backbones:
        raise ValueError("give at least one backbone (a backbone.pt or a run directory)")
    if int(n) < 10:
        raise ValueError(f"the awareness report needs n >= 10 images, got {n}")
    out = Path(out)
    dev = None if device in (None, "auto") else device
    loaded = [load_for_eval(b, size=size) for b in backbones]  # fail fast on a bad path before any work
    images_by_size: dict[int, Tensor] = {}
    skipped: list[str] = []
    runs: list[dict[str, Any]] = []
    used: set[str] = set()
    for path, lb in zip(backbones, loaded, strict=True):
        net, prep = lb.backbone, {**lb.pre.to_dict(), "backbone_path": str(lb.path)}
        s = int(size if size is not None else prep["size"])
        if s not in images_by_size:
            images_by_size[s] = load_images(
                data, size=s, n=n, seed=seed, split=split, root=root, skip_corrupt=skip_corrupt, skipped=skipped
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
        runs.append(
            {
                "name": _run_label(Path(prep["backbone_path"]), used),
                "backbone": str(path),
                "preprocessing": {**prep, "size": s},
                "report": rep,
            }
        )
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
    return result


def _fmt(v: float, pct: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "n/a"
    return f"{v:.1f}" if pct else f"{v:.3f}"


def awareness_markdown(result: Mapping[str, Any]) -> str:
    """Markdown tables (invariance, predictability) with one column per run."""
    runs = result["runs"]
    names = [r["name"] for r in runs]
    head = "| augmentation | setting | " + " | ".join(names) + " |\n|---|---|" + "---|" * len(names) + "\n"
    lines = [
        f"# Awareness report: {result['dataset']} ({result['split']}, {result['n_images']} images, "
        f"seed {result['seed']})\n",
        "## Invariance\n",
        "Mean cosine similarity of f(x) and f(t(x)) / of shuffled pairs f(x_i), f(t(x_j)); in brackets the "
        "normalised invariance (pos - shuffled) / (1 - shuffled): 1 = invariant, 0 = as far as another image.\n",
        head.rstrip("\n"),
    ]
    first = runs[0]["report"]["invariance"]
    for aug, rows in first.items():
        for i, row in enumerate(rows):
            cells = []
            for r in runs:
                rr = r["report"]["invariance"].get(aug, [])
                if i < len(rr):
                    x = rr[i]
                    cells.append(f"{_fmt(x['positive'])} / {_fmt(x['shuffled'])} ({_fmt(x['normalised'])})")
                else:
                    cells.append("n/a")
            lines.append(f"| {aug} | {row['label']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Predictability\n",
        "Probe on [f(v1), f(v2)] predicting the AugSelf targets on held-out images: R^2 for regression targets "
        "(0 = chance, 1 = perfect), accuracy % for classes (chance in brackets).\n",
        "| target | metric | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for aug, e in runs[0]["report"]["predictability"].items():
        cells = []
        for r in runs:
            x = r["report"]["predictability"].get(aug)
            if x is None:
                cells.append("n/a")
            elif x["metric"] == "accuracy":
                cells.append(f"{_fmt(x['score'], True)} ({_fmt(x['chance'], True)})")
            else:
                dims = ", ".join(f"{k.removeprefix('d_')} {_fmt(v)}" for k, v in x["per_dim"].items())
                cells.append(f"{_fmt(x['score'])}" + (f" ({dims})" if len(x["per_dim"]) > 1 else ""))
        metric = "accuracy %" if e["metric"] == "accuracy" else "R^2"
        lines.append(f"| {aug} ({e['setting']}) | {metric} | " + " | ".join(cells) + " |")
    lines += ["", "Backbones:", ""]
    for r in runs:
        p = r["preprocessing"]
        lines.append(
            f"- **{r['name']}**: `{r['backbone']}` (size {p['size']}, mean {p['mean']}, std {p['std']}, "
            f"preprocessing from {p['source']})"
        )
    return "\n".join(lines) + "\n"


def plot_awareness(result: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Two panels (normalised invariance per augmentation/strength; predictability per target), runs side by
    side. Uses the Agg canvas directly (no global matplotlib backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    runs = result["runs"]
    first = runs[0]["report"]
    inv_keys = [(a, i, row["label"]) for a, rows in first["invariance"].items() for i, row in enumerate(rows)]
    pred_keys = list(first["predictability"])
    fig = Figure(figsize=(max(8.0, 0.55 * (len(inv_keys) + len(pred_keys)) * max(1, len(runs)) / 1.5 + 4), 4.2))
    FigureCanvasAgg(fig)
    panels = [fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)] if pred_keys else [fig.add_subplot(1, 1, 1)]
    width = 0.8 / max(1, len(runs))
    ax = panels[0]
    for j, r in enumerate(runs):
        inv = r["report"]["invariance"]
        vals = [inv[a][i]["normalised"] if a in inv and i < len(inv[a]) else float("nan") for a, i, _ in inv_keys]
        ax.bar([k + (j - (len(runs) - 1) / 2) * width for k in range(len(vals))], vals, width, label=r["name"])
    ax.set_xticks(range(len(inv_keys)), [f"{a}\n{lab}" for a, _, lab in inv_keys], fontsize=7)
    ax.set_ylabel("normalised invariance")
    ax.set_title("invariance: (cos pos - cos shuffled) / (1 - cos shuffled)", fontsize=9)
    ax.axhline(0, color="k", lw=0.6)
    ax.legend(fontsize=7)
    if pred_keys:
        ax = panels[1]
        for j, r in enumerate(runs):
            pr = r["report"]["predictability"]
            vals = []
            for a in pred_keys:
                e = pr.get(a)
                if e is None:
                    vals.append(float("nan"))
                elif e["metric"] == "accuracy":  # rescale to [0, 1] above chance, comparable with R^2
                    c = e["chance"]
                    vals.append((e["score"] - c) / (100 - c) if c < 100 else float("nan"))
                else:
                    vals.append(e["score"])
            ax.bar([k + (j - (len(runs) - 1) / 2) * width for k in range(len(vals))], vals, width, label=r["name"])
        ax.set_xticks(range(len(pred_keys)), pred_keys, fontsize=8)
        ax.set_ylabel("R^2  /  (acc - chance) / (100 - chance)")
        ax.set_title("predictability of the AugSelf targets", fontsize=9)
        ax.axhline(0, color="k", lw=0.6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)
