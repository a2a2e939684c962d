"""MAU (Chang et al., *MAU: A Motion-Aware Unit for Video Prediction and Beyond*, NeurIPS 2021), as OpenSTL
builds it (``openstl/models/mau_model.py``, ``openstl/modules/mau_modules.py``).

Each frame is encoded to a map ``sr_size`` times smaller (a 1x1 convolution, then log2(sr_size) strided 3x3
convolutions, each with LeakyReLU 0.2); a stack of L Motion-Aware Units carries a temporal state T per layer
and passes a spatial state S up the stack; transposed convolutions bring the top S back to full size and a
1x1 convolution (``srcnn``) reads the next frame out, with no activation. Each unit attends over its last
``tau`` temporal states, weighted by how well the spatial states that went with them match the current one.

Training is OpenSTL's for its recurrent models (loss ``mse_all_frames`` of
:mod:`vpbench.models.layers.openstl_stack`): the MSE over all T_in + T_out - 1 predicted frames, with scheduled
sampling of the frames past the input window. OpenSTL v0.3.0 decreases the probability of the true frame by
2e-5 per step as PredRNN does; OpenSTL's Lightning branch drops the decreased value every step (it stays at
0.99998 until step 50,000, then 0), a bug: vpbench follows v0.3.0 and the authors.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from vpbench.errors import UserError
from vpbench.losses import draw_uniform
from vpbench.models.layers.encoder_forecaster import patchify, unpatchify
from vpbench.models.layers.multiframe import pad_to_multiple
from vpbench.models.layers.openstl_stack import TEST_SAMPLING
from vpbench.models.layers.output_range import clamp_straight_through
from vpbench.models.layers.recurrent_forms import openstl_recipe
from vpbench.models.registry import register_model

CELL_MODES = ("normal", "residual")  # residual: S' += S
MODEL_MODES = ("normal", "recall")  # recall: the decoder adds the encoder's features of the same size


def sampled_input(t: int, t_in: int, true: Tensor, preds: list[Tensor], sampling: tuple[float, float]) -> Tensor:
    """The input of step t of an OpenSTL recurrent loop [B, C, H, W]: the true frame ``true[:, t]`` with
    probability ``sampling[0]`` inside the input window (t < t_in) and ``sampling[1]`` past it, drawn per
    sequence (whole frames), else the previous prediction ``preds[-1]``; always the true frame at t = 0 and
    the prediction past the known frames. As :class:`~vpbench.models.layers.openstl_stack.RecurrentStack`."""
    p = 1.0 if t == 0 else sampling[0] if t < t_in else sampling[1]
    if t >= true.shape[1]:
        p = 0.0
    if p >= 1:
        return true[:, t]
    if p <= 0:
        return preds[-1]
    use_true = (draw_uniform((true.shape[0],)) < p).to(true)[:, None, None, None]
    return use_true * true[:, t] + (1 - use_true) * preds[-1]


def conv_norm(in_channels: int, out_channels: int, kernel_size: int, grid: Sequence[int]) -> nn.Sequential:
    """A biased "same" convolution followed by a LayerNorm over [C, h, w] (so a cell is built for one grid)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
                         nn.LayerNorm([out_channels, *grid]))


