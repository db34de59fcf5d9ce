"""Small helpers shared by the methods: DDP gathering and a collapse monitor."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllGatherCat(torch.autograd.Function):
    """All-gather along dim 0 with the gradient of a sum-reduce-scatter: rank r's input gets the sum over ranks of
    the gradient slice of its rows. Public collectives only (``all_gather``, ``all_reduce``, every backend, torch
    >= 2.1): the autograd ``torch.distributed.nn.functional.all_gather`` is deprecated, and the replacement torch
    suggests (``torch.distributed._functional_collectives.all_gather_single``) is private and absent from torch 2.1.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        world, rank = dist.get_world_size(), dist.get_rank()
        ctx.rows, ctx.rank = x.shape[0], rank
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x)
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.contiguous().clone()  # all_reduce works in place
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)  # sliced: a reduce-scatter (sum) on any backend
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` over DDP ranks along dim 0, keeping gradients (identity when not distributed).

    Every rank then computes the same global loss; the all-gather backward sums the ranks' gradients and DDP
    averages them, which gives exactly the gradient of the global loss. Every rank must pass the same shape.
    """
    if not is_distributed():
        return x
    return _AllGatherCat.apply(x.contiguous())


@torch.no_grad()
def gather_no_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` over DDP ranks along dim 0 without gradients (identity when not distributed)."""
    if not is_distributed():
        return x
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)


def local_rows(x: Tensor, n: int) -> Tensor:
    """This rank's ``n`` rows of a tensor gathered by :func:`gather_with_grad` (``x`` itself when not distributed)."""
    if not is_distributed():
        return x
    rank = dist.get_rank()
    return x[rank * n : (rank + 1) * n]


@torch.no_grad()
def normalized_std(z: Tensor) -> Tensor:
    """Mean per-dimension std of L2-normalised embeddings; ~1/sqrt(dim) when healthy, 0 when collapsed
    (the collapse monitor of SimSiam, Chen & He, 2021, Sec. 4)."""
    return F.normalize(z.detach().float(), dim=1).std(dim=0).mean()
