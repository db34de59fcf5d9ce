"""Weighted cosine kNN classifier on frozen features.

InstDisc-style voting (Wu et al., 2018, "Unsupervised Feature Learning via Non-Parametric Instance
Discrimination", §3.4): features are L2-normalised, the k most similar training samples vote for their class
with weight exp(sim / T). Defaults k = 200, T = 0.1 follow InstDisc and the kNN monitors of E-SSL /
solo-learn.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["knn_accuracy", "weighted_knn_predict"]


@torch.no_grad()
def weighted_knn_predict(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    *,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> Tensor:
    """Class scores (N_test, num_classes) of a weighted cosine kNN (InstDisc; k = 200, T = 0.1).

    Similarities are cosine similarities of L2-normalised features; each of the ``k`` nearest training
    samples adds ``exp(sim / temperature)`` to its class. ``k`` is clipped to the number of training
    samples. Computation runs on ``test_feats.device`` in chunks of ``chunk_size`` test rows; the result is
    float32 on that device.
    """
    if train_feats.ndim != 2 or test_feats.ndim != 2:
        raise ValueError("weighted_knn_predict: features must be 2-D (N, d)")
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(f"weighted_knn_predict: feature dims differ ({train_feats.shape[1]} vs {test_feats.shape[1]})")
    if train_feats.shape[0] != train_labels.shape[0]:
        raise ValueError("weighted_knn_predict: train_feats and train_labels have different lengths")
    if train_feats.shape[0] == 0:
        raise ValueError("weighted_knn_predict: empty training set")
    if k < 1 or temperature <= 0:
        raise ValueError("weighted_knn_predict: need k >= 1 and temperature > 0")
    device = test_feats.device
    bank = F.normalize(train_feats.to(device=device, dtype=torch.float32), dim=1)
    labels = train_labels.to(device=device, dtype=torch.long).view(-1)
    query = F.normalize(test_feats.to(dtype=torch.float32), dim=1)
    k = min(int(k), bank.shape[0])
    out = torch.empty(query.shape[0], num_classes, device=device, dtype=torch.float32)
    for s in range(0, query.shape[0], max(1, int(chunk_size))):
        sim = query[s : s + chunk_size] @ bank.T  # (b, N_train)
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        scores = torch.zeros(sim.shape[0], num_classes, device=device, dtype=torch.float32)
        scores.scatter_add_(1, labels[top_idx], weights)
        out[s : s + chunk_size] = scores
    return out


def knn_accuracy(
    train_feats: Tensor,
    train_labels: Tensor,
    test_feats: Tensor,
    test_labels: Tensor,
    *,
    num_classes: int | None = None,
    k: int = 200,
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> float:
    """Top-1 accuracy (percent) of :func:`weighted_knn_predict` (InstDisc defaults k = 200, T = 0.1)."""
    if num_classes is None:
        num_classes = int(max(train_labels.max().item(), test_labels.max().item())) + 1
    scores = weighted_knn_predict(
        train_feats,
        train_labels,
        test_feats,
        num_classes=num_classes,
        k=k,
        temperature=temperature,
        chunk_size=chunk_size,
    )
    pred = scores.argmax(1).cpu()
    return float((pred == test_labels.cpu().long()).float().mean().item() * 100.0)