class MAUCell(nn.Module):
    """Motion-Aware Unit (paper Sec. 3). With T the temporal and S the spatial state, T_i, S_i (i = 1..tau) the
    last tau of each, d = M h w::

        alpha = softmax_i(<S_i, conv(S)> / sqrt(d))              attention module: which past motion fits now
        T_att = sum_i alpha_i T_i
        U     = sigma(conv(T));  T_AMI = U o T + (1 - U) o T_att   the augmented motion information
        [t_g, t_t, t_s] = conv(T_AMI);  [s_g, s_t, s_s] = conv(S)   fusion module
        T' = sigma(t_g) o t_t + (1 - sigma(t_g)) o s_t
        S' = sigma(s_g) o s_s + (1 - sigma(s_g)) o t_s (+ S in cell_mode "residual")

    Every convolution is biased and layer-normalised (``conv_norm``). Shapes: t, s [B, M, h, w];
    t_history, s_history [tau, B, M, h, w].
    """

    def __init__(self, hidden: int, kernel_size: int, grid: Sequence[int], residual: bool = False) -> None:
        super().__init__()
        self.hidden, self.residual = hidden, residual
        self.scale = 1 / math.sqrt(hidden * grid[0] * grid[1])
        self.t_conv = conv_norm(hidden, 3 * hidden, kernel_size, grid)  # OpenSTL's conv_t
        self.t_gate_conv = conv_norm(hidden, hidden, kernel_size, grid)  # conv_t_next
        self.s_conv = conv_norm(hidden, 3 * hidden, kernel_size, grid)  # conv_s
        self.s_query_conv = conv_norm(hidden, hidden, kernel_size, grid)  # conv_s_next

    def forward(self, t: Tensor, s: Tensor, t_history: Tensor, s_history: Tensor) -> tuple[Tensor, Tensor]:
        query = self.s_query_conv(s)
        alpha = torch.softmax((s_history * query).sum(dim=(2, 3, 4)) * self.scale, dim=0)  # [tau, B]
        t_att = (t_history * alpha[:, :, None, None, None]).sum(dim=0)
        update = torch.sigmoid(self.t_gate_conv(t))
        t_fused = t * update + (1 - update) * t_att
        t_g, t_t, t_s = self.t_conv(t_fused).split(self.hidden, dim=1)
        s_g, s_t, s_s = self.s_conv(s).split(self.hidden, dim=1)
        t_gate, s_gate = torch.sigmoid(t_g), torch.sigmoid(s_g)
        t_new = t_gate * t_t + (1 - t_gate) * s_t
        s_new = s_gate * s_s + (1 - s_gate) * t_s
        return t_new, s_new + s if self.residual else s_new


