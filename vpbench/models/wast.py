"""WaST (Nie et al., *Wavelet-Driven Spatiotemporal Predictive Learning: Bridging Frequency and Time Variations*,
AAAI 2024), as OpenSTL's Lightning branch builds and trains it (``openstl/modules/wast_modules.py``
``WaST_level1``, ``openstl/methods/wast.py``, ``configs/taxibj/WaST.py``).

The T input frames [B, C, T, H, W] are predicted as a block of the next T (blocks in
:mod:`vpbench.models.layers.wavelet_blocks`)::

    x = stem(frames)                                   conv3d-BN-GELU to ``hidden`` channels
    x, skip = translator(x)                            time-frequency blocks over hidden x T folded channels
    x, high = embed(x, frames)                         3D Haar transform: half the size, 2 hidden channels
    x = bottleneck(x)                                  time-frequency blocks over 2 hidden x T channels
    x = reconstruct(x, high)                           inverse 3D Haar transform with the kept high bands
    x = fuse_translator(x, skip)                       3x3 conv over [x, skip], time-frequency blocks
    out = head(x)                                      BN-GELU-conv3d to C channels

Its output has no activation; vpbench clamps it to [0, 1] with a straight-through gradient, as SimVP's. Frames
whose sides are odd are replicate-padded by one (one Haar level); T_in must be even (the transform halves time).
Other horizons are rolled out in chunks of T_in frames, as OpenSTL's SimVP method does.

Training (loss ``wast``, the method's ``training_step``): MSE plus ``frequency_weight`` (0.001) times the high
focal frequency loss, a focal frequency loss (Jiang et al., ICCV 2021) on the low-low band of each frame's 2D Haar
transform, its lowest frequencies masked out. Stochastic depth, as OpenSTL: rates rising linearly over the 12 blocks
from 0 to ``drop_path`` (0.1: OpenSTL's constructor default; its configuration's ``drop_path`` is the schedule's)
for the first step; after step s the rates rise to ``train.drop_path_late`` (0.25) if s >= ``drop_path_start_step``
(OpenSTL's ``cutmode = "late"``, ``cutoff`` = 20 of 50 epochs: 40% of the run), else to 0.
"""
from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench import presets
from vpbench.errors import UserError
from vpbench.losses import LossContext, full_precision, register_loss, wide
from vpbench.models.layers.multiframe import chunked_rollout, pad_to_multiple
from vpbench.models.layers.output_range import clamp_straight_through
from vpbench.models.layers.wavelet_blocks import (
    TimeFrequencyStack,
    WaveletEmbedding,
    WaveletReconstruction,
    haar_transform,
)
from vpbench.models.registry import register_model

KERNELS = (51, 21, 51)  # the strip convolutions' long side: translator, bottleneck, fusing translator
FREQUENCY_RADIUS = 0.1  # the masked lowest frequencies: within 0.1 x max(h, w) of a corner of the unshifted FFT


def drop_path_rates(rate: float, blocks: Sequence[int]) -> list[list[float]]:
    """OpenSTL's rates: ``torch.linspace(0, rate, sum(blocks))`` (float32, its default dtype), split per stack."""
    rates = torch.linspace(0, rate, sum(blocks), dtype=torch.float32, device="cpu").tolist()
    return [rates[end - n:end] for n, end in zip(blocks, itertools.accumulate(blocks))]


