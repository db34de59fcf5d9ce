"""E-SSL: four-fold rotation prediction on an extra small view (Dangovski et al., ICLR 2022).

Each image of the extra low-resolution view (16 px for 32-px CIFAR in the paper) is rotated by 0/90/180/270
degrees, the backbone features of the 4B images go through an MLP with LayerNorm (2048-2048-4, the paper's
SimCLR head) and a 4-way cross-entropy is added to the method's loss with weight lambda = 0.4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from augself.models.mlp import mlp


def rotate_four_ways(images: Tensor) -> tuple[Tensor, Tensor]:
    """Stack the four quarter-turn rotations of a (B, C, H, W) batch: returns (4B images, 4B labels)."""
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"rotation view must be square, got {tuple(images.shape[-2:])}")
    rotated = torch.cat([torch.rot90(images, k, dims=(-2, -1)) for k in range(4)])
    labels = torch.arange(4, device=images.device).repeat_interleave(images.shape[0])
    return rotated, labels


class RotationPrediction(nn.Module):
    """Predict the absolute four-fold rotation of a view from its backbone features."""

    def __init__(self, feat_dim: int, hidden_dim: int = 2048, weight: float = 0.4) -> None:
        super().__init__()
        if weight < 0:
            raise ValueError(f"E-SSL weight must be >= 0, got {weight}")
        self.weight = float(weight)
        self.head = mlp(feat_dim, hidden_dim, 4, num_layers=3, norm="ln", hidden_bias=True)

    def forward(self, backbone: nn.Module, view: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Weighted loss and logs (loss, accuracy) for one rotation view."""
        images, labels = rotate_four_ways(view)
        logits = self.head(backbone(images))
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(1) == labels).float().mean()
        return self.weight * loss, {"essl/rot_loss": loss.detach(), "essl/rot_acc": acc.detach()}
