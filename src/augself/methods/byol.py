"""BYOL (Grill et al., NeurIPS 2020) with the AugSelf reference configuration (Lee et al., NeurIPS 2021).

Defaults: projector d -> 4096 (BN, ReLU) -> 256, predictor 256 -> 4096 (BN, ReLU) -> 256 (AugSelf reference
``pretrain.py`` lines 163-188), EMA target (backbone + projector) with base tau 0.996 and the cosine schedule
1 - (1 - tau)(cos(pi k / K) + 1) / 2 (``momentum_schedule = "cosine"``), applied by the trainer after every
optimiser step. With ``optim.ema_interval: step`` k / K is step / total steps (Grill et al., 2020); with
``epoch`` it is the 0-based epoch / epochs, constant within an epoch, as the reference's
``cos(pi (epoch - 1) / max_epochs)`` with ignite's 1-based epoch (``trainers.py`` line 282; paper configs).
Loss: sum over both directions of 2 - 2 cos, i.e. the reference's ``2 (-cos - cos)`` (``trainers.py`` lines
265-267) plus the constant 4 (same gradients).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from augself.methods.contract import Method
from augself.methods.momentum import make_target
from augself.methods.output import MethodOutput
from augself.methods.utils import normalized_std
from augself.models.backbones import Backbone
from augself.models.mlp import mlp


def byol_loss(p: Tensor, z: Tensor, reduction: Literal["mean", "none"] = "mean") -> Tensor:
    """``mean_i (2 - 2 cos(p_i, z_i))``: squared distance of the normalised vectors; ``z`` is detached.
    ``reduction="none"``: the ``(B,)`` per-sample terms."""
    p = F.normalize(p.float(), dim=1)
    z = F.normalize(z.detach().float(), dim=1)
    per = 2 - 2 * (p * z).sum(dim=1)
    return per if reduction == "none" else per.mean()


class BYOL(Method):
    """BYOL: online backbone + projector + predictor regress the EMA target's projection of the other view."""

    momentum_pairs = (
        ("backbone", "momentum_backbone"),
        ("projector", "momentum_projector"),
    )
    momentum_schedule = "cosine"
    per_sample_loss = True

    def __init__(
        self,
        backbone: Backbone,
        *,
        proj_hidden_dim: int = 4096,
        proj_dim: int = 256,
        pred_hidden_dim: int = 4096,
        momentum: float = 0.996,
        num_classes: int | None = None,
    ) -> None:
        """Args (BYOL paper defaults, Sec. 3.3): hidden 4096, output 256, base tau 0.996. ``num_classes``
        is unused."""
        super().__init__()
        self.backbone = backbone
        self.projector = mlp(backbone.dim, proj_hidden_dim, proj_dim, num_layers=2)
        self.predictor = mlp(proj_dim, pred_hidden_dim, proj_dim, num_layers=2)
        self.momentum_backbone = make_target(backbone)
        self.momentum_projector = make_target(self.projector)
        self.momentum = float(momentum)

    def forward(self, views: list[Tensor], labels: Tensor | None = None) -> MethodOutput:
        y1, y2 = self.backbone(views[0]), self.backbone(views[1])
        z1, z2 = self.projector(y1), self.projector(y2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        with torch.no_grad():
            t1 = self.momentum_projector(self.momentum_backbone(views[0]))
            t2 = self.momentum_projector(self.momentum_backbone(views[1]))
        # row v: the term whose online branch sees view v; x2 because the loss sums the two directions
        per = 2 * torch.stack([byol_loss(p1, t2, "none"), byol_loss(p2, t1, "none")])
        return MethodOutput(per.mean(), [y1, y2], {"byol/z_std": normalized_std(z1)}, per_sample=per)