class WaST(nn.Module):
    """WaST's one-level wavelet network (OpenSTL's ``WaST_level1``). ``hidden``: OpenSTL's ``encoder_dim``;
    ``blocks``: the time-frequency blocks of the translator, the bottleneck and the fusing translator
    (``block_list``). Shapes: [B, T_in, C, H, W] -> [B, horizon, C, H, W]."""

    def __init__(self, *, in_channels: int = 1, input_frames: int = 10, hidden: int = 20,
                 blocks: Sequence[int] = (2, 8, 2), mlp_ratio: float = 4.0, drop_path: float = 0.1) -> None:
        super().__init__()
        blocks = list(blocks)
        _check_options(input_frames, hidden, blocks, drop_path)
        self.input_frames, self.blocks, self.initial_drop_path = input_frames, blocks, drop_path
        rates = drop_path_rates(drop_path, blocks)
        folded = hidden * input_frames
        self.stem = nn.Sequential(nn.Conv3d(in_channels, hidden, 3, padding=1), nn.BatchNorm3d(hidden), nn.GELU())
        self.translator = TimeFrequencyStack(folded, rates[0], mlp_ratio, KERNELS[0])
        self.embed = WaveletEmbedding(hidden, 2 * hidden, in_channels)
        self.bottleneck = TimeFrequencyStack(2 * folded, rates[1], mlp_ratio, KERNELS[1])
        self.reconstruct = WaveletReconstruction(2 * hidden, hidden, hidden)
        self.fuse_translator = TimeFrequencyStack(folded, rates[2], mlp_ratio, KERNELS[2], skip=True)
        self.head = nn.Sequential(nn.BatchNorm3d(hidden), nn.GELU(), nn.Conv3d(hidden, in_channels, 3, padding=1))

    def set_drop_path(self, rate: float) -> None:
        """Stochastic-depth rates rising from 0 to ``rate`` over the blocks (OpenSTL's ``update_drop_path``)."""
        for stack, rates in zip((self.translator, self.bottleneck, self.fuse_translator),
                                drop_path_rates(rate, self.blocks)):
            stack.set_drop_paths(rates)

    def block(self, frames: Tensor) -> Tensor:
        """The next T_in frames: [B, T_in, C, H, W] -> [B, T_in, C, H, W] in [0, 1]."""
        if frames.shape[1] != self.input_frames:
            raise UserError(f"WaST reads {self.input_frames} frames at a time (input_frames), got {frames.shape[1]}")
        height, width = frames.shape[-2:]
        x = pad_to_multiple(frames.flatten(0, 1), 2).unflatten(0, frames.shape[:2]).transpose(1, 2)  # [B, C, T, H, W]
        features = self.translator(self.stem(x))
        low, high = self.embed(features, x)
        y = self.reconstruct(self.bottleneck(low), high)
        y = self.fuse_translator(y, features.flatten(1, 2))
        return clamp_straight_through(self.head(y).transpose(1, 2)[..., :height, :width])

    def forward(self, frames: Tensor, horizon: int) -> Tensor:
        return chunked_rollout(self.block, frames, horizon)


def _check_options(input_frames: int, hidden: int, blocks: list[int], drop_path: float) -> None:
    if input_frames < 2 or input_frames % 2:
        raise UserError(f"WaST needs an even number of input frames (its Haar transform halves time), "
                        f"got {input_frames}")
    if hidden < 1 or len(blocks) != 3 or min(blocks) < 1:
        raise UserError(f"WaST needs hidden >= 1 and blocks of three positive counts (translator, bottleneck, "
                        f"fusing translator), got hidden={hidden}, blocks={blocks}")
    if not 0 <= drop_path < 1:
        raise UserError(f"drop_path must be in [0, 1), got {drop_path}")


def high_frequency_mask(height: int, width: int, device: torch.device | None = None) -> Tensor:
    """[height, width]: 0 within ``FREQUENCY_RADIUS`` x max(height, width) of a corner (the lowest frequencies of an
    unshifted 2D FFT; distances in float32, as OpenSTL), else 1."""
    rows, cols = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device),
                                indexing="ij")
    radius = FREQUENCY_RADIUS * max(height, width)
    mask = torch.ones(height, width, device=device)
    for row, col in ((0, 0), (0, width - 1), (height - 1, 0), (height - 1, width - 1)):
        distance = ((cols - col) ** 2 + (rows - row) ** 2).float().sqrt()
        mask[distance <= radius] = 0
    return mask


def high_focal_frequency_loss(pred: Tensor, target: Tensor) -> Tensor:
    """WaST's high focal frequency loss of frames [B, T, C, H, W]: with F and G the orthonormal 2D FFTs of the
    low-low Haar bands of pred and target (per frame and channel), d = |F - G|^2, the focal weights
    w = log(1 + |F - G|) over their maximum per frame and channel (detached), and the mask M of
    :func:`high_frequency_mask`: mean(w d M)."""
    spectra = [torch.fft.fft2(haar_transform(x.flatten(0, 1), 2)[0], norm="ortho") for x in (pred, target)]
    distance = torch.view_as_real(spectra[0] - spectra[1]).square().sum(dim=-1)
    weight = torch.log(distance.sqrt() + 1.0)
    weight = (weight / weight.amax(dim=(-2, -1), keepdim=True)).nan_to_num(0.0).clamp(0, 1).detach()
    return (weight * distance * high_frequency_mask(*distance.shape[-2:], device=distance.device)).mean()


