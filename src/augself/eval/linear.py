"""Linear evaluation of frozen features: the AugSelf paper's L-BFGS protocol and an SGD probe.

Protocol (Lee et al., NeurIPS 2021, ``transfer_linear_eval.py``; reference §6.1, quirk Q6):

* multinomial logistic regression ``nn.Linear(d, C)`` (with bias) on **unnormalised** frozen features;
* full-batch L-BFGS (``strong_wolfe`` line search), objective ``sum CE + wd * ||theta||^2`` where theta
  includes the bias;
* ``wd`` searched over ``torch.logspace(-6, 5, 45)`` on a validation split (the dataset's own, else a seeded
  split of train), the *same* classifier warm-started across the grid in ascending order;
* the best classifier (copied) is refit on train ∪ val with the best ``wd`` and scored on test (top-1 and
  mean per-class accuracy).

Implementation notes (documented deviations, same minimiser):

* We minimise ``mean CE + (wd / N) * ||theta||^2``, i.e. the reference objective divided by the number of
  training samples N, so gradients are O(1) and tolerances are relative. The minimiser is identical.
* The reference runs up to 5000 iterations per grid point with ``tolerance_grad=1e-10`` on the summed
  objective (effectively "until the line search stalls"). We stop at ``max|grad| <= tol`` (default 1e-5 on
  the mean objective, ~scikit-learn's ``tol`` semantics) or ``max_iter`` iterations; thanks to the warm start
  most grid points need a few dozen iterations. ``tests/test_eval_linear.py`` checks agreement with
  scikit-learn at the matched regularisation ``C = 1 / (2 wd)`` (bias penalised: scikit-learn with
  ``fit_intercept=False`` on ``[x, 1]``).
* The solver (preconditioned L-BFGS with closed-form loss and gradient) is :mod:`augself.eval.logreg_lbfgs`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F
from tqdm.auto import tqdm

from augself.eval.device import default_device
from augself.eval.features import extract_features, normalise_images
from augself.eval.logreg_lbfgs import LogRegProblem, fit_logreg_lbfgs, predict, with_bias

__all__ = [
    "WD_GRID",
    "LinearEvalResult",
    "accuracy_metrics",
    "default_device",
    "fit_logreg_lbfgs",
    "linear_eval",
    "seeded_split",
    "sgd_probe",
]

#: The paper's weight-decay grid: ``torch.logspace(-6, 5, steps=45)`` (reference §6.1).
WD_GRID: tuple[float, ...] = tuple(torch.logspace(-6, 5, steps=45, dtype=torch.float64).tolist())
METRICS: tuple[str, ...] = ("top1", "class-avg")


def accuracy_metrics(pred: Tensor, labels: Tensor, num_classes: int | None = None) -> dict[str, float]:
    """``{"top1", "class-avg"}`` in percent; class-avg = mean per-class recall over classes present in
    ``labels``."""
    pred, labels = pred.view(-1).long().cpu(), labels.view(-1).long().cpu()
    if labels.numel() == 0:
        return {"top1": float("nan"), "class-avg": float("nan")}
    c = int(num_classes if num_classes is not None else max(int(labels.max()), int(pred.max())) + 1)
    correct = (pred == labels).float()
    per_class_n = torch.bincount(labels, minlength=c).float()
    per_class_ok = torch.bincount(labels, weights=correct, minlength=c)
    present = per_class_n > 0
    return {
        "top1": float(correct.mean() * 100.0),
        "class-avg": float((per_class_ok[present] / per_class_n[present]).mean() * 100.0),
    }


def seeded_split(n: int, val_fraction: float = 0.1, seed: int = 0) -> tuple[Tensor, Tensor]:
    """(train_idx, val_idx): a seeded random permutation, ``round(val_fraction * n)`` (>= 1) samples to
    val."""
    if not 0 < val_fraction < 1:  # also rejects NaN
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    if n < 2:
        raise ValueError(f"cannot carve a validation split out of {n} training sample(s)")
    n_val = min(n - 1, max(1, round(val_fraction * n)))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


@dataclass
class LinearEvalResult:
    """Result of :func:`linear_eval`. Accuracies in percent."""

    best_wd: float
    metric: str
    val_curve: list[dict[str, float]]
    test: dict[str, float]
    val_best: float
    iterations: list[int]
    refit_iterations: int
    num_train: int
    num_val: int
    num_test: int
    num_classes: int
    dim: int
    time_s: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def test_top1(self) -> float:
        return self.test["top1"]

    @property
    def test_class_avg(self) -> float:
        return self.test["class-avg"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def linear_eval(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    test_labels: Tensor,
    *,
    val_feats: Tensor | None = None,
    val_labels: Tensor | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    wd_grid: Sequence[float] | None = None,
    metric: str = "top1",
    num_classes: int | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    max_iter: int = 1000,
    tol: float = 1e-5,
    history_size: int = 20,
    penalize_bias: bool = True,
    precondition: bool = True,
    progress: bool = True,
) -> LinearEvalResult:
    """The paper's linear evaluation (reference §6.1) on precomputed, unnormalised features.

    Weight decay is searched over ``wd_grid`` (default :data:`WD_GRID` = ``logspace(-6, 5, 45)``) on the val
    split (``val_feats``/``val_labels``; else a seeded ``val_fraction`` split of train), warm-starting one
    classifier across the grid in the given order; the val ``metric`` ("top1" or "class-avg") selects ``wd``
    (first best on ties). The best classifier is refit on train ∪ val and evaluated on test.
    """
    t0 = time.perf_counter()
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; valid: {', '.join(METRICS)}")
    if (val_feats is None) != (val_labels is None):
        raise ValueError("give both val_feats and val_labels, or neither")
    if val_feats is None:
        tr, va = seeded_split(train_feats.shape[0], val_fraction, seed)
        tr_x, tr_y, va_x, va_y = train_feats[tr], train_labels[tr], train_feats[va], train_labels[va]
    else:
        tr_x, tr_y, va_x, va_y = train_feats, train_labels, val_feats, val_labels
    assert va_x is not None and va_y is not None
    if num_classes is None:
        num_classes = int(max(int(tr_y.max()), int(va_y.max()), int(test_labels.max()))) + 1
    grid = list(WD_GRID if wd_grid is None else wd_grid)
    if not grid or any(not math.isfinite(w) or w <= 0 for w in grid):
        raise ValueError("wd_grid must be a non-empty list of positive weight decays")
    dev = default_device(device)
    kw = dict(max_iter=max_iter, tol=tol, history_size=history_size)
    pkw = dict(penalize_bias=penalize_bias, precondition=precondition)

    def prep(x: Tensor) -> Tensor:
        return with_bias(x.to(device=dev, dtype=dtype))

    xa_tr, xa_va, xa_te = prep(tr_x), prep(va_x), prep(test_feats)
    y_tr, y_va = tr_y.to(dev).long(), va_y.to(dev).long()

    theta: Tensor | None = None
    best: tuple[float, float, Tensor] | None = None  # (score, wd, theta)
    curve: list[dict[str, float]] = []
    iters: list[int] = []
    problem = LogRegProblem(xa_tr, y_tr, num_classes, **pkw)  # the preconditioner is set up once for the grid
    bar = tqdm(grid, desc="linear eval: wd search", disable=not progress, leave=False)
    for wd in bar:
        theta, it = problem.fit(wd, theta, keep_history=precondition, **kw)  # type: ignore[arg-type]
        m = accuracy_metrics(predict(theta, xa_va), y_va, num_classes)
        curve.append({"wd": float(wd), **m})
        iters.append(it)
        if best is None or m[metric] > best[0]:
            best = (m[metric], float(wd), theta.clone())
        bar.set_postfix(wd=f"{wd:.1e}", val=f"{m[metric]:.2f}", it=it)
    assert best is not None
    val_best, best_wd, best_theta = best

    xa_all = torch.cat([xa_tr, xa_va])
    y_all = torch.cat([y_tr, y_va])
    del problem
    refit = LogRegProblem(xa_all, y_all, num_classes, **pkw)
    theta_f, refit_it = refit.fit(best_wd, best_theta, **kw)  # type: ignore[arg-type]
    test = accuracy_metrics(predict(theta_f, xa_te), test_labels, num_classes)
    return LinearEvalResult(
        best_wd=best_wd,
        metric=metric,
        val_curve=curve,
        test=test,
        val_best=val_best,
        iterations=iters,
        refit_iterations=refit_it,
        num_train=int(tr_x.shape[0]),
        num_val=int(va_x.shape[0]),
        num_test=int(test_feats.shape[0]),
        num_classes=int(num_classes),
        dim=int(train_feats.shape[1]),
        time_s=time.perf_counter() - t0,
        settings={
            "objective": "sum CE + wd*||[W;b]||^2" if penalize_bias else "sum CE + wd*||W||^2",
            "optimizer": "L-BFGS strong_wolfe, warm-started across the grid",
            "wd_grid": [float(w) for w in grid],
            "max_iter": max_iter,
            "tol": tol,
            "history_size": history_size,
            "precondition": precondition,
            "dtype": str(dtype).replace("torch.", ""),
            "device": str(dev),
            "val_source": "given" if val_feats is not None else f"seeded split {val_fraction} (seed {seed})",
        },
    )


# ----------------------------------------------------------------------------------------------------------
# SGD probe (for datasets too large for full-batch L-BFGS)
# ----------------------------------------------------------------------------------------------------------


class _Augmented(torch.utils.data.Dataset):
    """Applies a torchvision v2 transform to ``sample["image"]`` (uint8) per item (per-sample randomness)."""

    def __init__(self, base: torch.utils.data.Dataset, transform: Any) -> None:
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, i: int) -> dict[str, Any]:
        s = dict(self.base[i])
        s["image"] = self.transform(s["image"])
        return s


def sgd_probe(
    backbone: torch.nn.Module,
    train_set: torch.utils.data.Dataset,
    test_set: torch.utils.data.Dataset,
    *,
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    epochs: int = 100,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    batch_size: int = 256,
    augment: bool = True,
    crop_scale: tuple[float, float] = (0.08, 1.0),
    device: str | torch.device | None = None,
    num_workers: int = 0,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Linear probe trained with SGD + cosine schedule on a frozen backbone (for datasets too large for
    L-BFGS).

    Defaults follow the common SSL linear-probe recipe (MoCo v2 / solo-learn): SGD momentum 0.9, lr 0.1 per
    256 images (scaled linearly with ``batch_size``), cosine decay to 0, 100 epochs, no weight decay. With
    ``augment``, training images get ``RandomResizedCrop(S, crop_scale)`` + horizontal flip (torchvision v2,
    per sample, on the uint8 images) and features are recomputed every epoch; without it, features are
    extracted once. Returns ``{"test": {"top1", "class-avg"}, "train_loss": [...], "settings": {...}}``.
    """
    dev = default_device(device)
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    dim = int(getattr(backbone, "dim", 0)) or None
    was_training = backbone.training
    backbone.eval().to(dev)
    for p in backbone.parameters():
        p.requires_grad_(False)
    te_x, te_y = extract_features(
        backbone,
        test_set,
        batch_size=batch_size,
        device=dev,
        mean=mean,
        std=std,
        num_workers=num_workers,
        progress=progress,
    )
    dim = dim or te_x.shape[1]
    head = torch.nn.Linear(dim, num_classes).to(dev)
    eff_lr = lr * batch_size / 256
    opt = torch.optim.SGD(head.parameters(), lr=eff_lr, momentum=momentum, weight_decay=weight_decay)
    losses: list[float] = []
    if augment:
        from torchvision.transforms import v2

        sample = train_set[0]["image"]  # type: ignore[index]
        size = int(sample.shape[-1])
        tf = v2.Compose([v2.RandomResizedCrop(size, scale=crop_scale, antialias=True), v2.RandomHorizontalFlip()])
        loader = torch.utils.data.DataLoader(
            _Augmented(train_set, tf),
            batch_size=batch_size,
            shuffle=True,
            drop_last=False,
            num_workers=num_workers,
            generator=gen,
        )
        steps = epochs * len(loader)
    else:
        tr_x, tr_y = extract_features(
            backbone,
            train_set,
            batch_size=batch_size,
            device=dev,
            mean=mean,
            std=std,
            num_workers=num_workers,
            progress=progress,
        )
        steps = epochs * math.ceil(tr_x.shape[0] / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))

    def batches() -> Iterator[tuple[Tensor, Tensor]]:
        if augment:
            for b in loader:
                with torch.no_grad():
                    feats = backbone(normalise_images(b["image"].to(dev), mean, std)).flatten(1).float()
                yield feats, b["label"].to(dev).long()
        else:
            perm = torch.randperm(tr_x.shape[0], generator=gen)
            for i in range(0, tr_x.shape[0], batch_size):
                idx = perm[i : i + batch_size]
                yield tr_x[idx].to(dev), tr_y[idx].to(dev).long()

    for _ in tqdm(range(epochs), desc="sgd probe", disable=not progress, leave=False):
        tot, cnt = 0.0, 0
        for feats, labels in batches():
            loss = F.cross_entropy(head(feats), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * labels.shape[0]
            cnt += labels.shape[0]
        losses.append(tot / max(1, cnt))
    backbone.train(was_training)
    with torch.no_grad():
        pred = head(te_x.to(dev)).argmax(1)
    return {
        "test": accuracy_metrics(pred, te_y, num_classes),
        "train_loss": losses,
        "settings": {
            "epochs": epochs,
            "lr": lr,
            "effective_lr": eff_lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "batch_size": batch_size,
            "augment": augment,
            "crop_scale": list(crop_scale),
            "schedule": "cosine",
            "seed": seed,
            "device": str(dev),
        },
    }
