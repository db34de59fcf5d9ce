"""The typed per-view, per-sample record of sampled augmentation parameters.

Every field is a tensor whose first dimension is the batch; the fields are those the augmentations declare in
their specs (:data:`augself.augment.specs.registry.RECORD_FIELDS`: ``crop``, ``flip``, ``color_applied``,
``color``, ``color_perm``, ``gray``, ``blur``, ``blur_sigma``, ``sol``, ``sol_threshold``, ``rot``, ``sharp``,
``angle``; each is its augmentation's name or ``<name>_<what>``, ``docs/augmentations.md``). Unapplied
augmentations hold identity values (colour factors 1/1/1/0, sigma 0, threshold 1.0, rotation 0), as in the
AugSelf reference code (quirk Q2).
``crop`` is relative to the *original* image from sampling on.

A record also carries ``cfg``, the :class:`~augself.augment.config.ViewConfig` it was sampled with, so targets
are computed with each view's own settings (e.g. its colour ranges).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from augself.augment.specs.registry import RECORD_FIELDS, identity_record

if TYPE_CHECKING:
    from augself.augment.config import ViewConfig


class ViewParams:
    """Per-sample record of one view (fields: see the module docstring); ``cfg``: the view's settings or None.

    ``ViewParams(crop=..., flip=..., ...)``: fields left out hold their identity values; unknown ones raise.
    """

    cfg: ViewConfig | None

    def __init__(self, cfg: ViewConfig | None = None, **fields: Tensor) -> None:
        unknown = [k for k in fields if k not in RECORD_FIELDS]
        if unknown:
            raise TypeError(f"unknown ViewParams fields {unknown}; fields: {', '.join(RECORD_FIELDS)}")
        if len(fields) < len(RECORD_FIELDS):
            if not fields:
                raise TypeError("ViewParams needs at least one field (use ViewParams.identity for none)")
            ref = next(iter(fields.values()))
            n, dev = int(ref.shape[0]), ref.device
            fields = {k: fields[k] if k in fields else f.identity(n, dev) for k, f in RECORD_FIELDS.items()}
        for name in RECORD_FIELDS:
            self.__dict__[name] = fields[name]
        self.cfg = cfg

    def __getattr__(self, name: str) -> Tensor:  # only called for names that are not set
        raise AttributeError(f"ViewParams has no field {name!r}; fields: {', '.join(RECORD_FIELDS)}")

    def __len__(self) -> int:
        return int(self.crop.shape[0])

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in self.as_dict().items())
        return f"ViewParams({shapes})"

    @property
    def device(self) -> torch.device:
        return self.crop.device

    def _new(self, values: dict[str, Tensor]) -> ViewParams:
        return ViewParams(cfg=self.cfg, **values)

    def to(self, device: torch.device | str) -> ViewParams:
        return self._new({k: v.to(device) for k, v in self.as_dict().items()})

    def __getitem__(self, index: Tensor | slice | int) -> ViewParams:
        return self._new({k: v[index] for k, v in self.as_dict().items()})

    @staticmethod
    def cat(records: list[ViewParams]) -> ViewParams:
        """Concatenate along the batch; ``cfg`` is kept where all records share it (else None)."""
        cfg = records[0].cfg if all(r.cfg == records[0].cfg for r in records) else None
        return ViewParams(cfg=cfg, **{k: torch.cat([r.__dict__[k] for r in records]) for k in RECORD_FIELDS})

    def as_dict(self) -> dict[str, Tensor]:
        return {k: self.__dict__[k] for k in RECORD_FIELDS}

    @staticmethod
    def identity(batch: int, device: torch.device | str = "cpu", cfg: ViewConfig | None = None) -> ViewParams:
        """Parameters of the identity transform (full crop, nothing applied)."""
        return ViewParams(cfg=cfg, **identity_record(batch, device))

    def __getstate__(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
