"""SimSiam (Chen & He, CVPR 2021) with the AugSelf reference configuration (Lee et al., NeurIPS 2021).

Defaults: projector d -> 2048 (BN, ReLU) -> 2048 followed by BN (2 layers, AugSelf's CIFAR/STL setting; the
reference's ImageNet projector has 3 layers, ``num_layers=2+int(args.dataset.startswith('imagenet'))`` in
``pretrain.py`` line 40: ``proj_layers=3``, set by ``configs/imagenet100/simsiam.yaml``);
predictor 2048 -> 512 (BN, ReLU) -> 2048, trained with a
constant lr (``fixed_lr_modules = ("predictor",)``, SimSiam Sec. 4.4); symmetric negative cosine with
stop-gradient on the targets.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from augself.methods.contract import Method
from augself.methods.output import MethodOutput
from augself.methods.utils import normalized_std
from augself.models.backbones import Backbone
from augself.models.mlp import mlp


def simsiam_loss(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor, reduction: Literal["mean", "none"] = "mean") -> Tensor:
    """``-(cos(p1, sg(z2)) + cos(p2, sg(z1))) / 2``, each cosine averaged over the batch (in [-1, 1]).
    ``reduction="none"``: the ``(2, B)`` terms ``[-cos(p1_i, sg(z2_i)), -cos(p2_i, sg(z1_i))]`` (row v: the
    prediction from view v), whose mean is the loss."""
    c12 = F.cosine_similarity(p1.float(), z2.detach().float(), dim=1)
    c21 = F.cosine_similarity(p2.float(), z1.detach().float(), dim=1)
    if reduction == "none":
        return -torch.stack([c12, c21])
    return -(c12.mean() + c21.mean()) / 2


class SimSiam(Method):
    """SimSiam: backbone + projector + predictor, no negatives, no momentum encoder."""

    fixed_lr_modules = ("predictor",)
    per_sample_loss = True

    def __init__(
        self,
        backbone: Backbone,
        *,
        proj_hidden_dim: int = 2048,
        proj_dim: int = 2048,
        proj_layers: int = 2,
        pred_hidden_dim: int = 512,
        num_classes: int | None = None,
    ) -> None:
        """Args (SimSiam paper / AugSelf defaults): projector 2048-2048 + BN, predictor bottleneck 512.
        ``num_classes`` is unused."""
        super().__init__()
        self.backbone = backbone
        self.projector = mlp(
            backbone.dim, proj_hidden_dim, proj_dim, num_layers=proj_layers, last_norm=True, last_bias=False
        )
        self.predictor = mlp(proj_dim, pred_hidden_dim, proj_dim, num_layers=2)

    def forward(self, views: list[Tensor], labels: Tensor | None = None) -> MethodOutput:
        y1, y2 = self.backbone(views[0]), self.backbone(views[1])
        z1, z2 = self.projector(y1), self.projector(y2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        per = simsiam_loss(p1, p2, z1, z2, reduction="none")
        return MethodOutput(per.mean(), [y1, y2], {"simsiam/z_std": normalized_std(z1)}, per_sample=per)
