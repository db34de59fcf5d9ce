"""Awareness report: what each augmentation left in a frozen representation.

AugSelf (Lee et al., NeurIPS 2021, Sec. 1/3) argues that invariance objectives discard augmentation-related
information (colour, position) that downstream tasks may need, and that predicting the *difference* of the
augmentation parameters of two views keeps it. This package measures both sides for any frozen backbone:

* **invariance** (as CASSLE's ``transfer_feature_invariance.py``; reference §6.3): for each augmentation
  *alone* (every other op off) at several strengths, the mean cosine similarity between ``f(x)`` and
  ``f(t(x))`` ("positive"), next to the same for shuffled pairs ``f(x_i)`` vs ``f(t(x_j))``, ``j != i``
  (the baseline: how similar *any* two images are). ``normalised = (positive - shuffled) / (1 - shuffled)``
  is 1 for a fully invariant representation and about 0 when ``t`` moves features as far as a different
  image would.
* **predictability** (as CASSLE's ``transfer_aug_predict.py``): a probe on the frozen features of two views
  ``[f(v1), f(v2)]`` (both orders, as AugSelf's head) predicts the AugSelf targets
  (:func:`augself.augment.targets.relative_targets`): R^2 on held-out images for the regression targets
  (crop, color, blur, sol, ...), accuracy for the classes (flip: same flip state; rot: rotation difference mod 4),
  next to chance. The default probe is a one-hidden-layer MLP like AugSelf's heads: a *linear* probe on the
  concatenation cannot represent "same flip state" (an XOR of the two views' flip bits) even for a perfect
  encoder. ``probe_hidden=0`` gives the linear probe.

What each augmentation is, how it is isolated (every other op off), its strengths, probe setting and target
dimensions come from its spec in the augmentation registry (:func:`augself.augment.specs.awareness_table`,
:func:`~augself.augment.specs.isolated_view`); adding an augmentation there adds it here.

Layout: :mod:`~augself.eval.awareness.views` (features of augmented views), :mod:`~augself.eval.awareness.probe`
(the predictability probe), :mod:`~augself.eval.awareness.measure` (:func:`awareness_report` of one backbone),
:mod:`~augself.eval.awareness.runner` (:func:`run_awareness`: several backbones, written side by side); the
Markdown and PNG output is :func:`augself.eval.report.awareness_markdown` / :func:`~augself.eval.report.plot_awareness`.
"""

from __future__ import annotations

from augself.augment.specs import awareness_table
from augself.augment.specs import isolated_view as view_config
from augself.eval.awareness.measure import awareness_report
from augself.eval.awareness.runner import load_images, run_awareness
from augself.eval.report import awareness_markdown, plot_awareness

_TABLE = awareness_table()
AUGMENTATIONS: tuple[str, ...] = _TABLE.augmentations
"""Augmentations the report knows (the registry's, each named by its AugSelf target)."""
DEFAULT_AUGMENTATIONS: tuple[str, ...] = _TABLE.defaults
DEFAULT_STRENGTHS: dict[str, tuple[float, ...]] = _TABLE.strengths
PROBE_STRENGTH: dict[str, float] = _TABLE.probe_strength
TARGET_DIMS: dict[str, list[str]] = _TABLE.target_dims

__all__ = [
    "AUGMENTATIONS",
    "DEFAULT_AUGMENTATIONS",
    "DEFAULT_STRENGTHS",
    "PROBE_STRENGTH",
    "TARGET_DIMS",
    "awareness_markdown",
    "awareness_report",
    "load_images",
    "plot_awareness",
    "run_awareness",
    "view_config",
]
