"""IAM4VP (Seo, Lee, Kim & Seo, *Implicit Stacked Autoregressive Model for Video Prediction*, 2023), as the
authors' code builds and trains it (github.com/seominseok0429/Implicit-Stacked-Autoregressive-Model-for-Video-
Prediction: ``model.py``, ``modules.py``, ``exp.py``).

A SimVP-like encoder, translator and decoder, run once per future frame. Step s (s = 0 .. T-1) predicts frame s
from the T input frames and the s frames predicted before it::

    z, skip  = encoder(frames)                       ConvSC stack (LayerNorm, SiLU) per frame, as SimVP's
    q_j      = feedback_encoder(prediction_j), j < s   another ConvSC stack over each earlier prediction
    q_j      = mask_token_j,                   j >= s  a learned token per future frame (the paper's "implicit"
                                                     stack: future frames not yet predicted are placeholders)
    e        = time_mlp(sinusoid(100 s))             the step's embedding (paper Sec. 3.2)
    h        = translator([z, q], e)                 ConvNeXt blocks over the 2T frames' features stacked as
                                                     channels, each adding GELU(Linear(e)) after its mixer; the
                                                     first (a 7x7 grouped conv, 2T -> T frames' channels, with a
                                                     1x1 conv shortcut), the others a large-kernel attention
    frame_s  = head(attention(merge(decoder(h, skip))))
                                                     the T decoded frames' features stacked, 1x1 conv to
                                                     ``readout_dim`` channels, VAN's spatial attention, 1x1 conv

Earlier predictions enter the next steps detached, as the authors train. The output has no activation; vpbench
clamps it to [0, 1] with a straight-through gradient. Frames whose sides do not divide by the encoder's stride are
replicate-padded. A horizon above T is rolled out in chunks of T frames; below T, the first ``horizon`` steps run.

Training: the authors take one optimiser step per predicted frame on its MSE (``exp.py``); vpbench takes one step
per batch on the MSE of all T frames, whose gradient is the mean of the authors' T per-frame gradients at the same
weights (the feedback is detached). Their EMA copy of the weights (decay 0.995 after 2,000 steps) is not kept.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from vpbench import presets
from vpbench.errors import UserError
from vpbench.models.layers.metaformer_blocks import AttentionUnit, LargeKernelAttention
from vpbench.models.layers.multiframe import chunked_rollout, pad_to_multiple
from vpbench.models.layers.output_range import clamp_straight_through
from vpbench.models.layers.simvp_frame import ConvSC
from vpbench.models.layers.vision_blocks import ChannelsFirstLayerNorm, Mlp
from vpbench.models.registry import register_model

STEP_SCALE = 100  # step s is embedded as time 100 s (exp.py)


def step_embedding(times: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of times [B] -> [B, dim]: [sin(t w_i), cos(t w_i)] with w_i = 10000^(-i / (dim/2 - 1)),
    i = 0 .. dim/2 - 1 (the diffusion models' timestep embedding)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=times.device, dtype=times.dtype) * -(math.log(10000) / (half - 1)))
    angles = times[:, None] * freqs[None, :]
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


class TimedConvNeXtBlock(nn.Module):
    """ConvNeXt block with the step's embedding added after its spatial mixer:
    shortcut(x) + s * MLP(LayerNorm(mixer(x) + Linear(GELU(e)))), s a layer scale from 1e-6.
    x [B, C_in, H, W], e [B, time_dim] -> [B, dim, H, W]."""

    def __init__(self, dim: int, time_dim: int, mixer: nn.Module, shortcut: nn.Module) -> None:
        super().__init__()
        self.time = nn.Sequential(nn.GELU(), nn.Linear(time_dim, dim))
        self.mixer = mixer
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.layer_scale = nn.Parameter(torch.full((dim,), 1e-6))
        self.shortcut = shortcut

    def forward(self, x: Tensor, time: Tensor) -> Tensor:
        y = self.mixer(x) + self.time(time)[:, :, None, None]
        y = self.layer_scale * self.mlp(self.norm(y.permute(0, 2, 3, 1)))
        return self.shortcut(x) + y.permute(0, 3, 1, 2)


def translator_blocks(dim: int, time_dim: int, blocks: int) -> nn.ModuleList:
    """The first block merges the 2T frames' ``2 dim`` channels to ``dim`` (7x7 conv in ``dim`` groups, 1x1 conv
    shortcut); the ``blocks - 1`` others mix with a large-kernel attention (VAN's, kernel 21)."""
    merge = TimedConvNeXtBlock(dim, time_dim, nn.Conv2d(2 * dim, dim, 7, padding=3, groups=dim),
                               nn.Conv2d(2 * dim, dim, 1))
    return nn.ModuleList([merge, *(TimedConvNeXtBlock(dim, time_dim, LargeKernelAttention(dim), nn.Identity())
                                   for _ in range(blocks - 1))])


def conv_stack(in_channels: int, hidden: int, layers: int, *, up: bool = False) -> nn.ModuleList:
    """IAM4VP's ConvSC stack (SimVP's strides 1, 2, 1, 2, ...; reversed and upsampling for the decoder, whose last
    layer reads [features, skip])."""
    if not up:
        return nn.ModuleList(ConvSC(in_channels if i == 0 else hidden, hidden, 3, downsample=i % 2 == 1, norm=ChannelsFirstLayerNorm)
                             for i in range(layers))
    return nn.ModuleList(ConvSC((2 if i == layers - 1 else 1) * hidden, hidden, 3,
                                upsample=(layers - 1 - i) % 2 == 1, norm=ChannelsFirstLayerNorm) for i in range(layers))


def encode(stack: nn.ModuleList, x: Tensor) -> tuple[Tensor, Tensor]:
    """The stack's output and its first layer's (the decoder's skip)."""
    skip = x = stack[0](x)
    for layer in stack[1:]:
        x = layer(x)
    return x, skip


class IAM4VP(nn.Module):
    """IAM4VP (see the module docstring). ``hidden``: the authors' ``hid_S``; ``spatial_layers``: ``N_S``;
    ``blocks``: ``N_T`` (the authors build ``N_T + 1`` translator blocks and run the first ``N_T``: the last is left
    out here). ``time_dim`` and ``readout_dim`` are fixed at 64 in their code. Shapes: [B, T_in, C, H, W] ->
    [B, horizon, C, H, W]."""

    def __init__(self, *, in_channels: int = 1, input_frames: int = 10, img_size: Sequence[int] = (64, 64),
                 hidden: int = 64, spatial_layers: int = 4, blocks: int = 8, time_dim: int = 64,
                 readout_dim: int = 64) -> None:
        super().__init__()
        if min(input_frames, hidden, spatial_layers, blocks, readout_dim) < 1 or time_dim < 4 or time_dim % 2:
            raise UserError(f"IAM4VP needs input_frames, hidden, spatial_layers, blocks and readout_dim >= 1 and an "
                            f"even time_dim >= 4, got {input_frames}, {hidden}, {spatial_layers}, {blocks}, "
                            f"{readout_dim}, {time_dim}")
        self.input_frames, self.time_dim, self.img_size = input_frames, time_dim, tuple(img_size)
        self.stride = 2 ** (spatial_layers // 2)
        grid = [-(-side // self.stride) for side in img_size]
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, 4 * time_dim), nn.GELU(), nn.Linear(4 * time_dim, time_dim))
        self.encoder = conv_stack(in_channels, hidden, spatial_layers)
        self.feedback_encoder = conv_stack(in_channels, hidden, spatial_layers)
        self.mask_tokens = nn.Parameter(torch.zeros(input_frames, hidden, *grid))
        self.translator = translator_blocks(input_frames * hidden, time_dim, blocks)
        self.decoder = conv_stack(in_channels, hidden, spatial_layers, up=True)
        self.merge = nn.Conv2d(input_frames * hidden, readout_dim, 1)
        self.attention = AttentionUnit(readout_dim, LargeKernelAttention(readout_dim))
        self.head = nn.Conv2d(readout_dim, in_channels, 1)

    def step(self, latent: Tensor, skip: Tensor, fed_back: list[Tensor], step: int) -> Tensor:
        """Frame ``step`` (raw) [B, C, H', W'] from the input frames' latent [B, T, hidden, h, w] and skip
        [B T, hidden, H', W'] and the earlier predictions (raw, padded) [B, C, H', W']."""
        b, t = latent.shape[:2]
        tokens = [encode(self.feedback_encoder, frame)[0] for frame in fed_back]
        tokens += list(self.mask_tokens[len(fed_back):].unsqueeze(1).expand(-1, b, -1, -1, -1))
        x = torch.cat([latent, torch.stack(tokens, dim=1)], dim=1).flatten(1, 2)  # [B, 2T hidden, h, w]
        time = self.time_mlp(step_embedding(x.new_full((b,), float(STEP_SCALE * step)), self.time_dim))
        for block in self.translator:
            x = block(x, time)
        x = x.reshape(b * t, -1, *x.shape[-2:])
        for layer in self.decoder[:-1]:
            x = layer(x)
        x = self.decoder[-1](torch.cat([x, skip], dim=1))
        return self.head(self.attention(self.merge(x.reshape(b, -1, *x.shape[-2:]))))

    def block(self, frames: Tensor, steps: int) -> Tensor:
        """The next ``steps`` (<= T_in) frames: [B, T_in, C, H, W] -> [B, steps, C, H, W] in [0, 1]."""
        b, t, _, height, width = frames.shape
        if t != self.input_frames:
            raise UserError(f"IAM4VP reads {self.input_frames} frames at a time (input_frames), got {t}")
        x = pad_to_multiple(frames.flatten(0, 1), self.stride)
        if tuple(self.mask_tokens.shape[-2:]) != (x.shape[-2] // self.stride, x.shape[-1] // self.stride):
            raise UserError(f"IAM4VP was built for frames of {self.img_size[0]} x {self.img_size[1]} (img_size: its "
                            f"mask tokens' grid), got {height} x {width}")
        latent, skip = encode(self.encoder, x)
        predicted: list[Tensor] = []
        for s in range(steps):
            predicted.append(self.step(latent.unflatten(0, (b, t)), skip, [p.detach() for p in predicted], s))
        return clamp_straight_through(torch.stack(predicted, dim=1)[..., :height, :width])

    def forward(self, frames: Tensor, horizon: int) -> Tensor:
        return chunked_rollout(functools.partial(self.block, steps=min(horizon, self.input_frames)), frames, horizon)


# The authors' Moving MNIST configuration (main.py's defaults, their only one): hid_S 64, N_S 4, N_T 8.
FULL = {"hidden": 64, "spatial_layers": 4, "blocks": 8, "time_dim": 64, "readout_dim": 64}
IAM4VP_PRESETS: dict[str, dict[str, Any]] = {
    "paper": FULL, "openstl": FULL,
    "quick": {**FULL, "hidden": 8, "blocks": 2, "time_dim": 16, "readout_dim": 16},
    "tiny": {**FULL, "hidden": 2, "spatial_layers": 2, "blocks": 1, "time_dim": 8, "readout_dim": 4},
}
IAM4VP_PRESETS.update({"openstl-quick": IAM4VP_PRESETS["quick"], "openstl-tiny": IAM4VP_PRESETS["tiny"]})
QUICK_LR = 3.0e-3


def iam4vp_recipe() -> dict[str, dict[str, Any]]:
    """The authors' training (main.py, exp.py): MSE, Adam at lr 1e-3 with a one-cycle schedule stepped every batch
    (theirs starts at its peak: ``pct_start`` 0; vpbench's warms up over the first 30%), batch 16, under both
    protocols; the smaller scales peak at :data:`QUICK_LR`. Epochs are the preset's: the authors train 600 to 2,000."""
    own = {"loss": "mse", "optimizer": "adam", "weight_decay": 0.0, "scheduler": "onecycle"}
    recipes = {"paper": {**own, "lr": 1.0e-3, "batch_size": 16}, "quick": {**own, "lr": QUICK_LR},
               "tiny": {**own, "lr": QUICK_LR}}
    for name, lr in (("openstl", 1.0e-3), ("openstl-quick", QUICK_LR), ("openstl-tiny", QUICK_LR)):
        recipes[name] = {**presets.protocol_recipe(name), **own, "lr": lr}
    return recipes


# The authors' README: Moving MNIST MSE 16.9 in the paper (17.20 from their refactored code after 2,000 epochs).
PAPER_VALUES = {"iam4vp-mmnist": {"mse": 16.9}}
register_model("iam4vp", label="IAM4VP", tags=("rnn-free",), rank=295, defaults=IAM4VP_PRESETS,
               recipe=iam4vp_recipe(), references=PAPER_VALUES)(IAM4VP)
