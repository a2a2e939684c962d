"""Haar wavelet transforms and WaST's blocks (Nie et al., *Wavelet-Driven Spatiotemporal Predictive Learning:
Bridging Frequency and Time Variations*, AAAI 2024; OpenSTL's ``openstl/modules/wast_modules.py``), written here
without pywt and timm.

* :func:`haar_transform`, :func:`inverse_haar_transform`: one level of the orthonormal Haar transform in 2 or 3
  dimensions, as strided convolutions with the 2^d outer products of lo = [1, 1] / sqrt(2) and
  hi = [1, -1] / sqrt(2), and its inverse as transposed ones (pywt's ``haar`` filter bank, zero padding to an even
  length; OpenSTL's ``WaveletTransform2D`` and ``3D``);
* :class:`FrequencyAttention`: coordinate attention (pooling along rows and along columns, a shared 1x1 conv,
  BatchNorm and hard swish, then one sigmoid gate per direction);
* :class:`InvertedResidual`: timm's MobileNet block without its skip (1x1 expansion, depthwise conv, squeeze and
  excitation, 1x1 projection; BatchNorm after each conv, ReLU after the first two), the temporal mixer;
* :class:`TimeFrequencyBlock`: WaST's time-frequency aware block, and :class:`TimeFrequencyStack` a stack of them
  over frames folded into channels.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench.models.layers.vision_blocks import DropPath

HAAR = (1 / math.sqrt(2), 1 / math.sqrt(2)), (1 / math.sqrt(2), -1 / math.sqrt(2))  # lo, hi (pywt's, dec. flipped)


@functools.lru_cache(maxsize=None)
def haar_filters(dims: int) -> Tensor:
    """The 2^dims Haar filters [2^dims, 1, 2, ..., 2] in float64, ordered as binary numbers over the axes (first
    axis most significant; 0 = lo, 1 = hi): for 3 dims (t, h, w) LLL, LLH, LHL, LHH, HLL, HLH, HHL, HHH."""
    lo, hi = (torch.tensor(f, dtype=torch.float64) for f in HAAR)
    filters = []
    for band in range(2**dims):
        f = torch.ones((), dtype=torch.float64)
        for axis in range(dims):
            f = torch.tensordot(f, hi if band >> (dims - 1 - axis) & 1 else lo, dims=0)
        filters.append(f)
    return torch.stack(filters).unsqueeze(1)


def _grouped_filters(like: Tensor, dims: int, channels: int) -> Tensor:
    """The filters repeated for ``channels`` groups, in ``like``'s dtype and device: [2^dims C, 1, 2, ...]."""
    return haar_filters(dims).to(like).repeat(channels, *(1,) * (dims + 1))


def haar_transform(x: Tensor, dims: int) -> list[Tensor]:
    """One level of the Haar transform over the last ``dims`` (2 or 3) axes of [B, C, *space], each padded with a
    zero at its end where odd: the 2^dims bands, each [B, C, *space / 2], in :func:`haar_filters`' order."""
    x = F.pad(x, [p for size in reversed(x.shape[-dims:]) for p in (0, size % 2)])
    channels = x.shape[1]
    conv = F.conv3d if dims == 3 else F.conv2d
    bands = conv(x, _grouped_filters(x, dims, channels), stride=2, groups=channels)  # [B, C 2^d, ...] by channel
    return list(bands.unflatten(1, (channels, 2**dims)).unbind(2))


def inverse_haar_transform(bands: Sequence[Tensor], dims: int) -> Tensor:
    """[B, C, *2 space] rebuilt from the 2^dims bands of :func:`haar_transform`."""
    channels = bands[0].shape[1]
    x = torch.stack(list(bands), dim=2).flatten(1, 2)
    conv = F.conv_transpose3d if dims == 3 else F.conv_transpose2d
    return conv(x, _grouped_filters(x, dims, channels), stride=2, groups=channels)


