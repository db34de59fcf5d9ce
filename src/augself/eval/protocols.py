"""The evaluation protocols on frozen features: :func:`run_linear`, :func:`run_knn`, :func:`run_fewshot`.

Each evaluates one backbone on one dataset and returns a JSON-able record ``{"protocol", "dataset", "metrics",
"settings", ...}`` (what ``augself eval`` writes). Defaults follow the paper (Lee et al., NeurIPS 2021;
reference §6) unless noted in :data:`PROTOCOL_DEFAULTS`.
"""

from __future__ import annotations

import copy
import datetime as _dt
import math
import time
from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import ConcatDataset

from augself._version import __version__
from augself.data.registry import dataset_info
from augself.eval.device import default_device
from augself.eval.eval_data import FeatureSource, require_classes
from augself.eval.fewshot import fewshot_eval
from augself.eval.knn import weighted_knn_predict
from augself.eval.linear import accuracy_metrics, linear_eval, sgd_probe

__all__ = [
    "PROTOCOLS",
    "PROTOCOL_DEFAULTS",
    "protocol_settings",
    "run_fewshot",
    "run_knn",
    "run_linear",
    "run_protocol",
]

#: Protocol options and their defaults (paper / reference §6 unless noted).
PROTOCOL_DEFAULTS: dict[str, dict[str, Any]] = {
    # L-BFGS, wd in logspace(-6, 5, wd_grid_size) (paper: 45 values); val = the dataset's own, else a seeded
    # 10 % of train. ``sgd``: the SGD probe with augmentation instead (for datasets too large for full batch).
    "linear": {
        "wd_grid_size": 45,
        "metric": None,  # None: the dataset's convention (class-avg for Pets/Flowers/Caltech/Aircraft)
        "val_fraction": 0.1,
        "seed": 0,
        "max_iter": 1000,
        "tol": 1e-5,
        "sgd": False,
        "sgd_epochs": 100,
        "sgd_lr": 0.1,
        "sgd_batch_size": 256,
        "sgd_augment": True,
    },
    # weighted cosine kNN (InstDisc: k = 200, T = 0.1); memory = train (+ val), queries = test
    "knn": {"k": 200, "t": 0.1},
    # N-way K-shot, Q queries, T episodes (reference §6.2: 5-way, 1/5-shot, 16 queries, 2000 episodes)
    "fewshot": {"ways": 5, "shots": [1, 5], "queries": 16, "episodes": 2000, "seed": 0, "C": 1.0, "split": None},
}
PROTOCOLS: tuple[str, ...] = tuple(PROTOCOL_DEFAULTS)


