"""Supervised baseline: cross-entropy of a linear classifier on the backbone features of every view.

Not in the AugSelf release; provided as an upper-bound reference (Lee et al., 2021, compare Table 1's
supervised rows). Needs labels for every sample.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augself.methods.contract import Method
from augself.methods.output import MethodOutput
from augself.models.backbones import Backbone


def supervised_loss(logits: list[Tensor], labels: Tensor, reduction: Literal["mean", "none"] = "mean") -> Tensor:
    """Mean over views of ``cross_entropy(logits_v, labels)``; ``reduction="none"``: the ``(V, B)`` per-view,
    per-sample cross-entropies (their mean is the loss)."""
    per = torch.stack([F.cross_entropy(x.float(), labels, reduction="none") for x in logits])
    return per if reduction == "none" else per.mean()


class Supervised(Method):
    """Backbone + linear classifier trained with labels on all views (one view is enough)."""

    views_needed = 1
    per_sample_loss = True

    def __init__(self, backbone: Backbone, *, num_classes: int | None = None) -> None:
        super().__init__()
        if num_classes is None or num_classes < 2:
            raise ValueError(
                f"the supervised method needs a labelled dataset (num_classes >= 2), got num_classes={num_classes}"
            )
        self.backbone = backbone
        self.classifier = nn.Linear(backbone.dim, num_classes)
        self.num_classes = int(num_classes)

    def forward(self, views: list[Tensor], labels: Tensor | None = None) -> MethodOutput:
        if labels is None or bool((labels < 0).any()):
            raise ValueError(
                "the supervised method needs a label for every sample (got none, or -1 = unlabelled); use a "
                "labelled split or an SSL method"
            )
        ys = [self.backbone(v) for v in views]
        logits = [self.classifier(y) for y in ys]
        per = supervised_loss(logits, labels, reduction="none")
        acc = (logits[0].argmax(1) == labels).float().mean()
        return MethodOutput(per.mean(), ys[:2], {"supervised/acc": acc.detach()}, per_sample=per)
