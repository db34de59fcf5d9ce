"""Small helpers shared by the methods: DDP gathering and a collapse monitor."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` over DDP ranks along dim 0, keeping gradients (identity when not distributed).

    Every rank then computes the same global loss; the all-gather backward sums the ranks' gradients and DDP
    averages them, which gives exactly the gradient of the global loss.
    """
    if not is_distributed():
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), dim=0)


@torch.no_grad()
def gather_no_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` over DDP ranks along dim 0 without gradients (identity when not distributed)."""
    if not is_distributed():
        return x
    out = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(out, x.contiguous())
    return torch.cat(out, dim=0)


@torch.no_grad()
def normalized_std(z: Tensor) -> Tensor:
    """Mean per-dimension std of L2-normalised embeddings; ~1/sqrt(dim) when healthy, 0 when collapsed
    (the collapse monitor of SimSiam, Chen & He, 2021, Sec. 4)."""
    return F.normalize(z.detach().float(), dim=1).std(dim=0).mean()
