"""Swin Transformer blocks (Liu et al. 2021) for SwinLSTM, with the semantics of timm 0.6.11, which OpenSTL's
SwinLSTM imports (``timm.models.swin_transformer``): windowed multi-head self-attention with a learnt relative
position bias, shifted windows with timm's -100 attention mask, pre-norm residual blocks with stochastic depth,
patch embedding, merging (down) and expanding (up). vpbench defines them itself so that it needs no timm.

Tokens are [B, h*w, C] on a grid fixed at construction, as in timm. As timm, a block whose grid is no larger
than its window in one dimension uses one window of the grid's smaller side and no shift.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth: zero the whole of x[b] with probability p per sample and scale the rest by 1/(1-p)
    (timm's draw: one ``bernoulli_`` of shape [B, 1, ..., 1] in x's dtype; nothing drawn when p = 0)."""
    if p == 0 or not training:
        return x
    keep = 1 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask.div_(keep) if keep > 0 else x * mask


def window_partition(x: Tensor, window: int) -> Tensor:
    """[B, H, W, C] -> [B * H/win * W/win, win, win, C], windows in row-major order per sample."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c)


def window_reverse(windows: Tensor, window: int, h: int, w: int) -> Tensor:
    """Inverse of :func:`window_partition`: [B * H/win * W/win, win, win, C] -> [B, H, W, C]."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def relative_position_index(window: int) -> Tensor:
    """[win^2, win^2]: the row of the bias table for each (query, key) pair of a window, by their offset."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    offset = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return offset[..., 0] * (2 * window - 1) + offset[..., 1]


def shifted_window_mask(grid: Sequence[int], window: int, shift: int) -> Tensor:
    """[windows, win^2, win^2]: 0 between tokens that were neighbours before the cyclic shift, -100 between
    tokens that the roll brought together from opposite edges (timm's mask)."""
    region = torch.zeros(1, *grid, 1)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for i, (rows, cols) in enumerate((r, c) for r in cuts for c in cuts):
        region[:, rows, cols, :] = i
    labels = window_partition(region, window).view(-1, window * window)
    differ = labels[:, None, :] != labels[:, :, None]
    return torch.zeros(differ.shape).masked_fill(differ, -100.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learnt bias per head and relative offset
    (Swin Eq. 4: softmax(Q K^T / sqrt(d) + B) V). x: [B * windows, win^2, C]; mask [windows, win^2, win^2]."""

    def __init__(self, dim: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("index", relative_position_index(window).flatten(), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.relative_position_bias_table[self.index].view(n, n, -1).permute(2, 0, 1)
        attn = (q * self.scale) @ k.transpose(-2, -1) + bias
        if mask is not None:  # per window: [B * windows, heads, n, n] + [windows, n, n]
            windows = mask.shape[0]
            attn = (attn.view(b // windows, windows, self.heads, n, n) + mask[None, :, None]).view(b, -1, n, n)
        return self.proj((attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c))


class SwinBlock(nn.Module):
    """A Swin Transformer block ((shifted-)window attention and an MLP of ratio ``mlp_ratio``, each pre-norm and
    residual with stochastic depth), optionally fusing a second input first as SwinLSTM does: with ``fuse``,
    ``forward(x, y)`` attends over Linear([LN1(x), LN1(y)]) while the residual keeps x (y is then required).
    x, y: [B, h*w, C] on ``grid``."""

    def __init__(self, dim: int, grid: Sequence[int], heads: int, window: int, shift: int, *,
                 mlp_ratio: float = 4.0, drop_path: float = 0.0, fuse: bool = False) -> None:
        super().__init__()
        if min(grid) <= window:  # timm: one window of the grid's smaller side, no shift
            window, shift = min(grid), 0
        self.grid, self.window, self.shift, self.drop_path = tuple(grid), window, shift, drop_path
        self.norm1 = nn.LayerNorm(dim)
        self.fuse = nn.Linear(2 * dim, dim) if fuse else None  # OpenSTL's ``red``
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.register_buffer("mask", shifted_window_mask(grid, window, shift) if shift else None, persistent=False)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        b, n, c = x.shape
        h, w = self.grid
        shortcut, x = x, self.norm1(x)
        if self.fuse is not None:
            x = self.fuse(torch.cat([x, self.norm1(y)], dim=-1))
        x = x.view(b, h, w, c)
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = window_partition(x, self.window).view(-1, self.window**2, c)
        x = window_reverse(self.attn(windows, self.mask).view(-1, self.window, self.window, c), self.window, h, w)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        x = shortcut + drop_path(x.reshape(b, n, c), self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


class PatchEmbed(nn.Module):
    """Frames [B, C, H, W] -> tokens [B, H/p * W/p, D]: a p x p convolution of stride p, then LayerNorm."""

    def __init__(self, in_channels: int, dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch_size, patch_size)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class PatchMerging(nn.Module):
    """Down by 2: each 2x2 group of tokens concatenated (order (0,0), (1,0), (0,1), (1,1)) -> LayerNorm -> a
    bias-free Linear(4C, 2C). [B, h*w, C] on ``grid`` -> [B, h/2 * w/2, 2C]."""

    def __init__(self, grid: Sequence[int], dim: int) -> None:
        super().__init__()
        self.grid = tuple(grid)
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        b, _, c = x.shape
        x = x.view(b, *self.grid, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class PatchExpanding(nn.Module):
    """Up by 2: a bias-free Linear(C, 2C), each token's 2C channels spread over a 2x2 group (C/2 each), then
    LayerNorm(C/2). [B, h*w, C] on ``grid`` -> [B, 2h * 2w, C/2]."""

    def __init__(self, grid: Sequence[int], dim: int) -> None:
        super().__init__()
        self.grid = tuple(grid)
        self.expand = nn.Linear(dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(dim // 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.expand(x)
        b, _, c = x.shape
        h, w = self.grid
        x = x.view(b, h, w, 2, 2, c // 4).permute(0, 1, 3, 2, 4, 5).reshape(b, 4 * h * w, c // 4)
        return self.norm(x)


class PatchInflated(nn.Module):
    """Tokens [B, h*w, D] on ``grid`` -> maps [B, C, s h, s w]: a (s+1) x (s+1) transposed convolution of stride
    s = ``scale`` (OpenSTL's: 3 x 3, stride 2), padding 1 and output padding 1."""

    def __init__(self, dim: int, out_channels: int, grid: Sequence[int], scale: int = 2) -> None:
        super().__init__()
        self.grid = tuple(grid)
        self.conv = nn.ConvTranspose2d(dim, out_channels, scale + 1, scale, padding=1, output_padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x.view(x.shape[0], *self.grid, -1).permute(0, 3, 1, 2))

