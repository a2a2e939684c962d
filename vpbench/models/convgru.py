"""ConvGRU (paper Sec. 3.2, Eq. 1) and the ``convgru`` encoder-forecaster."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench import presets
from vpbench.models.layers.dropout import dropout
from vpbench.models.layers.encoder_forecaster import RecurrentCell, State
from vpbench.models.layers.recurrent_forms import recurrent_model, rnn_presets
from vpbench.models.registry import register_model


class ConvGRUCell(RecurrentCell):
    """Convolutional GRU (Eq. 1)::

        r_t = sigma(W_xr * X_t + W_hr * h_{t-1} + b_r)
        z_t = sigma(W_xz * X_t + W_hz * h_{t-1} + b_z)
        g_t = tanh(W_xg * X_t + W_hg * (r_t o h_{t-1}) + b_g)
        h_t = (1 - z_t) o g_t + z_t o h_{t-1}

    As in the official SRVP code, dropout (p=0.5 there) acts on the input of the reset and update
    gates only, and every convolution has a bias. The three input convolutions are one conv of 3M
    channels (same parameters as three), batched over time by the encoder. The convolutions of the
    zero initial state are kept, although they equal their biases: fvcore then counts the FLOPs the
    official code runs.
    Shapes: x [B, C_in, h, w], state h [B, M, h, w].
    """

    def __init__(self, in_channels: int, hidden: int, kernel_size: int, dropout: float = 0.0) -> None:
        super().__init__(in_channels, hidden, kernel_size)
        pad = kernel_size // 2
        self.dropout = dropout
        self.x_conv = nn.Conv2d(in_channels, 3 * hidden, kernel_size, padding=pad)  # [W_xz; W_xr; W_xg]
        self.h_conv = nn.Conv2d(hidden, 2 * hidden, kernel_size, padding=pad)  # [W_hz; W_hr]
        self.hg_conv = nn.Conv2d(hidden, hidden, kernel_size, padding=pad)  # W_hg

    def input_conv(self, x: Tensor) -> Tensor:
        if not (self.training and self.dropout > 0):
            return self.x_conv(x)
        m, pad = 2 * self.hidden, self.kernel_size // 2
        w, b = self.x_conv.weight, self.x_conv.bias
        gates = F.conv2d(dropout(x, self.dropout), w[:m], b[:m], padding=pad)
        return torch.cat([gates, F.conv2d(x, w[m:], b[m:], padding=pad)], dim=1)

    def step(self, xp: Tensor, state: State, carry: State) -> State:
        h = state["h"]
        xzr, xg = xp.split([2 * self.hidden, self.hidden], dim=1)
        z, r = torch.sigmoid(xzr + self.h_conv(h)).chunk(2, dim=1)  # update and reset gates at once
        g = torch.tanh(xg + self.hg_conv(r * h))
        return {"h": g + z * (h - g)}  # (1 - z) o g + z o h, in fewer passes


def convgru_layers(in_channels: int, hidden: int, layers: int, kernel_size: int, grid: Sequence[int],
                   dropout: float) -> list[RecurrentCell]:
    """L ConvGRU layers of M channels: the paper's baseline, and SRVP without its SA and RFA modules."""
    return [ConvGRUCell(in_channels if i == 0 else hidden, hidden, kernel_size, dropout) for i in range(layers)]


PAPER_VALUES = {
    "table1-10": {"mse": 1033.93, "ssim": 0.7082},
    "table1-30": {"mse": 1257.30, "ssim": 0.5221},
    "table2": {"mse": 418.09, "psnr": 21.5636, "ssim": 0.7115},
    "table3": {1: 0.9643, 2: 0.9489, 3: 0.9354, 4: 0.9235},
}
# quick: 4x4 patches, not the other recurrent models' 8x8: on 8x8 a 3-epoch run leaves ConvGRU's predictions flat
# (pixel std 0.34 of the ground truth's at a peak rate of 3e-3, 0.29 at 1e-3), on 4x4 they reach 0.39 (Moving MNIST);
# M=16 over 2 epochs peaking at 5e-3 (on 4x4, one thread beside another run: 53 s, MSE 2229, SSIM 0.350, std 0.379; at
# the protocol's 3e-3: 53 s, 2234, 0.282, 0.361; over 3 epochs at 3e-3: 78 s, 2211, 0.330, 0.361; M=32 over 3: 152 s,
# 2145, 0.420, 0.393).
QUICK_SIZE = {"patch_size": 4, "hidden": 16}
QUICK_RECIPE = {**presets.protocol_recipe("quick"), "epochs": 2, "lr": 5.0e-3}
register_model("convgru", label="ConvGRU", tags=("paper", "rnn"), rank=50, references=PAPER_VALUES,
               defaults={p: {**kw, "dropout": 0.5} for p, kw in rnn_presets(**QUICK_SIZE).items()},
               recipe={"quick": QUICK_RECIPE},
               )(recurrent_model(convgru_layers, dropout=0.5))
