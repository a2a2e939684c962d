"""OpenSTL's SimVP frame (``openstl/models/simvp_model.py``, SimVP v2: Tan et al., "SimVP: Towards Simple yet
Powerful Spatiotemporal Predictive Learning", 2022): a per-frame CNN encoder, a translator over the frames'
features stacked as channels, a CNN decoder; T frames in, the next T out, at once. The translator is any of
OpenSTL's: gSTA, TAU's temporal attention, the MetaFormer blocks of the MetaVP study
(:mod:`vpbench.models.layers.metaformer_blocks`) or SimVP v1's Inception U-Net (``incepu``)."""
from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from vpbench.errors import UserError
from vpbench.models.layers.metaformer_blocks import BLOCKS, BlockSpec
from vpbench.models.layers.multiframe import chunked_rollout
from vpbench.models.layers.simvp_blocks import Translator as InceptionUNet
from vpbench.models.layers.simvp_blocks import encode_translate_decode

TRANSLATORS = ("incepu", *BLOCKS)


class ConvSC(nn.Module):
    """OpenSTL's ``ConvSC``: a k x k conv (stride 2 when ``downsample``; to 4 C_out channels and a
    PixelShuffle(2) when ``upsample``), a norm (``norm(C_out)``; GroupNorm(2) unless given), SiLU. Conv weights
    start truncated N(0, 0.02^2), biases 0. [N, C_in, H, W] -> [N, C_out, H', W'], H' = H / 2, 2 H or H."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, downsample: bool = False,
                 upsample: bool = False, norm: Callable[[int], nn.Module] | None = None) -> None:
        super().__init__()
        stride = 2 if downsample else 1
        padding = (kernel_size - stride + 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels * (4 if upsample else 1), kernel_size, stride, padding)
        self.shuffle = nn.PixelShuffle(2) if upsample else nn.Identity()
        self.norm = norm(out_channels) if norm else nn.GroupNorm(2, out_channels)
        self.act = nn.SiLU()
        nn.init.trunc_normal_(self.conv.weight, std=0.02)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.shuffle(self.conv(x))))


def drop_path_rates(layers: int, drop_path: float, start: float) -> list[float]:
    """Stochastic-depth rates of the translator's blocks as OpenSTL sets them (``MidMetaNet``): the first
    layers - 1 evenly spaced from ``start`` (OpenSTL's 0.01) to ``drop_path``, the last ``drop_path``.
    At OpenSTL's drop_path 0 the first blocks still drop their branches (0.01 down to 0.01 / (layers - 1));
    ``start`` = 0 with drop_path 0 turns stochastic depth off."""
    spaced = [start + (drop_path - start) * i / (layers - 1) for i in range(layers)]
    return [*spaced[:-1], drop_path]


class MetaBlock(nn.Module):
    """One translator block at the width of its input, then a 1x1 conv to ``out_channels`` where that differs
    (OpenSTL's ``MetaBlock``). [B, C_in, h, w] -> [B, C_out, h, w]."""

    def __init__(self, kind: str, in_channels: int, out_channels: int, index: int, resolution: tuple[int, int],
                 mlp_ratio: float, drop: float, drop_path: float) -> None:
        super().__init__()
        spec = BlockSpec(in_channels, index, in_channels == out_channels, resolution, mlp_ratio, drop, drop_path)
        self.block = BLOCKS[kind](spec)
        self.reduction = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.reduction(self.block(x))


class MetaTranslator(nn.Module):
    """OpenSTL's ``MidMetaNet``: ``layers`` blocks over the stacked frame features [B, T hid_S, h, w]; the first
    works at T hid_S channels and maps to ``hidden`` (hid_T), the middle ones at hid_T, the last maps back."""

    def __init__(self, kind: str, channels: int, hidden: int, layers: int, resolution: tuple[int, int],
                 mlp_ratio: float, drop: float, drop_path: float, drop_path_start: float) -> None:
        super().__init__()
        if layers < 2 or mlp_ratio <= 1:
            raise UserError(f"SimVP's {kind} translator needs temporal_layers >= 2 and mlp_ratio > 1, got {layers} "
                            f"and {mlp_ratio}")
        rates = drop_path_rates(layers, drop_path, drop_path_start)
        widths = [channels, *[hidden] * (layers - 1), channels]
        self.blocks = nn.Sequential(*(
            MetaBlock(kind, widths[i], widths[i + 1], i, resolution, mlp_ratio, drop, rates[i]) for i in range(layers)))

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)


class SimVPv2(nn.Module):
    """SimVP v2 in OpenSTL's form (``SimVP_Model``), with any of its translators.

    * Encoder: ``spatial_layers`` (N_S, even) ConvSC blocks of ``spatial_hidden`` (hid_S) channels, kernel
      ``encoder_kernel``, down-sampling by 2 in every second block (64x64 -> 16x16 at N_S = 4); per frame.
    * Translator over the T frames' features stacked as T hid_S channels: ``translator`` blocks of
      ``temporal_hidden`` (hid_T) channels, ``temporal_layers`` (N_T) of them (:class:`MetaTranslator`), or
      for ``incepu`` SimVP v1's Inception U-Net of N_T down and N_T up blocks (``kernels``, ``groups``).
    * Decoder: the mirrored ConvSC blocks (up-sampling by PixelShuffle), the last one reading the sum of the
      translated features and the first encoder block's output, then a 1x1 conv to C channels.

    ``mlp_ratio``, ``drop`` and ``drop_path`` are the MetaFormer blocks' MLP expansion, dropout and
    stochastic depth (see :func:`drop_path_rates` for OpenSTL's schedule and ``drop_path_start``). The
    MLP-Mixer and Swin blocks are built for the feature grid of ``img_size`` frames. OpenSTL's output has
    no activation; here it is clamped to [0, 1] with a straight-through gradient (unless ``raw``). Frames whose sides do not
    divide by 2^(N_S / 2) are replicate-padded and the prediction cropped; horizons other than T are rolled
    out in chunks of T. Shapes: [B, T_in, C, H, W] -> [B, horizon, C, H, W].
    """

    def __init__(self, *, translator: str = "gsta", in_channels: int = 1, input_frames: int = 10,
                 img_size: Sequence[int] = (64, 64), spatial_hidden: int = 64, temporal_hidden: int = 512,
                 spatial_layers: int = 4, temporal_layers: int = 8, encoder_kernel: int = 3, decoder_kernel: int = 3,
                 mlp_ratio: float = 8.0, drop: float = 0.0, drop_path: float = 0.0, drop_path_start: float = 0.01,
                 kernels: Sequence[int] = (3, 5, 7, 11), groups: int = 8) -> None:
        super().__init__()
        if translator not in TRANSLATORS:
            raise UserError(f"invalid value model.translator={translator!r}: must be one of {', '.join(TRANSLATORS)}")
        if spatial_layers < 2 or spatial_layers % 2 or spatial_hidden < 2 or spatial_hidden % 2:
            raise UserError(f"SimVP needs an even spatial_layers >= 2 (its blocks go in pairs) and an even "
                            f"spatial_hidden (GroupNorm of 2 groups), got {spatial_layers} and {spatial_hidden}")
        if input_frames < 1:
            raise UserError(f"input_frames must be positive, got {input_frames}")
        self.input_frames = input_frames
        self.size_multiple = 2 ** (spatial_layers // 2)
        resolution = (math.ceil(img_size[0] / self.size_multiple), math.ceil(img_size[1] / self.size_multiple))
        self.encoder = nn.ModuleList(
            ConvSC(in_channels if i == 0 else spatial_hidden, spatial_hidden, encoder_kernel, downsample=i % 2 == 1)
            for i in range(spatial_layers))
        channels = input_frames * spatial_hidden
        if translator == "incepu":
            self.translator: nn.Module = InceptionUNet(channels, temporal_hidden, temporal_layers, kernels, groups)
        else:
            self.translator = MetaTranslator(translator, channels, temporal_hidden, temporal_layers, resolution,
                                             mlp_ratio, drop, drop_path, drop_path_start)
        self.decoder = nn.ModuleList(
            ConvSC(spatial_hidden, spatial_hidden, decoder_kernel, upsample=i % 2 == 0) for i in range(spatial_layers))
        self.readout = nn.Conv2d(spatial_hidden, in_channels, 1)

    def block(self, frames: Tensor, raw: bool = False) -> Tensor:
        """The next T frames: [B, T, C, H, W] -> [B, T, C, H, W] in [0, 1] (unbounded when ``raw``); the skip is
        added, not concatenated."""
        return encode_translate_decode(self, frames, torch.add, raw)

    def forward(self, frames: Tensor, horizon: int, raw: bool = False) -> Tensor:
        """frames [B, T_in, C, H, W] in [0, 1] -> predictions [B, horizon, C, H, W] in [0, 1] (unbounded when
        ``raw``, which TAU's loss asks for: OpenSTL trains on the unbounded output)."""
        return chunked_rollout(functools.partial(self.block, raw=raw), frames, horizon)
