"""Global batch and learning rate of a run, from the config and the number of devices.

The AugSelf reference scales the learning rate by the global batch, ``lr = base_lr * batch / 256``
(``pretrain.py`` line 408), and its ``--batch-size`` is global: ``idist.auto_dataloader`` splits it over the GPUs
(``pretrain.py`` lines 274-279). Ours reads ``trainer.batch_size`` per device by default
(``trainer.batch_scope: device``) or as the global batch (``batch_scope: global``); either way every run prints
the resolved figures once at start-up (:meth:`BatchPlan.describe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from augself.config_error import ConfigError

if TYPE_CHECKING:
    from augself.config import TrainerConfig

BATCH_SCOPES: tuple[str, ...] = ("device", "global")


@dataclass(frozen=True)
class BatchPlan:
    """Per-device batch, device count, accumulation steps and the resulting global batch and lr."""

    per_device: int
    world_size: int
    accumulation: int
    base_lr: float
    scale_lr: bool

    @property
    def global_batch(self) -> int:
        return self.per_device * self.world_size * self.accumulation

    @property
    def lr(self) -> float:
        """Peak learning rate: ``base_lr * global_batch / 256`` (Goyal et al., 2017), or ``base_lr`` unscaled."""
        return self.base_lr * self.global_batch / 256 if self.scale_lr else self.base_lr

    def describe(self) -> str:
        """One line, e.g. ``global batch 256 (256 x 1 device x 1 accumulation), lr 0.03 (base 0.03 x 256/256)``."""
        dev = "device" if self.world_size == 1 else "devices"
        how = (
            f"base {self.base_lr:g} x {self.global_batch}/256" if self.scale_lr else f"base {self.base_lr:g}, unscaled"
        )
        return (
            f"global batch {self.global_batch} ({self.per_device} x {self.world_size} {dev} x "
            f"{self.accumulation} accumulation), lr {self.lr:g} ({how})"
        )


def batch_plan(trainer: TrainerConfig, base_lr: float, scale_lr: bool, world_size: int) -> BatchPlan:
    """Resolve ``trainer.batch_size`` for ``world_size`` processes; :class:`ConfigError` if a global batch does
    not split evenly over the devices and accumulation steps."""
    if trainer.batch_scope not in BATCH_SCOPES:
        raise ConfigError(f"trainer.batch_scope must be one of {', '.join(BATCH_SCOPES)}, got {trainer.batch_scope!r}")
    accumulation = int(trainer.accumulate_grad_batches)
    per_device = int(trainer.batch_size)
    if trainer.batch_scope == "global":
        parts = world_size * accumulation
        if per_device % parts or per_device // parts < 1:
            raise ConfigError(
                f"trainer.batch_size={trainer.batch_size} (batch_scope: global) does not split evenly over "
                f"{world_size} device(s) x {accumulation} accumulation step(s)"
            )
        per_device //= parts
    return BatchPlan(per_device, int(world_size), accumulation, float(base_lr), bool(scale_lr))
