"""Barlow Twins (Zbontar et al., ICML 2021).

Defaults from the paper: projector d -> 8192 -> 8192 -> 8192 (Linear-BN-ReLU twice, then a bias-free
Linear); the embeddings are batch-normalised (BN without affine) before the cross-correlation;
lambda = 5e-3 for the off-diagonal term (Sec. 4; the released code uses 0.0051). For small backbones and
CPU runs pass smaller ``proj_hidden_dim`` / ``proj_dim``. Under DDP the embeddings are gathered.
"""

from __future__ import annotations

import torch
from torch import Tensor

from augself.methods.contract import Method
from augself.methods.output import MethodOutput
from augself.methods.utils import gather_with_grad, normalized_std
from augself.models.backbones import Backbone
from augself.models.mlp import mlp


def _standardize(z: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-dimension ``(z - mean) / sqrt(var + eps)`` over the batch (BatchNorm1d(affine=False), train)."""
    z = z.float()
    return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + eps)


def barlow_twins_loss(z1: Tensor, z2: Tensor, lambd: float = 5e-3) -> Tensor:
    """``sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2``, ``C`` the ``(D, D)`` cross-correlation of
    the batch-standardised embeddings."""
    n = z1.shape[0]
    c = _standardize(z1).T @ _standardize(z2) / n
    diag = torch.diagonal(c)
    on = (diag - 1).pow(2).sum()
    off = c.pow(2).sum() - diag.pow(2).sum()
    return on + lambd * off


class BarlowTwins(Method):
    """Barlow Twins: make the cross-correlation of the two views' embeddings close to the identity."""

    def __init__(
        self,
        backbone: Backbone,
        *,
        proj_hidden_dim: int = 8192,
        proj_dim: int = 8192,
        proj_layers: int = 3,
        lambd: float = 5e-3,
        num_classes: int | None = None,
    ) -> None:
        """Args (Zbontar et al., 2021): projector 8192-8192-8192, lambda 5e-3. ``num_classes`` is unused."""
        super().__init__()
        self.backbone = backbone
        self.projector = mlp(backbone.dim, proj_hidden_dim, proj_dim, num_layers=proj_layers, last_bias=False)
        self.lambd = float(lambd)

    def forward(self, views: list[Tensor], labels: Tensor | None = None) -> MethodOutput:
        y1, y2 = self.backbone(views[0]), self.backbone(views[1])
        z1, z2 = self.projector(y1), self.projector(y2)
        loss = barlow_twins_loss(gather_with_grad(z1), gather_with_grad(z2), self.lambd)
        return MethodOutput(loss, [y1, y2], {"barlow/z_std": normalized_std(z1)})
