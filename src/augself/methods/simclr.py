"""SimCLR (Chen et al., ICML 2020) as configured by AugSelf (Lee et al., NeurIPS 2021).

Defaults follow the AugSelf reference code: projector d -> d (BN, ReLU) -> 128 and NT-Xent with T = 0.2 over
the 2B embeddings with the self-similarity masked. Under DDP the embeddings are gathered (global negatives).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from augself.methods.contract import Method
from augself.methods.output import MethodOutput
from augself.methods.utils import gather_with_grad, local_rows, normalized_std
from augself.models.backbones import Backbone
from augself.models.mlp import mlp


def simclr_loss(
    z1: Tensor, z2: Tensor, temperature: float = 0.2, reduction: Literal["mean", "none"] = "mean"
) -> Tensor:
    """NT-Xent: for each of the 2B embeddings, cross-entropy of its positive among the other 2B - 1.

    ``z1``, ``z2``: ``(B, D)`` projections of the two views (normalised here). Mean over the 2B anchors;
    ``reduction="none"``: the ``(2, B)`` per-anchor losses, row v for the anchors of view v (InstaAug's
    ``loss_predictor = model(samples, mean=False)``, ``examples/self-supervised/methods/contrastive.py:8-27``).
    """
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    if reduction == "none":
        return F.cross_entropy(logits, targets, reduction="none").view(2, n)
    return F.cross_entropy(logits, targets)


class SimCLR(Method):
    """SimCLR: backbone + projector, NT-Xent between the two views."""

    per_sample_loss = True

    def __init__(
        self,
        backbone: Backbone,
        *,
        proj_hidden_dim: int | None = None,
        proj_dim: int = 128,
        proj_layers: int = 2,
        temperature: float = 0.2,
        num_classes: int | None = None,
    ) -> None:
        """Args (AugSelf reference defaults): ``proj_hidden_dim`` = backbone dim, ``proj_dim`` 128,
        ``temperature`` 0.2 (SimCLR's paper uses 0.5 on CIFAR / 0.1 on ImageNet). ``num_classes``: unused."""
        super().__init__()
        self.backbone = backbone
        self.projector = mlp(backbone.dim, proj_hidden_dim or backbone.dim, proj_dim, num_layers=proj_layers)
        self.temperature = float(temperature)

    def forward(self, views: list[Tensor], labels: Tensor | None = None) -> MethodOutput:
        y1, y2 = self.backbone(views[0]), self.backbone(views[1])
        z1, z2 = self.projector(y1), self.projector(y2)
        per = simclr_loss(gather_with_grad(z1), gather_with_grad(z2), self.temperature, reduction="none")
        local = torch.stack([local_rows(per[0], z1.shape[0]), local_rows(per[1], z1.shape[0])])
        return MethodOutput(per.mean(), [y1, y2], {"simclr/z_std": normalized_std(z1)}, per_sample=local)
