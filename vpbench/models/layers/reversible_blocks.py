"""Invertible 3D building blocks of CrevNet (Yu et al., *Efficient and Information-Preserving Future Frame
Prediction and Beyond*, ICLR 2020), after i-RevNet (Jacobsen et al., ICLR 2018), as OpenSTL v0.3.0 writes them
(``openstl/modules/crevnet_modules.py``): space-to-depth, reversible blocks and the bijective autoencoder.

Tensors are [B, C, T, H, W] (T: the frames of a short window, kept by every block).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

Pair = tuple[Tensor, Tensor]


def space_to_depth(x: Tensor, block: int) -> Tensor:
    """[B, C, T, H, W] -> [B, C block^2, T, H / block, W / block]; output channel (i block + j) C + c holds channel c
    at row offset i and column offset j of each block (OpenSTL's ``psi.forward``)."""
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t, h // block, block, w // block, block)
    return x.permute(0, 4, 6, 1, 2, 3, 5).reshape(b, block * block * c, t, h // block, w // block)


def depth_to_space(x: Tensor, block: int) -> Tensor:
    """The inverse of :func:`space_to_depth` (OpenSTL's ``psi.inverse``)."""
    b, d, t, h, w = x.shape
    x = x.reshape(b, block, block, d // block**2, t, h, w)
    return x.permute(0, 3, 4, 5, 1, 6, 2).reshape(b, d // block**2, t, h * block, w * block)


class ReversibleBlock(nn.Module):
    """i-RevNet's block on a pair (x1, x2) of [B, C_in / 2, T, H, W]::

        forward:  (x1, x2) -> (S(x2), S(x1) + F(x2))     inverse: (x2', y) -> (S^-1(y - F(S^-1(x2'))), S^-1(x2'))

    with S the space-to-depth by 2 for a strided block (the identity otherwise) and F the bottleneck: [BN, ReLU]
    (not in the first block), 3x3x3 conv to ``out_channels / mult`` (stride (1, 2, 2) for a strided block), BN,
    ReLU, 3x3x3 conv, BN, ReLU, 3x3x3 conv to ``out_channels``; convolutions without bias."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, first: bool, mult: int = 2) -> None:
        super().__init__()
        self.stride = stride
        half, mid = in_channels // 2, max(1, out_channels // mult)
        layers: list[nn.Module] = [] if first else [nn.BatchNorm3d(half), nn.ReLU()]
        layers += [nn.Conv3d(half, mid, 3, stride=(1, stride, stride), padding=1, bias=False), nn.BatchNorm3d(mid),
                   nn.ReLU(), nn.Conv3d(mid, mid, 3, padding=1, bias=False), nn.BatchNorm3d(mid), nn.ReLU(),
                   nn.Conv3d(mid, out_channels, 3, padding=1, bias=False)]
        self.bottleneck = nn.Sequential(*layers)

    def _shuffle(self, x: Tensor) -> Tensor:
        return space_to_depth(x, 2) if self.stride == 2 else x

    def _unshuffle(self, x: Tensor) -> Tensor:
        return depth_to_space(x, 2) if self.stride == 2 else x

    def forward(self, x: Pair) -> Pair:
        x1, x2 = x
        return self._shuffle(x2), self.bottleneck(x2) + self._shuffle(x1)

    def inverse(self, y: Pair) -> Pair:
        x2 = self._unshuffle(y[0])
        return self._unshuffle(y[1] - self.bottleneck(x2)), x2


class ReversibleAutoencoder(nn.Module):
    """CrevNet's bijective encoder: space-to-depth by 2 (OpenSTL's ``init_ds``), the 4 C channels split into a
    pair, then reversible blocks: ``blocks[s]`` per stage s, the first of stage s strided by ``strides[s]``, of
    2 C x 4^s output channels per half.
    ``encode`` [B, C, T, H, W] -> a pair [B, C', T, H / 8, W / 8] (OpenSTL's 4, 5, 3 blocks, strides 1, 2, 2);
    ``decode`` inverts it exactly (in evaluation mode: training-mode BatchNorms see other statistics)."""

    def __init__(self, in_channels: int, blocks: Sequence[int] = (4, 5, 3), strides: Sequence[int] = (1, 2, 2),
                 mult: int = 2) -> None:
        super().__init__()
        channels = 4 * in_channels
        widths = [channels // 2 * 4**s for s in range(len(blocks))]
        layers, width_in = [], channels
        for stage, (depth, stride) in enumerate(zip(blocks, strides)):
            for k in range(depth):
                layers.append(ReversibleBlock(width_in, widths[stage], stride if k == 0 else 1, first=not layers,
                                              mult=mult))
                width_in = 2 * widths[stage]
        self.blocks = nn.ModuleList(layers)
        self.half = channels // 2

    def encode(self, x: Tensor) -> Pair:
        x = space_to_depth(x, 2)
        pair = (x[:, :self.half], x[:, self.half:])
        for block in self.blocks:
            pair = block(pair)
        return pair

    def decode(self, pair: Pair) -> Tensor:
        for block in reversed(self.blocks):
            pair = block.inverse(pair)
        return depth_to_space(torch.cat(pair, dim=1), 2)