class MAU(nn.Module):
    """OpenSTL's MAU model: encoder, L Motion-Aware Units over T_in + horizon - 1 steps, decoder, 1x1 readout.

    ``forward(frames, horizon)`` honours the contract (predictions clamped to [0, 1] with a straight-through
    gradient). For training, ``forward(frames, horizon, targets=..., sampling=(p_in, p_out), all_frames=True)``
    returns the raw predictions of frames 2..T_in+horizon [B, T_in+horizon-1, C, H, W] with scheduled sampling
    (:func:`sampled_input`), the interface of ``mse_all_frames``. Frames are patched (space-to-depth,
    ``patch_size``) and, where their sides do not divide by patch_size x sr_size, replicate-padded (the
    predictions are cropped). Shapes: frames [B, T_in, C, H, W], targets [B, horizon, C, H, W].
    """

    def __init__(self, *, in_channels: int = 1, img_size: Sequence[int] = (64, 64), patch_size: int = 1,
                 hidden: int = 64, layers: int = 4, kernel_size: int = 5, sr_size: int = 4, tau: int = 5,
                 cell_mode: str = "normal", model_mode: str = "normal") -> None:
        super().__init__()
        _check_options(patch_size, hidden, layers, kernel_size, sr_size, tau, cell_mode, model_mode)
        self.patch_size, self.tau, self.recall = patch_size, tau, model_mode == "recall"
        self.multiple = patch_size * sr_size
        grid = [-(-side // self.multiple) for side in img_size]  # the cells' grid, after padding
        frame_channels = in_channels * patch_size**2
        down = int(math.log2(sr_size))
        self.encoders = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(frame_channels, hidden, 1), nn.LeakyReLU(0.2))]
            + [nn.Sequential(nn.Conv2d(hidden, hidden, 3, 2, padding=1), nn.LeakyReLU(0.2)) for _ in range(down)])
        self.cells = nn.ModuleList(MAUCell(hidden, kernel_size, grid, cell_mode == "residual") for _ in range(layers))
        upsample = [nn.ConvTranspose2d(hidden, hidden, 3, 2, padding=1, output_padding=1) for _ in range(down)]
        self.decoders = nn.ModuleList([nn.Sequential(conv, nn.LeakyReLU(0.2)) for conv in upsample[:-1]]
                                      + [nn.Sequential(conv) for conv in upsample[-1:]])
        self.readout = nn.Conv2d(hidden, frame_channels, 1)  # OpenSTL's srcnn

    def step(self, frame: Tensor, temporal: list[Tensor], histories: list[tuple[list[Tensor], list[Tensor]]]) -> Tensor:
        """One time step on a patched frame [B, C p^2, h, w]: updates ``temporal`` (T per layer) and the layers'
        last tau (T, S) in place; returns the raw next frame."""
        features, s = [], frame
        for encoder in self.encoders:
            s = encoder(s)
            features.append(s)
        for i, cell in enumerate(self.cells):
            t_history, s_history = histories[i]
            t_att, s_att = torch.stack(t_history[-self.tau:]), torch.stack(s_history[-self.tau:])
            s_history.append(s)
            temporal[i], s = cell(temporal[i], s, t_att, s_att)
            t_history.append(temporal[i])
            del t_history[:-self.tau], s_history[:-self.tau]
        for j, decoder in enumerate(self.decoders):
            s = decoder(s)
            if self.recall:
                s = s + features[-2 - j]
        return self.readout(s)

    def forward(self, frames: Tensor, horizon: int, *, targets: Tensor | None = None,
                sampling: tuple[float, float] = TEST_SAMPLING, all_frames: bool = False) -> Tensor:
        if horizon < 1:
            raise UserError(f"horizon must be at least 1 frame, got {horizon}")
        height, width = frames.shape[-2:]
        known = frames if targets is None else torch.cat([frames, targets], dim=1)
        true = patchify(pad_to_multiple(known.flatten(0, 1), self.multiple).unflatten(0, known.shape[:2]),
                        self.patch_size)
        encoded = [s // (self.multiple // self.patch_size) for s in true.shape[-2:]]
        zeros = true.new_zeros(true.shape[0], self.cells[0].hidden, *encoded)
        temporal = [zeros] * len(self.cells)
        histories = [([zeros] * self.tau, [zeros] * self.tau) for _ in self.cells]
        preds: list[Tensor] = []
        for t in range(frames.shape[1] + horizon - 1):
            preds.append(self.step(sampled_input(t, frames.shape[1], true, preds, sampling), temporal, histories))
        out = unpatchify(torch.stack(preds, dim=1), self.patch_size)[..., :height, :width]
        return out if all_frames else clamp_straight_through(out[:, -horizon:])


def _check_options(patch_size: int, hidden: int, layers: int, kernel_size: int, sr_size: int, tau: int,
                   cell_mode: str, model_mode: str) -> None:
    if min(patch_size, hidden, layers, tau) < 1:
        raise UserError(f"MAU's patch_size, hidden, layers and tau must be positive, got {patch_size}, {hidden}, "
                        f"{layers}, {tau}")
    if kernel_size < 1 or kernel_size % 2 != 1:
        raise UserError(f"kernel_size must be odd to keep the frame size, got {kernel_size}")
    if sr_size < 1 or sr_size & (sr_size - 1):
        raise UserError(f"sr_size must be a power of 2 (the encoder halves the frame log2(sr_size) times), "
                        f"got {sr_size}")
    if cell_mode not in CELL_MODES or model_mode not in MODEL_MODES:
        raise UserError(f"MAU's cell_mode must be one of {', '.join(CELL_MODES)} and model_mode one of "
                        f"{', '.join(MODEL_MODES)}, got {cell_mode!r}, {model_mode!r}")


# OpenSTL's configs/mmnist/MAU.py: 4 x 64, filter 5, stride 1, patch 1, sr_size 4, tau 5, normal cells and model.
FULL = {"hidden": 64, "layers": 4, "kernel_size": 5, "patch_size": 1, "sr_size": 4, "tau": 5,
        "cell_mode": "normal", "model_mode": "normal"}
MAU_PRESETS: dict[str, dict[str, Any]] = {
    "paper": FULL, "openstl": FULL,
    "quick": {**FULL, "hidden": 16, "layers": 2, "kernel_size": 3},
    "tiny": {**FULL, "hidden": 4, "layers": 1, "kernel_size": 3, "tau": 2},
}
MAU_PRESETS.update({"openstl-quick": MAU_PRESETS["quick"], "openstl-tiny": MAU_PRESETS["tiny"]})
# OpenSTL's recipe for its recurrent models at MAU's lr 1e-3; the SRVP protocol's presets train the same way
# (paper: at batch 16).
MAU_RECIPE = openstl_recipe(1.0e-3)
MAU_RECIPE.update({"paper": {**MAU_RECIPE["openstl"], "batch_size": 16}, "quick": MAU_RECIPE["openstl-quick"],
                   "tiny": MAU_RECIPE["openstl-tiny"]})
PUBLISHED = {"params": 4.5e6, "flops": 17.8e9, "fps": 201}
register_model(
    "mau", label="MAU", tags=("openstl",), rank=125, defaults=MAU_PRESETS, recipe=MAU_RECIPE,
    references={"openstl-mmnist-200": {"mse": 26.86, "mae": 78.22, "ssim": 0.9398, "psnr": 22.76, **PUBLISHED},
                "openstl-mmnist-2000": {"mse": 22.25, "mae": 67.96, "ssim": 0.9511, "psnr": 23.68, **PUBLISHED}},
)(MAU)
