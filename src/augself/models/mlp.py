"""MLP builder with AugSelf's ``load_mlp`` semantics (Lee et al., NeurIPS 2021, ``models.py``).

``mlp(d, h, k, num_layers=3)`` is

    Linear(d, h, bias=False) -> BN(h) -> ReLU -> Linear(h, h, bias=False) -> BN(h) -> ReLU -> Linear(h, k)

Hidden linears drop the bias because a normalisation layer follows (its shift makes the bias redundant).
``norm="ln"`` gives the LayerNorm heads of E-SSL (Dangovski et al., ICLR 2022); ``last_norm=True`` appends a
norm after the last linear (SimSiam projector, Chen & He, 2021).
"""

from __future__ import annotations

from typing import Literal

from torch import nn

Norm = Literal["bn", "ln"] | None


def _norm(kind: Norm, dim: int, affine: bool = True) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm1d(dim, affine=affine)
    if kind == "ln":
        return nn.LayerNorm(dim, elementwise_affine=affine)
    raise ValueError(f"unknown norm {kind!r}; valid: 'bn', 'ln', None")


def mlp(
    in_dim: int,
    hidden_dim: int,
    out_dim: int,
    num_layers: int = 3,
    norm: Norm = "bn",
    last_norm: bool = False,
    last_norm_affine: bool = True,
    hidden_bias: bool = False,
    last_bias: bool = True,
    relu_last: bool = False,
) -> nn.Sequential:
    """Build ``num_layers`` linear layers with ``norm`` + ReLU between them.

    Args:
        in_dim, hidden_dim, out_dim: feature sizes (``hidden_dim`` is unused when ``num_layers == 1``).
        num_layers: number of ``nn.Linear`` layers (>= 1).
        norm: ``"bn"`` (BatchNorm1d), ``"ln"`` (LayerNorm) or ``None`` after every hidden linear.
        last_norm: append ``norm`` (or BN if ``norm`` is None) after the last linear.
        last_norm_affine: whether that last norm has learnable affine parameters.
        hidden_bias: bias in hidden linears (default off, as in ``load_mlp``; forced on if ``norm`` is None).
        last_bias: bias in the last linear.
        relu_last: append a ReLU at the very end.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    if norm not in ("bn", "ln", None):
        raise ValueError(f"unknown norm {norm!r}; valid: 'bn', 'ln', None")
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers - 1):
        layers.append(nn.Linear(dim, hidden_dim, bias=hidden_bias or norm is None))
        if norm is not None:
            layers.append(_norm(norm, hidden_dim))
        layers.append(nn.ReLU(inplace=True))
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim, bias=last_bias))
    if last_norm:
        layers.append(_norm(norm or "bn", out_dim, affine=last_norm_affine))
    if relu_last:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)
