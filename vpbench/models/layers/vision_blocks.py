"""Small pieces of vision backbones that OpenSTL's MetaFormer translators take from timm (0.6.x), written
here so that vpbench does not depend on timm: stochastic depth, MLPs, multi-head and window attention,
channel-first layer norms, and the weight initialisations the translators use.

Each piece computes what timm's does with the same operations (so that fvcore counts the same FLOPs),
and its parameters have timm's shapes.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench.models.layers.dropout import Dropout


class DropPath(nn.Module):
    """Stochastic depth (Huang et al., 2016) per sample, timm's ``DropPath``: in training, a residual branch
    x [B, ...] is zeroed for each sample with probability ``p`` and scaled by 1 / (1 - p) otherwise;
    the identity in evaluation or when p = 0."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0 or not self.training:
            return x
        keep = 1 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * (mask.div_(keep) if keep > 0 else mask)

    def extra_repr(self) -> str:
        return f"p={self.p:.4g}"


class Mlp(nn.Module):
    """Two linear layers with a GELU between, on tokens [..., C] -> [..., C] (timm's ``Mlp``);
    dropout ``drop`` after the activation and after the second layer."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class ConvMlp(nn.Module):
    """The same with 1x1 convolutions on [B, C, H, W] (timm's ``ConvMlp``, PoolFormer's and UniFormer's
    MLPs)."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(in_features, hidden_features, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_features, in_features, 1)
        self.drop = Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def relative_position_index(window: int) -> Tensor:
    """For each pair (query, key) of positions in a window x window patch, the row of its relative offset
    in a table of (2 window - 1)^2 offsets (Swin Transformer): [window^2, window^2] int64."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return relative[..., 0] * (2 * window - 1) + relative[..., 1]


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention over tokens [B, N, C] -> [B, N, C]: per head, softmax(q k^T / sqrt(d)) v,
    then an output projection (timm's ViT ``Attention``).

    With ``window`` (Swin Transformer's ``WindowAttention``), the tokens are those of one window x window
    window, the queries are scaled before the product, and a learned bias per head and relative offset
    is added to the logits (Liu et al., 2021, Eq. 4)."""

    def __init__(self, dim: int, heads: int, *, proj_drop: float = 0.0, window: int | None = None) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.window = window
        if window is not None:
            self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
            nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
            self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        if self.window is None:
            logits = (q @ k.transpose(-2, -1)) * self.scale
        else:
            bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
            logits = (q * self.scale) @ k.transpose(-2, -1) + bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        x = (logits.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(x))


class LayerNorm2d(nn.LayerNorm):
    """Layer norm over the channels of [B, C, H, W] (timm's ``LayerNorm2d``, eps 1e-6), computed by
    ``F.layer_norm`` on the channels-last view."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias,
                            self.eps).permute(0, 3, 1, 2)


class ChannelsFirstLayerNorm(nn.Module):
    """Layer norm over the channels of [B, C, H, W], with mean and variance written out as HorNet's code
    does (so that fvcore, which counts ``F.layer_norm`` but not elementwise operations, counts it as
    OpenSTL's: not at all)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


# -- initialisations (what the translators' ``_init_weights`` leave) ------------------------------------


def fan_out_normal_(module: nn.Module) -> None:
    """Conv weights ~ N(0, 2 / fan_out) with fan_out = k_h k_w C_out / groups, zero biases (the VAN /
    gSTA convolution initialisation)."""
    if isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels // module.groups
        nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def trunc_normal_linear_(module: nn.Module) -> None:
    """Linear weights ~ truncated N(0, 0.02^2) on [-2, 2] (timm's ``trunc_normal_``), zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def unit_norms_(module: nn.Module) -> None:
    """Norm layers (layer, group and batch norms) with weight 1 and bias 0."""
    if isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def initialise(module: nn.Module, *rules: Callable[[nn.Module], None]) -> nn.Module:
    """Apply each initialisation rule to every submodule of ``module``; returns ``module``."""
    for rule in rules:
        module.apply(rule)
    return module