class FrequencyAttention(nn.Module):
    """Coordinate attention on [B, C, H, W]: the means over columns [B, C, H] and over rows [B, C, W] through a
    shared 1x1 conv (C -> max(8, C / reduction)), BatchNorm and hard swish, then a 1x1 conv and a sigmoid each:
    x * a_w * a_h."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(8, channels // reduction)
        self.squeeze = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.BatchNorm2d(hidden), nn.Hardswish())
        self.gate_h = nn.Conv2d(hidden, channels, 1)
        self.gate_w = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        pooled = torch.cat([F.adaptive_avg_pool2d(x, (h, 1)), F.adaptive_avg_pool2d(x, (1, w)).transpose(2, 3)], dim=2)
        along_h, along_w = self.squeeze(pooled).split([h, w], dim=2)
        return x * torch.sigmoid(self.gate_w(along_w.transpose(2, 3))) * torch.sigmoid(self.gate_h(along_h))


def make_divisible(value: float, divisor: int = 8) -> int:
    """timm's rounding of a channel count to a multiple of ``divisor``, never more than 10% down."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class SqueezeExcite(nn.Module):
    """x [B, C, H, W] times sigmoid(conv(ReLU(conv(mean over H, W)))), C -> round(C / 4) -> C (timm's
    EfficientNet ``SqueezeExcite``)."""

    def __init__(self, channels: int, ratio: float = 0.25) -> None:
        super().__init__()
        reduced = round(channels * ratio)
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.expand(F.relu(self.reduce(x.mean(dim=(2, 3), keepdim=True)))))


