"""Evaluation of frozen backbones: features, linear (L-BFGS), kNN, few-shot, awareness report, transfer
suites.

The names below are imported on first use (PEP 562 ``__getattr__``), not by the package: ``augself --help``
imports :mod:`augself.eval.cli`, hence this package, and importing every submodule here would add ~0.28 s to it
(transfer, awareness, data, PIL; ``python -X importtime``). ``import augself.eval.knn`` likewise loads only ``knn``.
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
    """``augself.eval.<name>``: import its submodule now (lazy: see the module docstring)."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"augself.eval.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'augself.eval' has no attribute {name!r}")
