"""Online monitor during pretraining: weighted kNN accuracy on a labelled split every N epochs.

kNN defaults k = 200, T = 0.1 (Wu et al., 2018; E-SSL's CIFAR monitor). The online linear probe
on detached features lives in the training step (:class:`augself.train.module.PretrainModule`).
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import Dataset, Subset

from augself.eval.features import extract_features
from augself.eval.knn import weighted_knn_predict


def _cap(dataset: Dataset, max_samples: int, seed: int) -> Dataset:
    n = len(dataset)  # type: ignore[arg-type]
    if n <= max_samples:
        return dataset
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:max_samples]
    return Subset(dataset, idx.tolist())


class KNNMonitor(L.Callback):
    """Log ``monitor/knn_top1`` (percent) of the frozen backbone every ``every_n_epochs`` epochs."""

    def __init__(
        self,
        train_set: Dataset,
        test_set: Dataset,
        num_classes: int,
        every_n_epochs: int,
        k: int = 200,
        temperature: float = 0.1,
        max_samples: int = 5000,
        batch_size: int = 256,
        seed: int = 0,
    ) -> None:
        self.train_set = _cap(train_set, max_samples, seed)
        self.test_set = _cap(test_set, max_samples, seed + 1)
        self.num_classes, self.every, self.k, self.t, self.bs = (
            num_classes,
            every_n_epochs,
            k,
            temperature,
            batch_size,
        )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.every <= 0 or (trainer.current_epoch + 1) % self.every:
            return
        view = pl_module.view_cfgs[0]  # type: ignore[attr-defined]
        backbone = pl_module.method.backbone  # type: ignore[attr-defined]
        was_training = backbone.training
        kw = dict(batch_size=self.bs, device=pl_module.device, mean=view.mean, std=view.std, progress=False)
        tr_x, tr_y = extract_features(backbone, self.train_set, **kw)
        te_x, te_y = extract_features(backbone, self.test_set, **kw)
        backbone.train(was_training)
        scores = weighted_knn_predict(tr_x, tr_y, te_x, num_classes=self.num_classes, k=self.k, temperature=self.t)
        acc = (scores.argmax(1).cpu() == te_y.cpu()).float().mean().item() * 100
        pl_module.log("monitor/knn_top1", acc, prog_bar=True, rank_zero_only=True, sync_dist=False)
