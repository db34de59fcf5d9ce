"""Evaluation of frozen backbones: features, linear (L-BFGS), kNN, few-shot, awareness report, transfer
suites.

Submodules are imported lazily so that e.g. the training monitor can import :mod:`augself.eval.knn` cheaply.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "weighted_knn_predict": "knn",
    "knn_accuracy": "knn",
    "extract_features": "features",
    "FeatureCache": "features",
    "linear_eval": "linear",
    "LinearEvalResult": "linear",
    "fit_logreg_lbfgs": "linear",
    "sgd_probe": "linear",
    "WD_GRID": "linear",
    "fewshot_eval": "fewshot",
    "sample_episodes": "fewshot",
    "batched_logreg": "fewshot",
    "awareness_report": "awareness",
    "run_transfer": "transfer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"augself.eval.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'augself.eval' has no attribute {name!r}")
