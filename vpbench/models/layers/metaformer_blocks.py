"""The MetaFormer blocks that OpenSTL's SimVP can use as its translator (``openstl/modules/simvp_modules.py``,
``openstl/modules/layers/``; Tan et al., "OpenSTL", NeurIPS 2023 Datasets and Benchmarks, the MetaVP table).

Most are one pre-norm residual pair (Yu et al., "MetaFormer is actually what you need", Eq. 1-2),
``x = x + DropPath(s1 * mixer(norm1(x)))`` then ``x = x + DropPath(s2 * mlp(norm2(x)))`` with optional
per-channel layer scales s1, s2: :class:`ChannelBlock` on feature maps [B, C, H, W], :class:`TokenBlock`
on their H*W tokens. What differs from one translator to the next is the token mixer, the MLP, the norms
and the layer-scale initial value; ConvNeXt and ConvMixer have shapes of their own.

:data:`BLOCKS` builds one translator block by name, with OpenSTL's settings for it (kernel sizes, 8 heads,
window sizes, initialisations) from a :class:`BlockSpec`. Shapes: [B, C, H, W] -> [B, C, H, W].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench.errors import UserError
from vpbench.models.layers.dropout import Dropout
from vpbench.models.layers.vision_blocks import (
    ChannelsFirstLayerNorm,
    ConvMlp,
    DropPath,
    LayerNorm2d,
    Mlp,
    MultiHeadAttention,
    fan_out_normal_,
    initialise,
    trunc_normal_linear_,
    unit_norms_,
)

HEADS = 8  # OpenSTL's ViT, Swin and UniFormer translator blocks all use 8 heads
Size = tuple[int, int]


@dataclass(frozen=True)
class BlockSpec:
    """What a translator block is built from: its width ``dim``, its place ``index`` in the translator,
    whether its input and output widths are equal (``same_width``: UniFormer's attention blocks), the
    feature grid (``resolution``: MLP-Mixer's token MLP and Swin's windows), the MLP's expansion
    ``mlp_ratio``, the dropout ``drop`` and the stochastic-depth rate ``drop_path``."""

    dim: int
    index: int
    same_width: bool
    resolution: Size
    mlp_ratio: float
    drop: float
    drop_path: float


def _needs_multiple(name: str, dim: int, multiple: int, why: str) -> None:
    if dim % multiple:
        raise UserError(f"translator {name}: its blocks are {dim} channels wide, not a multiple of {multiple} "
                        f"({why}); choose spatial_hidden x input_frames and temporal_hidden divisible by {multiple}")


# -- the two residual forms --------------------------------------------------------------------------------


class LayerScale(nn.Module):
    """A learned per-channel scale of a residual branch (Touvron et al., CaiT, Eq. 3): of feature maps
    [B, C, H, W], or of tokens [B, N, C] when ``tokens``."""

    def __init__(self, dim: int, init_value: float, tokens: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(init_value * torch.ones(dim))
        self.tokens = tokens

    def forward(self, x: Tensor) -> Tensor:
        return self.weight * x if self.tokens else self.weight.unsqueeze(-1).unsqueeze(-1) * x


def layer_scale(dim: int, init_value: float | None, tokens: bool = False) -> nn.Module:
    """A :class:`LayerScale` from ``init_value``, or the identity when None."""
    return LayerScale(dim, init_value, tokens) if init_value is not None else nn.Identity()


class ChannelBlock(nn.Module):
    """``x = x + DropPath(s1 * mixer(norm1(x)))``, ``x = x + DropPath(s2 * mlp(norm2(x)))`` on [B, C, H, W],
    after an optional residual positional convolution ``x = x + pos_embed(x)`` (UniFormer); s1, s2 are
    layer scales starting at ``init_scale`` (none when None)."""

    def __init__(self, dim: int, *, norm1: nn.Module, mixer: nn.Module, norm2: nn.Module, mlp: nn.Module,
                 init_scale: float | None, drop_path: float, pos_embed: nn.Module | None = None) -> None:
        super().__init__()
        self.pos_embed = pos_embed
        self.norm1, self.mixer, self.norm2, self.mlp = norm1, mixer, norm2, mlp
        self.layer_scale_1, self.layer_scale_2 = layer_scale(dim, init_scale), layer_scale(dim, init_scale)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        if self.pos_embed is not None:
            x = x + self.pos_embed(x)
        x = x + self.drop_path(self.layer_scale_1(self.mixer(self.norm1(x))))
        return x + self.drop_path(self.layer_scale_2(self.mlp(self.norm2(x))))


class TokenBlock(nn.Module):
    """The same residual pair on the H*W tokens [B, H*W, C] of [B, C, H, W] (transformer and MLP-Mixer
    blocks); the mixer is called as ``mixer(tokens, (H, W))``; layer scales are per channel."""

    def __init__(self, dim: int, *, norm1: nn.Module, mixer: nn.Module, norm2: nn.Module, mlp: nn.Module,
                 init_scale: float | None, drop_path: float, pos_embed: nn.Module | None = None) -> None:
        super().__init__()
        self.pos_embed = pos_embed
        self.norm1, self.mixer, self.norm2, self.mlp = norm1, mixer, norm2, mlp
        self.layer_scale_1 = layer_scale(dim, init_scale, tokens=True)
        self.layer_scale_2 = layer_scale(dim, init_scale, tokens=True)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        if self.pos_embed is not None:
            x = x + self.pos_embed(x)
        b, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        x = x + self.drop_path(self.layer_scale_1(self.mixer(self.norm1(x), (h, w))))
        x = x + self.drop_path(self.layer_scale_2(self.mlp(self.norm2(x))))
        return x.reshape(b, h, w, c).permute(0, 3, 1, 2)


# -- large-kernel attention: gSTA (SimVP v2), TAU, VAN ------------------------------------------------------


class LargeKernelConv(nn.Module):
    """A large depthwise kernel decomposed (Guo et al., VAN, Sec. 3.2): a (2d - 1)^2 depthwise conv, a
    depthwise conv of kernel // d (made odd) dilated by d, then a 1x1 conv to ``out_channels``
    (kernel 21, d 3: 5x5, 7x7 dilated by 3, 1x1). [B, C, H, W] -> [B, out_channels, H, W]."""

    def __init__(self, dim: int, out_channels: int, kernel_size: int = 21, dilation: int = 3) -> None:
        super().__init__()
        local = 2 * dilation - 1
        dilated = kernel_size // dilation + ((kernel_size // dilation) % 2 - 1)
        self.local = nn.Conv2d(dim, dim, local, padding=(local - 1) // 2, groups=dim)
        self.dilated = nn.Conv2d(dim, dim, dilated, padding=dilation * (dilated - 1) // 2, groups=dim,
                                 dilation=dilation)
        self.pointwise = nn.Conv2d(dim, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.dilated(self.local(x)))


class GatedSpatialAttention(nn.Module):
    """gSTA's attention (SimVP v2, Gao et al. 2022, Eq. 5): the large kernel gives 2C channels f, g and
    the output is sigmoid(g) * f. [B, C, H, W] -> [B, C, H, W]."""

    def __init__(self, dim: int, kernel_size: int = 21) -> None:
        super().__init__()
        self.kernel = LargeKernelConv(dim, 2 * dim, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        f, g = torch.split(self.kernel(x), x.shape[1], dim=1)
        return torch.sigmoid(g) * f


class LargeKernelAttention(nn.Module):
    """VAN's attention (Guo et al., Eq. 2): the large kernel's output multiplies the input."""

    def __init__(self, dim: int, kernel_size: int = 21) -> None:
        super().__init__()
        self.kernel = LargeKernelConv(dim, dim, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.kernel(x)


class TemporalAttention(nn.Module):
    """TAU's attention (Tan et al., CVPR 2023, Eq. 3-4): the statical attention (the large kernel) times
    the dynamical attention (squeeze-and-excitation over the channels, which hold time x features:
    average pool, FC to C / max(C // 16, 4), ReLU, FC back, sigmoid), times the input."""

    def __init__(self, dim: int, kernel_size: int = 21, reduction: int = 16) -> None:
        super().__init__()
        self.kernel = LargeKernelConv(dim, dim, kernel_size)
        squeezed = dim // max(dim // reduction, 4)
        self.excitation = nn.Sequential(nn.Linear(dim, squeezed, bias=False), nn.ReLU(inplace=True),
                                        nn.Linear(squeezed, dim, bias=False), nn.Sigmoid())
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        dynamical = self.excitation(self.pool(x).view(b, c)).view(b, c, 1, 1)
        return dynamical * self.kernel(x) * x


class AttentionUnit(nn.Module):
    """1x1 conv, GELU, an attention, 1x1 conv, plus the input (the "spatial attention" of VAN, gSTA and
    TAU). [B, C, H, W] -> [B, C, H, W]."""

    def __init__(self, dim: int, attention: nn.Module) -> None:
        super().__init__()
        self.proj_in = nn.Conv2d(dim, dim, 1)
        self.act = nn.GELU()
        self.attention = attention
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj_out(self.attention(self.act(self.proj_in(x)))) + x


class ConvFFN(nn.Module):
    """VAN's MLP (``MixMlp``): 1x1 conv, 3x3 depthwise conv, GELU, 1x1 conv. [B, C, H, W] -> same."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.dwconv(self.fc1(x))))))


def _attention_block(spec: BlockSpec, attention: nn.Module) -> ChannelBlock:
    """gSTA, TAU and VAN: BatchNorm, attention unit, BatchNorm, ConvFFN; layer scales from 1e-2."""
    dim = spec.dim
    return ChannelBlock(dim, norm1=nn.BatchNorm2d(dim), mixer=AttentionUnit(dim, attention), norm2=nn.BatchNorm2d(dim),
                        mlp=ConvFFN(dim, int(dim * spec.mlp_ratio), spec.drop), init_scale=1e-2,
                        drop_path=spec.drop_path)


def gsta_block(spec: BlockSpec) -> nn.Module:
    """SimVP v2's gated spatiotemporal attention block (OpenSTL's ``GASubBlock``, kernel 21)."""
    return initialise(_attention_block(spec, GatedSpatialAttention(spec.dim)), fan_out_normal_)


def tau_block(spec: BlockSpec) -> nn.Module:
    """TAU's block (``TAUSubBlock``). Its attention keeps PyTorch's default initialisation: OpenSTL replaces
    gSTA's attention with TAU's after initialising gSTA's."""
    if spec.dim < 4:
        raise UserError(f"translator tau: its blocks need at least 4 channels, got {spec.dim}")
    block = _attention_block(spec, TemporalAttention(spec.dim))
    initialise(block.mlp, fan_out_normal_)
    return block


def van_block(spec: BlockSpec) -> nn.Module:
    """VAN's block (``VANSubBlock``)."""
    return initialise(_attention_block(spec, LargeKernelAttention(spec.dim)), fan_out_normal_, unit_norms_)


# -- MogaNet ------------------------------------------------------------------------------------------------


class MultiOrderDWConv(nn.Module):
    """MogaNet's multi-order depthwise convs (Li et al., ICLR 2024, Sec. 4.1): a 5x5 depthwise conv on every
    channel; then, of its output split 1 : 3 : 4, the second part through a 5x5 conv dilated by 2 and the
    third through a 7x7 conv dilated by 3; concatenated and mixed by a 1x1 conv."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dims = (dim - int(3 / 8 * dim) - int(4 / 8 * dim), int(3 / 8 * dim), int(4 / 8 * dim))
        self.dw0 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.dw1 = nn.Conv2d(self.dims[1], self.dims[1], 5, padding=4, groups=self.dims[1], dilation=2)
        self.dw2 = nn.Conv2d(self.dims[2], self.dims[2], 7, padding=9, groups=self.dims[2], dilation=3)
        self.pointwise = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.dw0(x)
        d0, d1 = self.dims[:2]
        x = torch.cat([x[:, :d0], self.dw1(x[:, d0:d0 + d1]), self.dw2(x[:, x.shape[1] - self.dims[2]:])], dim=1)
        return self.pointwise(x)


class MultiOrderGatedAggregation(nn.Module):
    """MogaNet's spatial aggregation (Sec. 4.1, Eq. 3-5): a 1x1 conv, feature decomposition
    y + sigma (y - GAP(y)), SiLU; then SiLU(gate 1x1) * SiLU(multi-order value), a 1x1 conv, plus the input."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj_in = nn.Conv2d(dim, dim, 1)
        self.sigma = nn.Parameter(1e-5 * torch.ones((1, dim, 1, 1)))
        self.gate = nn.Conv2d(dim, dim, 1)
        self.value = MultiOrderDWConv(dim)
        self.proj_out = nn.Conv2d(dim, dim, 1)
        self.act = nn.SiLU()

    def forward(self, x: Tensor) -> Tensor:
        y = self.proj_in(x)
        y = self.act(y + self.sigma * (y - F.adaptive_avg_pool2d(y, output_size=1)))
        return self.proj_out(self.act(self.gate(y)) * self.act(self.value(y))) + x


class ChannelAggregationFFN(nn.Module):
    """MogaNet's MLP (Sec. 4.2, Eq. 6): 1x1 conv, 3x3 depthwise conv, GELU, channel aggregation
    y + sigma (y - GELU(1x1 conv of y to one channel)), 1x1 conv."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.decompose = nn.Conv2d(hidden, 1, 1)
        self.sigma = nn.Parameter(1e-5 * torch.ones((1, hidden, 1, 1)))
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        x = self.drop(self.act(self.dwconv(self.fc1(x))))
        x = x + self.sigma * (x - self.act(self.decompose(x)))
        return self.drop(self.fc2(x))


def moga_block(spec: BlockSpec) -> nn.Module:
    """MogaNet's block (``MogaSubBlock``): BatchNorm, aggregation, BatchNorm, FFN; layer scales from 1e-5."""
    _needs_multiple("moga", spec.dim, 8, "MogaNet splits the channels 1 : 3 : 4")
    block = ChannelBlock(spec.dim, norm1=nn.BatchNorm2d(spec.dim), mixer=MultiOrderGatedAggregation(spec.dim),
                         norm2=nn.BatchNorm2d(spec.dim),
                         mlp=ChannelAggregationFFN(spec.dim, int(spec.dim * spec.mlp_ratio), spec.drop),
                         init_scale=1e-5, drop_path=spec.drop_path)
    return initialise(block, fan_out_normal_, unit_norms_)


# -- PoolFormer, HorNet, ConvNeXt, ConvMixer ------------------------------------------------------------------


class Pooling(nn.Module):
    """PoolFormer's token mixer (Yu et al., Eq. 4): 3x3 average pooling (padding not counted) minus the input."""

    def __init__(self, pool_size: int = 3) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(x) - x


def _trunc_normal_conv_(module: nn.Module) -> None:
    """PoolFormer's MLP convs: truncated N(0, 0.02^2) weights, zero biases."""
    if isinstance(module, nn.Conv2d):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)


def poolformer_block(spec: BlockSpec) -> nn.Module:
    """PoolFormer's block (``PoolFormerSubBlock``): GroupNorm(1), pooling, GroupNorm(1), 1x1-conv MLP; layer
    scales from 1e-5."""
    block = ChannelBlock(spec.dim, norm1=nn.GroupNorm(1, spec.dim), mixer=Pooling(3), norm2=nn.GroupNorm(1, spec.dim),
                         mlp=ConvMlp(spec.dim, int(spec.dim * spec.mlp_ratio), spec.drop), init_scale=1e-5,
                         drop_path=spec.drop_path)
    return initialise(block, _trunc_normal_conv_, unit_norms_)


class RecursiveGatedConv(nn.Module):
    """HorNet's g^n conv (Rao et al., NeurIPS 2022, Eq. 3-4) of order 4: a 1x1 conv to 2C channels split into
    p_0 (C / 8) and q (15C / 8), a 7x7 depthwise conv of q split into q_0..q_3 (C/8, C/4, C/2, C), then
    p_{k+1} = conv1x1_k(p_k) * q_{k+1} from p_0 * q_0, and a 1x1 conv. [B, C, H, W] -> same."""

    def __init__(self, dim: int, order: int = 4) -> None:
        super().__init__()
        self.dims = [dim // 2**i for i in reversed(range(order))]
        self.proj_in = nn.Conv2d(dim, 2 * dim, 1)
        self.dwconv = nn.Conv2d(sum(self.dims), sum(self.dims), 7, padding=3, groups=sum(self.dims))
        self.proj_out = nn.Conv2d(dim, dim, 1)
        self.pws = nn.ModuleList(nn.Conv2d(self.dims[i], self.dims[i + 1], 1) for i in range(order - 1))

    def forward(self, x: Tensor) -> Tensor:
        p, q = torch.split(self.proj_in(x), (self.dims[0], sum(self.dims)), dim=1)
        gates = torch.split(self.dwconv(q), self.dims, dim=1)
        x = p * gates[0]
        for pw, gate in zip(self.pws, gates[1:]):
            x = pw(x) * gate
        return self.proj_out(x)


class ChannelsLast(nn.Module):
    """Applies a module of the last axis (a token MLP) to the channels of [B, C, H, W]."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def hornet_block(spec: BlockSpec) -> nn.Module:
    """HorNet's block (``HorNetSubBlock``, order 4): layer norm, g^n conv, layer norm, linear MLP on the
    channels; layer scales from 1e-6."""
    _needs_multiple("hornet", spec.dim, 8, "its order-4 recursive gated conv halves them three times")
    block = ChannelBlock(spec.dim, norm1=ChannelsFirstLayerNorm(spec.dim), mixer=RecursiveGatedConv(spec.dim),
                         norm2=LayerNorm2d(spec.dim), mlp=ChannelsLast(Mlp(spec.dim, int(spec.mlp_ratio * spec.dim))),
                         init_scale=1e-6, drop_path=spec.drop_path)
    return initialise(block, trunc_normal_linear_, fan_out_normal_, unit_norms_)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt's block (Liu et al., CVPR 2022, Fig. 4; timm's ``ConvNeXtBlock`` with a conv MLP):
    x + DropPath(s * MLP(LayerNorm(7x7 depthwise conv(x)))), s a layer scale from 1e-6. [B, C, H, W] -> same."""

    def __init__(self, dim: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.mlp = ConvMlp(dim, int(mlp_ratio * dim))
        self.layer_scale = LayerScale(dim, 1e-6)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop_path(self.layer_scale(self.mlp(self.norm(self.conv_dw(x)))))


def convnext_block(spec: BlockSpec) -> nn.Module:
    """``ConvNeXtSubBlock`` (OpenSTL passes no dropout to it)."""
    return initialise(ConvNeXtBlock(spec.dim, spec.mlp_ratio, spec.drop_path), fan_out_normal_, unit_norms_)


class ConvMixerBlock(nn.Module):
    """ConvMixer's block (Trockman and Kolter, 2022, Eq. 2-3): x + BN(GELU(11x11 depthwise conv(x))), then
    BN(GELU(1x1 conv)) with no residual. [B, C, H, W] -> same."""

    def __init__(self, dim: int, kernel_size: int = 11) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size, groups=dim, padding="same")
        self.act = nn.GELU()
        self.norm_1 = nn.BatchNorm2d(dim)
        self.conv_pw = nn.Conv2d(dim, dim, 1)
        self.norm_2 = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.norm_1(self.act(self.conv_dw(x)))
        return self.norm_2(self.act(self.conv_pw(x)))


def convmixer_block(spec: BlockSpec) -> nn.Module:
    """``ConvMixerSubBlock`` (kernel 11; OpenSTL passes it neither dropout nor stochastic depth)."""
    return initialise(ConvMixerBlock(spec.dim), fan_out_normal_, unit_norms_)


# -- UniFormer -------------------------------------------------------------------------------------------------


class GlobalAttention(MultiHeadAttention):
    """Multi-head self-attention over every token, called as a token mixer ``(tokens, size)``."""

    def forward(self, x: Tensor, size: Size | None = None) -> Tensor:
        return super().forward(x)


def _depthwise3x3(dim: int) -> nn.Conv2d:
    return nn.Conv2d(dim, dim, 3, padding=1, groups=dim)


def uniformer_block(spec: BlockSpec) -> nn.Module:
    """UniFormer's blocks (Li et al., ICLR 2022): a convolutional block (``CBlock``: 3x3 depthwise position
    conv; BatchNorm, 1x1, 5x5 depthwise, 1x1 as the token mixer; BatchNorm and a 1x1-conv MLP) where the
    width changes or at the first block, else a self-attention block (``SABlock``: position conv; layer
    norm, 8-head attention, layer norm, MLP; layer scales from 1e-6), as OpenSTL's ``MetaBlock`` chooses."""
    dim, hidden = spec.dim, int(spec.dim * spec.mlp_ratio)
    if spec.same_width and spec.index > 0:
        _needs_multiple("uniformer", dim, HEADS, f"its attention blocks have {HEADS} heads")
        block = TokenBlock(dim, pos_embed=_depthwise3x3(dim), norm1=nn.LayerNorm(dim),
                           mixer=GlobalAttention(dim, HEADS, proj_drop=spec.drop), norm2=nn.LayerNorm(dim),
                           mlp=Mlp(dim, hidden, drop=spec.drop), init_scale=1e-6, drop_path=spec.drop_path)
        return initialise(block, trunc_normal_linear_, unit_norms_)  # the position conv keeps its default init
    mixer = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, dim, 5, padding=2, groups=dim), nn.Conv2d(dim, dim, 1))
    block = ChannelBlock(dim, pos_embed=_depthwise3x3(dim), norm1=nn.BatchNorm2d(dim), mixer=mixer,
                         norm2=nn.BatchNorm2d(dim), mlp=ConvMlp(dim, hidden, spec.drop), init_scale=None,
                         drop_path=spec.drop_path)
    return initialise(block, fan_out_normal_, unit_norms_)


