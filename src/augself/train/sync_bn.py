"""Synchronised BatchNorm under DDP on every device, CPU (gloo) included.

SimCLR, BYOL, SimSiam and SwAV compute BatchNorm statistics over the *global* batch when trained on several
devices (Chen et al., 2020, Sec. 2 "global BN"; the AugSelf reference uses ``SyncBatchNorm`` under DDP).
``torch.nn.SyncBatchNorm`` only runs on accelerators (its forward and ``DistributedDataParallel`` both refuse
CPU modules). :class:`GlobalSyncBatchNorm` is a BatchNorm that, in a distributed run, computes the batch
statistics over all ranks with differentiable all-reduces (two per forward, two per backward), so the gradients
equal those of one process on the global batch (``tests/test_ddp.py`` checks this); it works with any backend,
gloo on CPU included. :func:`convert_sync_batchnorm` uses it for CPU models and torch's ``nn.SyncBatchNorm``
(fused kernels) on CUDA/XPU/HPU.

:class:`SyncBatchNormPlugin` is the Lightning ``LayerSync`` plugin doing this conversion for the device the
strategy trains on; ``build_trainer`` passes it when ``trainer.sync_batchnorm`` is true. It subclasses
Lightning's ``TorchSyncBatchNorm`` so that ``Trainer(sync_batchnorm=True, plugins=[...])`` is accepted.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch.plugins.layer_sync import TorchSyncBatchNorm, _BatchNormXd
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

#: devices on which torch's own ``nn.SyncBatchNorm`` kernel runs
_NATIVE_DEVICES = ("cuda", "xpu", "hpu")


class _AllReduceSum(torch.autograd.Function):
    """Differentiable all-reduce (sum): the backward all-reduces the incoming gradients as well."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, group: Any) -> Tensor:
        ctx.group = group
        x = x.clone()
        dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        grad = grad.clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class GlobalSyncBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are taken over all ranks' samples (a SyncBatchNorm for any device).

    Outside a distributed run, in evaluation mode or with one rank it is plain BatchNorm. Otherwise it
    normalises with the global mean and biased global variance, updates the running estimates with the
    unbiased global variance (as ``nn.BatchNorm``), and back-propagates through the statistics. Statistics are
    computed in float32 whatever the input dtype (mixed precision).
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group: Any = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)  # type: ignore[arg-type]
        self.process_group = process_group

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        if not self.training or not (dist.is_available() and dist.is_initialized()):
            return super().forward(input)
        group = self.process_group or dist.group.WORLD
        if dist.get_world_size(group) == 1:
            return super().forward(input)
        self._check_input_dim(input)
        return self._global_forward(input, group)

    def _global_forward(self, input: Tensor, group: Any) -> Tensor:
        x = input.float()
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = x.new_full((1,), x.numel() / max(1, x.shape[1]))
        # one all-reduce for the sums and the sample count, one for the centred sum of squares
        total = _AllReduceSum.apply(torch.cat([x.sum(dims), count]), group)
        n = float(total[-1].detach())
        if n <= 1:
            raise ValueError(f"GlobalSyncBatchNorm needs more than 1 value per channel over all ranks, got {n:g}")
        mean = total[:-1] / n
        centred = x - mean.view(shape)
        var = _AllReduceSum.apply(centred.pow(2).sum(dims), group) / n
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)  # type: ignore[operator]
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), m)
                self.running_var.lerp_((var.detach() * n / (n - 1)).to(self.running_var.dtype), m)
        return y.to(input.dtype)

    @classmethod
    def convert_sync_batchnorm(cls, module: nn.Module, process_group: Any = None) -> nn.Module:
        """Replace every BatchNorm in ``module`` by a :class:`GlobalSyncBatchNorm` that shares its parameters
        and buffers (as ``nn.SyncBatchNorm.convert_sync_batchnorm`` does); returns the converted module."""
        out = module
        if isinstance(module, _BatchNorm) and not isinstance(module, cls):
            out = cls(
                module.num_features,
                module.eps,
                module.momentum,  # type: ignore[arg-type]
                module.affine,
                module.track_running_stats,
                process_group,
            )
            _share_bn_state(module, out)
            if hasattr(module, "qconfig"):
                out.qconfig = module.qconfig
        for name, child in module.named_children():
            out.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return out


def _share_bn_state(src: _BatchNorm, dst: _BatchNorm) -> None:
    """Make ``dst`` use ``src``'s parameters, running statistics and training flag (shared, not copied)."""
    if src.affine:
        with torch.no_grad():
            dst.weight = src.weight
            dst.bias = src.bias
    dst.running_mean = src.running_mean
    dst.running_var = src.running_var
    dst.num_batches_tracked = src.num_batches_tracked
    dst.training = src.training


def convert_sync_batchnorm(
    module: nn.Module, process_group: Any = None, device: torch.device | str | None = None
) -> nn.Module:
    """Make every BatchNorm layer of ``module`` synchronised across ranks for training on ``device``.

    CUDA/XPU/HPU: ``nn.SyncBatchNorm`` (torch's kernels); any other device (CPU): :class:`GlobalSyncBatchNorm`.
    ``device`` defaults to that of the module's first parameter (CPU if it has none).
    """
    if device is None:
        first = next(module.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    if torch.device(device).type in _NATIVE_DEVICES:
        return nn.SyncBatchNorm.convert_sync_batchnorm(module, process_group)
    return GlobalSyncBatchNorm.convert_sync_batchnorm(module, process_group)


def revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Undo :func:`convert_sync_batchnorm`: synchronised layers become plain BatchNorm sharing their tensors."""
    out = module
    if isinstance(module, GlobalSyncBatchNorm | nn.SyncBatchNorm):
        out = _BatchNormXd(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        _share_bn_state(module, out)
    for name, child in module.named_children():
        out.add_module(name, revert_sync_batchnorm(child))
    return out


class SyncBatchNormPlugin(TorchSyncBatchNorm):
    """Lightning ``LayerSync`` plugin: global BatchNorm statistics under DDP on CPU (gloo) and GPU (NCCL).

    The layer type is chosen for the device the strategy trains on (the model is still on CPU when Lightning
    applies the plugin).
    """

    def apply(self, model: nn.Module) -> nn.Module:
        trainer = getattr(model, "_trainer", None)
        device = trainer.strategy.root_device if trainer is not None else None
        return convert_sync_batchnorm(model, device=device)

    def revert(self, model: nn.Module) -> nn.Module:
        return revert_sync_batchnorm(model)