def protocol_settings(protocol: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    if protocol not in PROTOCOL_DEFAULTS:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    given = dict(given or {})
    unknown = sorted(set(given) - set(PROTOCOL_DEFAULTS[protocol]))
    if unknown:
        raise ValueError(
            f"unknown {protocol} setting(s) {', '.join(unknown)}; valid: {', '.join(PROTOCOL_DEFAULTS[protocol])}"
        )
    s = {**copy.deepcopy(PROTOCOL_DEFAULTS[protocol]), **given}
    if protocol == "fewshot":
        s["shots"] = [int(k) for k in (s["shots"] if isinstance(s["shots"], list | tuple) else [s["shots"]])]
        if s["ways"] < 2 or s["queries"] < 1 or s["episodes"] < 1 or not s["shots"] or min(s["shots"]) < 1:
            raise ValueError("few-shot needs ways >= 2, shots >= 1, queries >= 1, episodes >= 1")
        if not 0 < float(s["C"]) < math.inf:
            raise ValueError(f"few-shot C must be positive and finite, got {s['C']}")
    if protocol == "knn" and (int(s["k"]) < 1 or not 0 < float(s["t"]) < math.inf):
        raise ValueError("kNN needs k >= 1 and t > 0")
    if protocol == "linear":
        if int(s["wd_grid_size"]) < 1:
            raise ValueError("linear wd_grid_size must be >= 1")
        if s["metric"] not in (None, "top1", "class-avg"):
            raise ValueError(f"unknown linear metric {s['metric']!r}; valid: top1, class-avg")
        if not 0 < float(s["val_fraction"]) < 1:  # also rejects NaN
            raise ValueError(f"linear val_fraction (--val-fraction) must be between 0 and 1, got {s['val_fraction']}")
        if int(s["max_iter"]) < 1 or not 0 < float(s["tol"]) < math.inf:
            raise ValueError("linear needs max_iter >= 1 and a positive, finite tol")
        if int(s["sgd_epochs"]) < 1 or int(s["sgd_batch_size"]) < 1 or not 0 < float(s["sgd_lr"]) < math.inf:
            raise ValueError("the linear SGD probe needs sgd_epochs >= 1, sgd_batch_size >= 1 and sgd_lr > 0")
    return s


def _record(
    protocol: str,
    src: FeatureSource,
    metrics: dict[str, Any],
    settings: dict[str, Any],
    t0: float,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    extra = {"skipped_corrupt": src.skipped_summary()} if src.data.skip_corrupt else {}
    return {
        "protocol": protocol,
        "dataset": src.data.name,
        "data": src.data.info(),
        "metrics": metrics,
        "settings": settings,
        "backbone": src.lb.info(),
        "preprocessing": src.preprocessing(),
        "details": details or {},
        "time_s": round(time.perf_counter() - t0, 3),
        "feature_time_s": round(src.extract_s, 3),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "augself_version": __version__,
        **extra,
    }


def run_linear(src: FeatureSource, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The paper's linear evaluation (L-BFGS, wd search on val, refit on train ∪ val; reference §6.1), or the
    SGD probe with ``sgd: true``. Metrics in percent: ``top1``, ``class-avg``; ``metric`` names the one used
    for the wd selection (the dataset's convention unless set)."""
    t0 = time.perf_counter()
    s = protocol_settings("linear", settings)
    metric = s["metric"] or (dataset_info(src.data.spec)["metric"] if src.data.kind == "named" else "top1")
    s["metric"] = metric
    nc = src.num_classes()
    if s["sgd"]:
        sets = [src.dataset("train")] + ([src.dataset("val")] if src.data.has_own_val() else [])
        train = sets[0] if len(sets) == 1 else ConcatDataset(sets)
        _, y_te = src.get("test")
        if nc is None:
            nc = int(y_te.max()) + 1
        require_classes(y_te, f"{src.data.name}/test", "linear")
        out = sgd_probe(
            src.lb.backbone,
            train,
            src.dataset("test"),
            num_classes=nc,
            mean=src.lb.pre.mean,
            std=src.lb.pre.std,
            epochs=int(s["sgd_epochs"]),
            lr=float(s["sgd_lr"]),
            batch_size=int(s["sgd_batch_size"]),
            augment=bool(s["sgd_augment"]),
            device=src.device,
            num_workers=src.num_workers,
            seed=int(s["seed"]),
            progress=src.progress,
        )
        metrics = {**out["test"], "metric": metric}
        return _record(
            "linear",
            src,
            metrics,
            {**s, "probe": out["settings"]},
            t0,
            {"train_loss": out["train_loss"], "num_classes": nc},
        )
    x_tr, y_tr = src.get("train")
    require_classes(y_tr, f"{src.data.name}/train", "linear")
    val = src.get("val") if src.data.has_own_val() else (None, None)
    x_te, y_te = src.get("test")
    grid = torch.logspace(-6, 5, steps=int(s["wd_grid_size"]), dtype=torch.float64).tolist()
    res = linear_eval(
        x_tr,
        y_tr,
        x_te,
        y_te,
        val_feats=val[0],
        val_labels=val[1],
        val_fraction=float(s["val_fraction"]),
        seed=int(s["seed"]),
        wd_grid=grid,
        metric=metric,
        num_classes=nc,
        device=src.device,
        max_iter=int(s["max_iter"]),
        tol=float(s["tol"]),
        progress=src.progress,
    )
    metrics = {**res.test, "metric": metric, "best_wd": res.best_wd, f"val_{metric}": res.val_best}
    details = {
        "val_curve": res.val_curve,
        "iterations": res.iterations,
        "refit_iterations": res.refit_iterations,
        "num_train": res.num_train,
        "num_val": res.num_val,
        "num_test": res.num_test,
        "num_classes": res.num_classes,
        "dim": res.dim,
        "fit_time_s": res.time_s,
    }
    return _record(
        "linear", src, metrics, {**s, **res.settings, "wd_grid": f"logspace(-6, 5, {len(grid)})"}, t0, details
    )


def run_knn(src: FeatureSource, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Weighted cosine kNN (InstDisc; k = 200, T = 0.1): memory = train (+ the dataset's own val), queries =
    test. Metrics in percent: ``top1``, ``class-avg``."""
    t0 = time.perf_counter()
    s = protocol_settings("knn", settings)
    mem = ["train", "val"] if src.data.has_own_val() else ["train"]
    x_tr, y_tr = src.concat(mem)
    require_classes(y_tr, f"{src.data.name}/{'+'.join(mem)}", "kNN")
    x_te, y_te = src.get("test")
    nc = src.num_classes() or int(max(int(y_tr.max()), int(y_te.max()))) + 1
    dev = default_device(src.device)
    scores = weighted_knn_predict(
        x_tr.to(dev), y_tr.to(dev), x_te.to(dev), num_classes=nc, k=int(s["k"]), temperature=float(s["t"])
    )
    metrics = accuracy_metrics(scores.argmax(1).cpu(), y_te, nc)
    details = {
        "num_memory": int(x_tr.shape[0]),
        "num_test": int(x_te.shape[0]),
        "memory_splits": mem,
        "num_classes": nc,
        "effective_k": min(int(s["k"]), int(x_tr.shape[0])),
    }
    return _record(
        "knn", src, metrics, {**s, "features": "L2-normalised, weights exp(cos / t)", "device": str(dev)}, t0, details
    )


def run_fewshot(src: FeatureSource, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """N-way K-shot logistic regression on frozen features (reference §6.2), mean ± 95 % CI per shot count.

    The pool is the dataset's few-shot pool (:meth:`EvalData.fewshot_splits`) unless ``split`` is set.
    Metrics: ``{"<N>way<K>shot": {"mean", "ci95", "std", "episodes"}}``.
    """
    t0 = time.perf_counter()
    s = protocol_settings("fewshot", settings)
    if s["split"] is None or (s["split"] == "all" and src.data.presplit):
        splits = src.data.fewshot_splits()
    else:
        splits = [str(s["split"])]
    x, y = src.concat(splits)
    require_classes(y, f"{src.data.name}/{'+'.join(splits)}", "few-shot")
    out = fewshot_eval(
        x,
        y,
        n_way=int(s["ways"]),
        shots=s["shots"],
        n_query=int(s["queries"]),
        n_episodes=int(s["episodes"]),
        C=float(s["C"]),
        seed=int(s["seed"]),
        device=src.device,
        progress=src.progress,
    )
    inner = out.pop("settings")
    metrics = {k: {kk: v[kk] for kk in ("mean", "ci95", "std", "episodes")} for k, v in out.items()}
    details = {"pool_splits": splits, "pool_size": int(x.shape[0]), "num_classes": int(y.max()) + 1, "per_shot": out}
    return _record("fewshot", src, metrics, {**s, "split": splits, **inner}, t0, details)


RUNNERS = {"linear": run_linear, "knn": run_knn, "fewshot": run_fewshot}


def run_protocol(protocol: str, src: FeatureSource, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Dispatch to :func:`run_linear` / :func:`run_knn` / :func:`run_fewshot`."""
    if protocol not in RUNNERS:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    before = src.extract_s
    rec = RUNNERS[protocol](src, settings)
    rec["feature_time_s"] = round(src.extract_s - before, 3)  # 0 when the features were already at hand
    return rec