class InvertedResidual(nn.Module):
    """timm's ``InvertedResidual`` with ``noskip``: 1x1 conv to mid = make_divisible(C x ``expansion``) channels,
    BatchNorm, ReLU, a depthwise ``kernel_size`` conv, BatchNorm, ReLU, :class:`SqueezeExcite`, a 1x1 conv back to C,
    BatchNorm (convolutions without bias). [B, C, H, W] -> [B, C, H, W]."""

    def __init__(self, channels: int, expansion: float, kernel_size: int = 7) -> None:
        super().__init__()
        mid = make_divisible(channels * expansion)
        self.expand = nn.Sequential(nn.Conv2d(channels, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU())
        self.depthwise = nn.Sequential(nn.Conv2d(mid, mid, kernel_size, padding=kernel_size // 2, groups=mid,
                                                 bias=False), nn.BatchNorm2d(mid), nn.ReLU())
        self.excite = SqueezeExcite(mid)
        self.project = nn.Sequential(nn.Conv2d(mid, channels, 1, bias=False), nn.BatchNorm2d(channels))

    def forward(self, x: Tensor) -> Tensor:
        return self.project(self.excite(self.depthwise(self.expand(x))))


def depthwise_bn(channels: int, kernel_size: tuple[int, int]) -> nn.Sequential:
    """A depthwise conv (with bias, "same" padding) and BatchNorm on [B, C, H, W]."""
    return nn.Sequential(nn.Conv2d(channels, channels, kernel_size, padding="same", groups=channels),
                         nn.BatchNorm2d(channels))


class TimeFrequencyBlock(nn.Module):
    """WaST's time-frequency aware block on [B, C, H, W] (C: channels x frames)::

        a = BN(x)
        x = x + DropPath(s * (FA_low(DW_{K x 5}(a) + DW_{5 x K}(a)) + FA_high(DW_{k x k}(a))))
        x = x + DropPath(s * InvertedResidual(BN(x)))

    with the large kernels K (strips) and the small k, :class:`FrequencyAttention` FA and one layer scale s
    (1e-2 at first) for both branches, as OpenSTL's forward uses ``layer_scale_1`` twice (its ``layer_scale_2``
    is never read)."""

    def __init__(self, channels: int, mlp_ratio: float, drop_path: float, large_kernel: int,
                 small_kernel: int = 5) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(channels)
        self.norm2 = nn.BatchNorm2d(channels)
        self.strip_h = depthwise_bn(channels, (large_kernel, 5))
        self.strip_w = depthwise_bn(channels, (5, large_kernel))
        self.local = depthwise_bn(channels, (small_kernel, small_kernel))
        self.low_attention = FrequencyAttention(channels)
        self.high_attention = FrequencyAttention(channels)
        self.temporal_mixer = InvertedResidual(channels, mlp_ratio)
        self.layer_scale = nn.Parameter(torch.full((channels, 1, 1), 1e-2))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        a = self.norm1(x)
        mixed = self.low_attention(self.strip_h(a) + self.strip_w(a)) + self.high_attention(self.local(a))
        x = x + self.drop_path(self.layer_scale * mixed)
        return x + self.drop_path(self.layer_scale * self.temporal_mixer(self.norm2(x)))


class TimeFrequencyStack(nn.Module):
    """:class:`TimeFrequencyBlock` s over [B, C, T, H, W] folded to [B, C T, H, W] (channel c, frame t at c T + t);
    with ``skip_channels``, a 3x3 conv first fuses the folded input with a skip [B, skip_channels, H, W]."""

    def __init__(self, channels: int, drop_paths: Sequence[float], mlp_ratio: float, large_kernel: int,
                 skip: bool = False) -> None:
        super().__init__()
        self.fuse = nn.Conv2d(2 * channels, channels, 3, padding=1) if skip else None
        self.blocks = nn.Sequential(*(TimeFrequencyBlock(channels, mlp_ratio, p, large_kernel) for p in drop_paths))

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        frames = x.shape[2]
        x = x.flatten(1, 2)
        if self.fuse is not None:
            x = self.fuse(torch.cat([x, skip], dim=1))
        return self.blocks(x).unflatten(1, (-1, frames))

    def set_drop_paths(self, rates: Sequence[float]) -> None:
        for block, rate in zip(self.blocks, rates):
            block.drop_path.p = rate


def conv3d_bn_gelu(in_channels: int, out_channels: int, groups: int = 1) -> nn.Sequential:
    """3x3x3 conv (with bias, size kept), BatchNorm3d and GELU on [B, C, T, H, W]."""
    return nn.Sequential(nn.Conv3d(in_channels, out_channels, 3, padding=1, groups=groups),
                         nn.BatchNorm3d(out_channels), nn.GELU())


class WaveletEmbedding(nn.Module):
    """WaST's down-sampling by a 3D Haar transform, [B, C, T, H, W] -> [B, C_out, T, H / 2, W / 2]:

    * features: conv-BN-GELU, the transform, the two bands low in time and height (LLL, LLH: T / 2 frames each)
      stacked along time and through conv-BN-GELU to C_out; the six others [B, 6 C, T / 2, H / 2, W / 2] are kept
      for :class:`WaveletReconstruction`;
    * plus the input frames' transform [B, C_frames, T, H, W]: the four bands low in width along channels, stacked
      along time with the four high in width, through a 3x3x3 conv to C_out.

    (Band names read t, h, w, as OpenSTL's: ``LLH`` is high in width only.)"""

    def __init__(self, channels: int, out_channels: int, frame_channels: int) -> None:
        super().__init__()
        self.pre = conv3d_bn_gelu(channels, channels)
        self.down = conv3d_bn_gelu(channels, out_channels)
        self.frames = nn.Conv3d(4 * frame_channels, out_channels, 3, padding=1)

    def forward(self, x: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
        bands = haar_transform(frames, 3)
        embedded = self.frames(torch.cat([torch.cat(bands[0::2], dim=1), torch.cat(bands[1::2], dim=1)], dim=2))
        bands = haar_transform(self.pre(x), 3)
        return self.down(torch.cat(bands[:2], dim=2)) + embedded, torch.cat(bands[2:], dim=1)


class WaveletReconstruction(nn.Module):
    """WaST's up-sampling by the inverse 3D Haar transform: x [B, C, T, h, w] through conv-BN-GELU to C_out, split
    along time into the two low bands, and the six high bands [B, 6 C_high, T / 2, h, w] through a grouped (one
    group per band) conv-BN-GELU: [B, C_out, T, 2 h, 2 w]."""

    def __init__(self, channels: int, out_channels: int, high_channels: int) -> None:
        super().__init__()
        self.low = conv3d_bn_gelu(channels, out_channels)
        self.high = conv3d_bn_gelu(6 * high_channels, 6 * out_channels, groups=6)

    def forward(self, x: Tensor, high: Tensor) -> Tensor:
        return inverse_haar_transform([*self.low(x).chunk(2, dim=2), *self.high(high).chunk(6, dim=1)], 3)
