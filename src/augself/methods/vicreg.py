"""VICReg (Bardes, Ponce & LeCun, ICLR 2022).

Defaults from the paper (Sec. 4.2): projector d -> 8192 -> 8192 -> 8192 (Linear-BN-ReLU twice, then Linear),
loss = 25 * invariance (MSE) + 25 * variance (hinge on the std, gamma = 1, eps = 1e-4) + 1 * covariance
(squared off-diagonal covariances / D). For small backbones pass smaller projector dims. Under DDP the
embeddings are gathered.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from augself.methods.contract import Method
from augself.methods.output import MethodOutput
from augself.methods.utils import gather_with_grad, normalized_std
from augself.models.backbones import Backbone
from augself.models.mlp import mlp


def _variance(z: Tensor, eps: float = 1e-4) -> Tensor:
    return F.relu(1 - torch.sqrt(z.var(dim=0) + eps)).mean()


def _covariance(z: Tensor) -> Tensor:
    n, d = z.shape
    z = z - z.mean(dim=0)
    cov = z.T @ z / (n - 1)
    return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d


def vicreg_terms(z1: Tensor, z2: Tensor) -> dict[str, Tensor]:
    """The three unweighted VICReg terms: ``inv`` (MSE), ``var`` (mean of both views), ``cov`` (sum)."""
    z1, z2 = z1.float(), z2.float()
    return {
        "inv": F.mse_loss(z1, z2),
        "var": (_variance(z1) + _variance(z2)) / 2,
        "cov": _covariance(z1) + _covariance(z2),
    }


def vicreg_loss(
    z1: Tensor, z2: Tensor, sim_weight: float = 25.0, var_weight: float = 25.0, cov_weight: float = 1.0
) -> Tensor:
    """``sim_weight * inv + var_weight * var + cov_weight * cov`` (see :func:`vicreg_terms`)."""
    t = vicreg_terms(z1, z2)
    return sim_weight * t["inv"] + var_weight * t["var"] + cov_weight * t["cov"]


class VICReg(Method):
    """VICReg: invariance + variance + covariance regularisation of the two views' embeddings."""

    def __init__(
        self,
        backbone: Backbone,
        *,
        proj_hidden_dim: int = 8192,
        proj_dim: int = 8192,
        proj_layers: int = 3,
        sim_weight: float = 25.0,
        var_weight: float = 25.0,
        cov_weight: float = 1.0,
        num_classes: int | None = None,
    ) -> None:
        """Args (Bardes et al., 2022): projector 8192x3, weights 25 / 25 / 1. ``num_classes`` is unused."""
        super().__init__()
        self.backbone = backbone
        self.projector = mlp(backbone.dim, proj_hidden_dim, proj_dim, num_layers=proj_layers)
        self.weights = (float(sim_weight), float(var_weight), float(cov_weight))

    def forward(self, views: list[Tensor], labels: Tensor | None = None) -> MethodOutput:
        y1, y2 = self.backbone(views[0]), self.backbone(views[1])
        z1, z2 = self.projector(y1), self.projector(y2)
        t = vicreg_terms(gather_with_grad(z1), gather_with_grad(z2))
        ws, wv, wc = self.weights
        loss = ws * t["inv"] + wv * t["var"] + wc * t["cov"]
        logs = {f"vicreg/{k}": v.detach() for k, v in t.items()} | {"vicreg/z_std": normalized_std(z1)}
        return MethodOutput(loss, [y1, y2], logs)