# -- ViT, Swin Transformer, MLP-Mixer ---------------------------------------------------------------------------


def _transformer_block(spec: BlockSpec, mixer: nn.Module, eps: float = 1e-5) -> nn.Module:
    """Layer norm, token mixer, layer norm, MLP; no layer scale; timm's initialisation."""
    block = TokenBlock(spec.dim, norm1=nn.LayerNorm(spec.dim, eps=eps), mixer=mixer,
                       norm2=nn.LayerNorm(spec.dim, eps=eps),
                       mlp=Mlp(spec.dim, int(spec.dim * spec.mlp_ratio), drop=spec.drop), init_scale=None,
                       drop_path=spec.drop_path)
    return initialise(block, trunc_normal_linear_, unit_norms_)


def vit_block(spec: BlockSpec) -> nn.Module:
    """ViT's block (``ViTSubBlock``, timm's ``Block``): 8-head attention over all H*W tokens."""
    _needs_multiple("vit", spec.dim, HEADS, f"it has {HEADS} attention heads")
    return _transformer_block(spec, GlobalAttention(spec.dim, HEADS, proj_drop=spec.drop))


def swin_window(resolution: Size, index: int) -> tuple[int, int]:
    """(window, shift) of OpenSTL's Swin block ``index`` on a ``resolution`` grid: window 7 if the height
    divides by 7, else max(4, height // 16), at most 8; shifted by half a window in odd blocks; one
    unshifted window over the grid when the grid is no larger (timm)."""
    window = min(8, 7 if resolution[0] % 7 == 0 else max(4, resolution[0] // 16))
    shift = 0 if index % 2 == 0 else window // 2
    if min(resolution) <= window:
        return min(resolution), 0
    return window, shift


class ShiftedWindowAttention(nn.Module):
    """Swin's (shifted) window attention (Liu et al., ICCV 2021, Sec. 3.2) as OpenSTL's ``SwinSubBlock``
    runs it: the grid rolled by -shift, attention within each window x window window (relative position
    biases), rolled back. OpenSTL passes no attention mask, so the shifted windows that wrap around the
    border attend across it, as here. A grid that does not divide into windows (which OpenSTL cannot run)
    is zero-padded at the bottom and right, and cropped back. Tokens [B, H*W, C] -> [B, H*W, C]."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, proj_drop: float = 0.0) -> None:
        super().__init__()
        self.window, self.shift = window, shift
        self.attention = MultiHeadAttention(dim, heads, proj_drop=proj_drop, window=window)

    def forward(self, x: Tensor, size: Size) -> Tensor:
        (h, w), b, c, win = size, x.shape[0], x.shape[2], self.window
        x = x.reshape(b, h, w, c)
        x = F.pad(x, (0, 0, 0, -w % win, 0, -h % win))
        hp, wp = x.shape[1:3]
        if self.shift:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = x.view(b, hp // win, win, wp // win, win, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, win * win, c)
        windows = self.attention(windows)
        x = windows.view(b, hp // win, wp // win, win, win, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
        if self.shift:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        return x[:, :h, :w].reshape(b, h * w, c)


def swin_block(spec: BlockSpec) -> nn.Module:
    """Swin Transformer's block (``SwinSubBlock``, timm's ``SwinTransformerBlock``; 8 heads)."""
    _needs_multiple("swin", spec.dim, HEADS, f"it has {HEADS} attention heads")
    window, shift = swin_window(spec.resolution, spec.index)
    return _transformer_block(spec, ShiftedWindowAttention(spec.dim, HEADS, window, shift, spec.drop))


class TokenMixingMlp(nn.Module):
    """MLP-Mixer's token mixing (Tolstikhin et al., NeurIPS 2021, Eq. 1): an MLP across the ``tokens`` tokens
    of each channel, hidden width ``hidden``. Tokens [B, N, C] -> [B, N, C]; the grid is the one it was built
    for."""

    def __init__(self, tokens: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.tokens = tokens
        self.mlp = Mlp(tokens, hidden, drop=drop)

    def forward(self, x: Tensor, size: Size) -> Tensor:
        if x.shape[1] != self.tokens:
            raise UserError(f"translator mlp: this MLP-Mixer was built for a grid of {self.tokens} features, got "
                            f"{size[0]}x{size[1]}; build it with the frames' img_size")
        return self.mlp(x.transpose(1, 2)).transpose(1, 2)


def mlp_block(spec: BlockSpec) -> nn.Module:
    """MLP-Mixer's block (``MLPMixerSubBlock``, timm's ``MixerBlock``): token MLP of width C / 2, channel MLP
    of width mlp_ratio C; layer norms with eps 1e-6."""
    tokens = spec.resolution[0] * spec.resolution[1]
    return _transformer_block(spec, TokenMixingMlp(tokens, int(0.5 * spec.dim), spec.drop), eps=1e-6)


# The translators' blocks by OpenSTL's model_type, lower-cased ("mlp" is MLP-Mixer, "moga" MogaNet).
BLOCKS: dict[str, Callable[[BlockSpec], nn.Module]] = {
    "gsta": gsta_block,
    "convmixer": convmixer_block,
    "convnext": convnext_block,
    "hornet": hornet_block,
    "mlp": mlp_block,
    "moga": moga_block,
    "poolformer": poolformer_block,
    "swin": swin_block,
    "uniformer": uniformer_block,
    "van": van_block,
    "vit": vit_block,
    "tau": tau_block,
}