def scheduled_drop_path(step: int, train: Mapping[str, Any], initial: float) -> float:
    """The stochastic-depth rate of optimiser step ``step`` (see the module docstring)."""
    if step == 0:
        return initial
    return train.get("drop_path_late", 0.0) if step - 1 >= train.get("drop_path_start_step", 0) else 0.0


@register_loss("wast")
def wast_loss(model: nn.Module, inputs: Tensor, targets: Tensor,
              context: LossContext | None = None) -> tuple[Tensor, Tensor]:
    """MSE + ``train.frequency_weight`` x :func:`high_focal_frequency_loss`; in training, the blocks' stochastic
    depth set by :func:`scheduled_drop_path` first."""
    context = context or LossContext()
    wast = getattr(model, "module", model)  # under DDP the model is wrapped
    if model.training:
        wast.set_drop_path(scheduled_drop_path(context.step, context.train, wast.initial_drop_path))
    pred = model(inputs, targets.shape[1])
    with full_precision(pred.device):
        pred_wide, targets_wide = wide(pred), wide(targets)
        loss = F.mse_loss(pred_wide, targets_wide)
        weight = context.train.get("frequency_weight", 0.0)
        if weight:
            loss = loss + weight * high_focal_frequency_loss(pred_wide, targets_wide)
    return loss, pred


# OpenSTL's configs/taxibj/WaST.py (its only configuration): encoder_dim 20, block_list [2, 8, 2], mlp_ratio 4.
FULL = {"hidden": 20, "blocks": [2, 8, 2], "mlp_ratio": 4.0, "drop_path": 0.1}
WAST_PRESETS: dict[str, dict[str, Any]] = {
    "paper": FULL, "openstl": FULL,
    "quick": {**FULL, "hidden": 4, "blocks": [1, 2, 1]},
    "tiny": {**FULL, "hidden": 2, "blocks": [1, 1, 1], "mlp_ratio": 2.0},
}
WAST_PRESETS.update({"openstl-quick": WAST_PRESETS["quick"], "openstl-tiny": WAST_PRESETS["tiny"]})
# Steps before the late stochastic depth: OpenSTL's 20 of 50 epochs, 40% of the run (200 epochs of 625 steps on
# Moving MNIST; the quick and tiny scales' 100 and 4 steps).
LATE_START = {"full": 50_000, "quick": 40, "tiny": 2}
QUICK_LR = 3.0e-3


def wast_recipe() -> dict[str, dict[str, Any]]:
    """Every preset: OpenSTL's WaST configuration (configs/taxibj/WaST.py with OpenSTL's defaults): Adam (weight
    decay 0), lr 1e-3 annealed by a cosine over the run down to OpenSTL's ``min_lr`` 1e-6 (no warm-up; stepped per
    epoch here, as OpenSTL's timm scheduler), batch 16, the ``wast`` loss with its frequency term at 0.001 and the
    late stochastic depth at 0.25. The smaller scales peak at :data:`QUICK_LR`."""
    recipes = {}
    for scale, lr in (("full", 1.0e-3), ("quick", QUICK_LR), ("tiny", QUICK_LR)):
        recipe = {"loss": "wast", "optimizer": "adam", "weight_decay": 0.0, "scheduler": "cosine",
                  "eta_min": 1.0e-6, "t_max_epochs": None, "lr": lr, "frequency_weight": 1.0e-3,
                  "drop_path_late": 0.25, "drop_path_start_step": LATE_START[scale]}
        for protocol in ("srvp", "openstl"):
            name = presets.NAMES[(protocol, scale)]
            recipes[name] = {**recipe, "batch_size": 16} if scale == "full" else recipe
    return recipes


# OpenSTL publishes no WaST results (its tables predate it).
register_model("wast", label="WaST", tags=("openstl", "rnn-free"), rank=215, defaults=WAST_PRESETS,
               recipe=wast_recipe())(WaST)
