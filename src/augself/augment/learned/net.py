"""The invariance module's network: a small pre-activation ResNet with per-level output heads (InstaAug).

Reference: NingMiao/InstaAug ``InstaAug_module/architectures/mixmo_resnet_feature.py`` (``PreActResFeatureNet``,
used for Tiny-ImageNet and Mario-Iggy):

* widths ``[8, 8, 16, 32]`` (``:122-126``, :attr:`LearnedConfig.widths`), one :class:`PreActBlock` per stage
  (``:107-109``); stem conv 3x3 stride 2 without bias (``:202-206``); stage 1 stride 1, stages 2-3 stride 2
  (``:140-145``). Feature maps ``[x0, x1, x2, x3]`` = stem output and the three stage outputs (``:270-275``), read
  raw by the heads (no final BN-ReLU, as the reference).
* a block is BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3 plus a shortcut, a bias-free 1x1 conv of the pre-activated
  input when the shape changes, else the input itself (``:38-57``); BN momentum 0.1 (``BATCHNORM_MOMENTUM_PREACT``).
* local heads (a crop level of ``n x n`` cells): a bias-free 1x1 conv followed by a learned per-position bias map
  (``AddBias``, ``:26-32, :157-161``). The reference reads the feature map whose side *is* the level's cell count;
  here a level of ``n`` cells reads the deepest map whose side is ``>= n``, adaptive-average-pooled to ``n x n``
  (so any image size and any grid work; for the reference's 64-px input and levels 16 / 8 it is exactly the
  reference's layer 2 / 3 map, the pooling being the identity).
* the global head (a crop level with one cell, the angle and colour ranges) reads the last map as a whole: the
  reference's conv with kernel = map size plus ``AddBias`` (``:164-167``), i.e. a linear layer with bias on the
  flattened map.
* initialisation (``_init_weights_resnet``, ``:241-250``; ``mixmo_utils/torchutils.py:95-151``): convolutions
  (and the global head, a conv in the reference) He-normal, fan-in, truncated at 2 std with the std divided by
  0.8796; BN weight 1, bias 0; biases 0; the head weights then divided by 10 ("Stablize training").

The input is resized (bilinear, antialiased) to the net's fixed side and normalised to [-1, 1] (mean = std = 0.5,
the reference's Tiny-ImageNet / RawFooT normalisation, ``standard_augmentations.py:268-306``; its Mario-Iggy inputs
are unnormalised [0, 1], a deviation of an affine input rescaling that BN absorbs). BN follows the module's mode
(train: batch statistics, as the reference, which never calls ``eval()`` on it; eval: running statistics).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AddBias", "InvarianceNet", "PreActBlock", "feature_sides"]

BN_MOMENTUM = 0.1
"""``BATCHNORM_MOMENTUM_PREACT`` (``mixmo_resnet_feature.py:24``)."""

HEAD_INIT_SCALE = 0.1
"""Head weights divided by 10 at init (``mixmo_resnet_feature.py:249-250``)."""


def feature_sides(side: int) -> list[int]:
    """Sides of the maps ``[x0, x1, x2, x3]`` for a ``side`` x ``side`` input (stride 2, 1, 2, 2; padding 1)."""
    s0 = (side + 1) // 2
    s2 = (s0 + 1) // 2
    return [s0, s0, s2, (s2 + 1) // 2]


def _he_truncated_(w: Tensor) -> None:
    """He-normal (fan-in, ReLU gain) truncated to 2 std, std / 0.87962566 (``torchutils.py:95-127``)."""
    fan_in = w[0].numel()
    std = math.sqrt(2.0 / fan_in) / 0.87962566103423978
    with torch.no_grad():
        nn.init.trunc_normal_(w, 0.0, std, -2.0 * std, 2.0 * std)


class AddBias(nn.Module):
    """A learned bias of the output's shape, e.g. one per channel and position (``mixmo_resnet_feature.py:26-32``)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, *shape))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.bias


class PreActBlock(nn.Module):
    """Pre-activation basic block (``mixmo_resnet_feature.py:34-57``)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, momentum=BN_MOMENTUM)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = (
            nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False) if stride != 1 or inplanes != planes else None
        )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        short = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        return self.conv2(F.relu(self.bn2(out))) + short


class InvarianceNet(nn.Module):
    """Backbone + heads: ``forward(images)`` -> (the local heads' maps (B, 1, n, n) per level, global (B, G)).

    ``levels``: the cell counts ``n > 1`` of the local heads (one output channel each); ``global_dim``: outputs of
    the global linear head (crop levels with one cell, then the angle and colour parameters; 0: none).
    """

    def __init__(
        self,
        widths: tuple[int, ...],
        in_channels: int,
        side: int,
        levels: tuple[int, ...],
        global_dim: int,
    ) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"widths must have 4 entries (stem, stage 1-3), got {widths!r}")
        if side < 8:
            raise ValueError(f"the invariance net's input side must be >= 8 (three stride-2 stages), got {side}")
        self.side = int(side)
        w0, w1, w2, w3 = (int(w) for w in widths)
        self.conv1 = nn.Conv2d(in_channels, w0, 3, stride=2, padding=1, bias=False)
        self.layer1 = PreActBlock(w0, w1, 1)
        self.layer2 = PreActBlock(w1, w2, 2)
        self.layer3 = PreActBlock(w2, w3, 2)
        self.sides = feature_sides(self.side)
        self.channels = [w0, w1, w2, w3]
        self.levels = tuple(int(n) for n in levels)
        self.level_map: list[int] = []
        self.local_heads = nn.ModuleList()
        for n in self.levels:
            deep = [i for i in range(4) if self.sides[i] >= n]
            m = deep[-1] if deep else 0  # a grid finer than every map: the largest map, pooled up
            self.level_map.append(m)
            self.local_heads.append(nn.Sequential(nn.Conv2d(self.channels[m], 1, 1, bias=False), AddBias((1, n, n))))
        self.global_dim = int(global_dim)
        self.global_head = nn.Linear(w3 * self.sides[3] ** 2, global_dim) if global_dim > 0 else None
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                _he_truncated_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            for h in self.local_heads:
                h[0].weight.mul_(HEAD_INIT_SCALE)
            if self.global_head is not None:
                self.global_head.weight.mul_(HEAD_INIT_SCALE)

    def prepare(self, images: Tensor) -> Tensor:
        """uint8 (0..255) or float (0..1) (B, C, H, W) -> the net's input: resized to ``side``, in [-1, 1]."""
        dtype = self.conv1.weight.dtype
        x = images.to(dtype) / 255.0 if images.dtype == torch.uint8 else images.to(dtype)
        if tuple(x.shape[-2:]) != (self.side, self.side):
            x = F.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False, antialias=True)
        return (x - 0.5) / 0.5

    def forward(self, images: Tensor) -> tuple[list[Tensor], Tensor | None]:
        x0 = self.conv1(self.prepare(images))
        x1 = self.layer1(x0)
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        maps = [x0, x1, x2, x3]
        local = []
        for n, m, head in zip(self.levels, self.level_map, self.local_heads, strict=True):
            f = maps[m]
            if f.shape[-1] != n or f.shape[-2] != n:
                f = F.adaptive_avg_pool2d(f, n)
            local.append(head(f))
        glob = self.global_head(x3.flatten(1)) if self.global_head is not None else None
        return local, glob
