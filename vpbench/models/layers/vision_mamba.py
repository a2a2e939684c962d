"""VMamba's 2D selective scan (Liu et al., *VMamba: Visual State Space Model*, 2024, Sec. 4, "SS2D") and the
block VMRNN builds on it (Tang et al., *VMRNN: Integrating Vision Mamba and LSTM for Efficient and Accurate
Spatiotemporal Forecasting*, CVPR-W 2024, Eq. 1-2).

SS2D of tokens x [B, H, W, C], with d = ``expand`` C inner channels, N = ``d_state`` states and R = ceil(C / 16)::

    u, z   = in_proj(x)                                  two d-channel halves (no bias)
    u      = SiLU(depthwise 3x3 conv(u))
    s_k    = u read in 4 orders k: row-major, column-major, and both reversed (the "cross-scan")
    Delta_k, B_k, C_k = x_proj_k(s_k)                    R + N + N channels per position; Delta_k through
                                                         dt_proj_k (R -> d, its bias the step bias)
    y_k    = selective_scan(s_k, Delta_k, -exp(A_log_k), B_k, C_k, D_k)   softplus steps
    y      = sum_k y_k back in row-major order           ("cross-merge")
    out    = out_proj(LayerNorm(y) * SiLU(z))

The scan is :func:`vpbench.models.layers.selective_scan.selective_scan`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench.models.layers.dropout import Dropout
from vpbench.models.layers.selective_scan import selective_scan
from vpbench.models.layers.vision_blocks import DropPath

DIRECTIONS = 4


def cross_scan(x: Tensor) -> Tensor:
    """x [B, d, H, W] -> [B, 4, d, H W]: row-major, column-major, and both reversed."""
    rows, cols = x.flatten(2), x.transpose(2, 3).flatten(2)
    forward = torch.stack([rows, cols], dim=1)
    return torch.cat([forward, forward.flip(-1)], dim=1)


def cross_merge(y: Tensor, height: int, width: int) -> Tensor:
    """y [B, 4, d, H W] in :func:`cross_scan`'s orders -> [B, d, H W] row-major, summed over the orders."""
    rows = y[:, 0] + y[:, 2].flip(-1)
    cols = y[:, 1] + y[:, 3].flip(-1)
    return rows + cols.unflatten(-1, (width, height)).transpose(2, 3).flatten(2)


class SS2D(nn.Module):
    """VMamba's SS2D (see the module docstring). x [B, H, W, C] -> [B, H, W, C]. Initialised as Mamba: step
    projections uniform in +-R^-1/2, their biases the inverse softplus of steps log-uniform in [1e-3, 0.1] (at least
    1e-4), A = -(1, ..., N) per channel, D = 1."""

    def __init__(self, dim: int, d_state: int = 16, expand: int = 2, conv_kernel: int = 3,
                 dropout: float = 0.0) -> None:
        super().__init__()
        inner, self.rank, self.d_state = expand * dim, math.ceil(dim / 16), d_state
        self.in_proj = nn.Linear(dim, 2 * inner, bias=False)
        self.conv = nn.Conv2d(inner, inner, conv_kernel, padding=(conv_kernel - 1) // 2, groups=inner)
        x_proj = torch.empty(DIRECTIONS, self.rank + 2 * d_state, inner)
        for weight in x_proj:
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # nn.Linear's
        self.x_proj = nn.Parameter(x_proj)
        self.dt_proj_weight = nn.Parameter(torch.empty(DIRECTIONS, inner, self.rank).uniform_(-1, 1) * self.rank**-0.5)
        steps = torch.exp(torch.rand(DIRECTIONS, inner) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        steps = steps.clamp(min=1e-4)
        self.dt_proj_bias = nn.Parameter(steps + torch.log(-torch.expm1(-steps)))  # softplus^-1
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(
            DIRECTIONS * inner, 1))
        self.skip = nn.Parameter(torch.ones(DIRECTIONS * inner))
        self.out_norm = nn.LayerNorm(inner)
        self.out_proj = nn.Linear(inner, dim, bias=False)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        b, h, w, _ = x.shape
        u, z = self.in_proj(x).chunk(2, dim=-1)
        u = F.silu(self.conv(u.permute(0, 3, 1, 2)))
        sequences = cross_scan(u)  # [B, 4, d, L]
        maps = torch.einsum("bkdl,kcd->bkcl", sequences, self.x_proj)
        steps, B, C = torch.split(maps, [self.rank, self.d_state, self.d_state], dim=2)
        steps = torch.einsum("bkrl,kdr->bkdl", steps, self.dt_proj_weight)
        y = selective_scan(sequences.flatten(1, 2), steps.flatten(1, 2), -torch.exp(self.A_log), B, C, self.skip,
                           delta_bias=self.dt_proj_bias.flatten(), delta_softplus=True)
        y = cross_merge(y.unflatten(1, (DIRECTIONS, -1)), h, w).transpose(1, 2).reshape(b, h, w, -1)
        return self.dropout(self.out_proj(self.out_norm(y) * F.silu(z)))


class VisionStateSpaceBlock(nn.Module):
    """VMRNN's VSB: x + DropPath(SS2D(LayerNorm(x))); with ``fuse``, SS2D reads Linear([LayerNorm(x),
    LayerNorm(h)]) (the same norm for both). x, h: tokens [B, H W, C] of a ``grid`` -> [B, H W, C]."""

    def __init__(self, dim: int, grid: tuple[int, int], d_state: int, drop_path: float, fuse: bool) -> None:
        super().__init__()
        self.grid = tuple(grid)
        self.norm = nn.LayerNorm(dim)
        self.fuse = nn.Linear(2 * dim, dim) if fuse else None
        self.mixer = SS2D(dim, d_state)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        y = self.norm(x)
        if self.fuse is not None:
            y = self.fuse(torch.cat([y, self.norm(h)], dim=-1))
        return x + self.drop_path(self.mixer(y.unflatten(1, self.grid)).flatten(1, 2))
