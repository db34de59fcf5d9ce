"""Frozen-backbone feature extraction with an on-disk cache.

Preprocessing follows the reference linear/few-shot evaluation (Lee et al., NeurIPS 2021; reference §6.1): no
augmentation, images brought to the *pretraining* resolution (resize short side + centre crop, done by the
dataset readers at ``size=S``), then ``/255`` and the pretraining setup's mean/std normalisation. Features
are the pooled backbone outputs, unnormalised.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from augself.eval.device import default_device

__all__ = [
    "FeatureCache",
    "NonFiniteFeaturesError",
    "check_finite",
    "extract_features",
    "hash_state_dict",
    "normalise_images",
]


class NonFiniteFeaturesError(ValueError):
    """A backbone gives NaN / inf features (diverged or damaged weights): nothing can be scored with it.

    A user error (the CLI exits with status 2, like an unreadable backbone file): the given backbone cannot be
    evaluated, and running again does not help; the pretraining run that produced it stops on a non-finite loss
    itself (exit 1)."""


def check_finite(x: Tensor, what: str) -> None:
    """Raise :class:`NonFiniteFeaturesError` naming ``what`` and the count when ``x`` holds NaN or inf."""
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise NonFiniteFeaturesError(
            f"{what}: {bad} of {x.numel()} feature values are NaN or inf (diverged or damaged weights?); "
            "nothing was scored"
        )


def normalise_images(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 (B, C, H, W) (or float in [0, 1]) -> float32 ``(x / 255 - mean) / std``; 1-channel input is
    repeated to ``len(mean)`` channels."""
    x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
    c = len(mean)
    if x.shape[1] == 1 and c != 1:
        x = x.expand(-1, c, -1, -1)
    if x.shape[1] != c:
        raise ValueError(f"images have {x.shape[1]} channels but mean/std have {c} entries")
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
    return (x - m) / s


def _batch_images_labels(batch: Any) -> tuple[Tensor, Tensor]:
    if isinstance(batch, dict):
        images = batch["image"]
        labels = batch.get("label")
    else:  # tolerate (image, label) tuples from foreign datasets
        images, labels = batch[0], batch[1] if len(batch) > 1 else None
    if labels is None:
        labels = torch.full((images.shape[0],), -1, dtype=torch.long)
    return images, torch.as_tensor(labels).long().view(-1)


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    mean: Sequence[float],
    std: Sequence[float],
    num_workers: int = 0,
    progress: bool = True,
    channels_last: bool = False,
    desc: str = "features",
) -> tuple[Tensor, Tensor]:
    """Features ``float32 (N, d)`` and labels ``long (N,)`` (on the CPU) of a frozen backbone over
    ``dataset``.

    The backbone runs in eval mode without gradients (its training flag and device are restored afterwards);
    images are ``uint8 -> /255 -> (x - mean) / std`` with the *pretraining* statistics. ``device`` defaults to
    CUDA when available. ``channels_last`` uses that memory format for the inputs and the backbone.
    """
    dev = default_device(device)
    params = list(backbone.parameters())
    orig_device = params[0].device if params else dev
    was_training = backbone.training
    backbone.eval().to(dev)
    if channels_last:
        backbone.to(memory_format=torch.channels_last)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, pin_memory=dev.type == "cuda"
    )
    feats: list[Tensor] = []
    labels: list[Tensor] = []
    try:
        for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
            images, y = _batch_images_labels(batch)
            x = normalise_images(images.to(dev, non_blocking=True), mean, std)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            f = backbone(x)
            feats.append(f.flatten(1).float().cpu())
            labels.append(y)
    finally:
        backbone.train(was_training)
        backbone.to(orig_device)
        if channels_last:
            backbone.to(memory_format=torch.contiguous_format)
    if not feats:
        d = int(getattr(backbone, "dim", 0))
        return torch.zeros(0, d), torch.zeros(0, dtype=torch.long)
    return torch.cat(feats), torch.cat(labels)


def hash_state_dict(module: nn.Module) -> str:
    """SHA-256 over the sorted state-dict entries (names, dtypes, shapes, bytes) and the class name."""
    h = hashlib.sha256(type(module).__name__.encode())
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class FeatureCache:
    """Cache of extracted features under ``root`` as ``<key>.pt`` (``{"feats", "labels", "meta"}``).

    The key hashes the backbone weights and the data/preprocessing description (dataset name or path, root,
    split, size, mean, std and any ``extra`` fields), so a different checkpoint, split or normalisation
    never hits.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def backbone_hash(self, backbone: nn.Module) -> str:
        return hash_state_dict(backbone)

    def key(
        self,
        backbone: nn.Module | str,
        *,
        dataset: str,
        split: str,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        root: str | os.PathLike[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Hex key of (backbone hash, dataset, root, split, size, mean, std, extra); ``backbone`` may be a
        hash."""
        bh = backbone if isinstance(backbone, str) else self.backbone_hash(backbone)
        desc = {
            "backbone": bh,
            "dataset": str(dataset),
            "root": None if root is None else str(Path(root).expanduser().resolve()),
            "split": split,
            "size": int(size),
            "mean": [round(float(v), 8) for v in mean],
            "std": [round(float(v), 8) for v in std],
            "extra": extra or {},
        }
        return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str, allow_nan=False).encode()).hexdigest()[:32]

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def load(self, key: str) -> tuple[Tensor, Tensor] | None:
        p = self.path(key)
        if not p.is_file():
            return None
        try:
            d = torch.load(p, map_location="cpu", weights_only=True)
            return d["feats"], d["labels"]
        except Exception:  # corrupt / partial file: recompute
            return None

    def save(self, key: str, feats: Tensor, labels: Tensor, meta: dict[str, Any] | None = None) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        p = self.path(key)
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp")
        os.close(fd)
        try:
            torch.save({"feats": feats.cpu(), "labels": labels.cpu(), "meta": meta or {}}, tmp)
            os.replace(tmp, p)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return p

    def get_or_extract(
        self,
        backbone: nn.Module,
        dataset: Dataset,
        *,
        name: str,
        split: str,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        root: str | os.PathLike[str] | None = None,
        extra: dict[str, Any] | None = None,
        backbone_hash: str | None = None,
        **extract_kw: Any,
    ) -> tuple[Tensor, Tensor]:
        """Cached :func:`extract_features` (``extract_kw`` such as batch_size/device do not enter the key)."""
        bh = backbone_hash or self.backbone_hash(backbone)
        k = self.key(bh, dataset=name, split=split, size=size, mean=mean, std=std, root=root, extra=extra)
        hit = self.load(k)
        if hit is not None:
            return hit
        feats, labels = extract_features(backbone, dataset, mean=mean, std=std, **extract_kw)
        meta = {
            "dataset": name,
            "split": split,
            "size": size,
            "mean": list(mean),
            "std": list(std),
            "root": None if root is None else str(root),
            "backbone": bh,
            "extra": extra or {},
        }
        self.save(k, feats, labels, meta)
        return feats, labels
