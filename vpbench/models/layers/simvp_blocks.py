"""SimVP's blocks (Gao et al., CVPR 2022; A4Bio/SimVP ``modules.py``): its ConvSC, the Inception block, the
Inception U-Net translator over the T frames' features stacked as channels (OpenSTL's ``incepu``), and the one
call of a SimVP-frame model (encode each frame, translate the stack, decode) that both SimVP forms share."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from vpbench.errors import UserError
from vpbench.models.layers.multiframe import pad_to_multiple
from vpbench.models.layers.output_range import clamp_straight_through


class ConvSC(nn.Module):
    """3x3 conv (a transposed one when upsampling by 2) + GroupNorm(2) + LeakyReLU(0.2).

    [N, C_in, H, W] -> [N, C_out, H', W'] with H' = H / stride, or H * 2 when ``upsample``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, upsample: bool = False) -> None:
        super().__init__()
        if upsample and stride == 2:
            self.conv: nn.Module = nn.ConvTranspose2d(in_channels, out_channels, 3, 2, 1, output_padding=1)
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1)
        self.norm = nn.GroupNorm(2, out_channels)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class Inception(nn.Module):
    """The translator's block: a 1x1 conv to ``mid_channels``, then the sum of grouped k x k convs
    (k in ``kernels``), each followed by GroupNorm and LeakyReLU(0.2). [N, C_in, h, w] -> [N, C_out, h, w].

    As in the official code, the grouped convs fall back to one group when ``mid_channels`` does not
    divide by ``groups``."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, kernels: Sequence[int],
                 groups: int) -> None:
        super().__init__()
        groups = groups if mid_channels % groups == 0 else 1
        if out_channels % groups:
            raise UserError(f"SimVP: {out_channels} translator channels do not divide into {groups} groups; "
                            "choose temporal_hidden and spatial_hidden x input frames divisible by groups")
        self.reduce = nn.Conv2d(in_channels, mid_channels, 1)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(mid_channels, out_channels, k, padding=k // 2, groups=groups),
                          nn.GroupNorm(groups, out_channels), nn.LeakyReLU(0.2, inplace=True))
            for k in kernels
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.reduce(x)
        if x.device.type == "cpu":  # the CPU backward of grouped convs is ~20x faster in channels-last layout
            x = x.contiguous(memory_format=torch.channels_last)
        return sum(branch(x) for branch in self.branches)


class Translator(nn.Module):
    """The temporal module: a U-Net of 2 x ``layers`` Inception blocks over the frames stacked as channels.

    The first ``layers`` blocks go down (in -> hidden), the next go up, each reading the previous output
    concatenated with the mirrored down block's (hidden -> in). [N, C_in, h, w] -> [N, C_in, h, w].
    """

    def __init__(self, channels: int, hidden: int, layers: int, kernels: Sequence[int], groups: int) -> None:
        super().__init__()
        if layers < 2:
            raise UserError(f"SimVP needs temporal_layers >= 2 (the translator is a U-Net), got {layers}")
        mid = hidden // 2
        self.down = nn.ModuleList(
            Inception(channels if i == 0 else hidden, mid, hidden, kernels, groups) for i in range(layers)
        )
        self.up = nn.ModuleList(
            Inception(hidden if i == 0 else 2 * hidden, mid, channels if i == layers - 1 else hidden, kernels, groups)
            for i in range(layers)
        )

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = self.up[0](skips.pop())
        for block in self.up[1:]:
            x = block(torch.cat([x, skips.pop()], dim=1))
        return x


def encode_translate_decode(model: nn.Module, frames: Tensor, merge: Callable[[Tensor, Tensor], Tensor],
                            raw: bool = False) -> Tensor:
    """One call of a SimVP-frame ``model`` (``encoder``, ``translator``, ``decoder``, ``readout``,
    ``input_frames``, ``size_multiple``): the next T frames [B, T, C, H, W] -> [B, T, C, H, W] in [0, 1]
    (straight-through clamp), or the readout's unbounded output when ``raw``. The last decoder block reads
    ``merge(x, skip)`` of the features and the first encoder block's output."""
    b, t, c, h, w = frames.shape
    if t != model.input_frames:
        raise UserError(f"this SimVP was built for {model.input_frames} input frames (its translator stacks "
                        f"them as channels), got {t}; build it with input_frames={t}")
    x = pad_to_multiple(frames.reshape(b * t, c, h, w), model.size_multiple)
    skip = x = model.encoder[0](x)
    for layer in model.encoder[1:]:
        x = layer(x)
    x = model.translator(x.reshape(b, -1, *x.shape[-2:])).reshape(x.shape)
    for layer in model.decoder[:-1]:
        x = layer(x)
    x = model.readout(model.decoder[-1](merge(x, skip)))
    x = x[..., :h, :w].reshape(b, t, c, h, w)
    return x if raw else clamp_straight_through(x)
