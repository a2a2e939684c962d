"""ConvLSTM (Shi et al. 2015) and the ``convlstm`` encoder-forecaster.

Also home of what the LSTM-family cells (ConvLSTM, ST-LSTM, Causal LSTM, GHU, MIM) share, following
the PredRNN code base they come from: "same" convolutions without bias, a constant forget bias of 1.0
and no layer normalisation (PredRNN's Moving MNIST scripts run with ``layer_norm 0``).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from vpbench import presets
from vpbench.models.layers.encoder_forecaster import RecurrentCell, State
from vpbench.models.layers.recurrent_forms import OPENSTL_RNN_PRESETS, openstl_recipe, recurrent_model, rnn_presets
from vpbench.models.registry import register_model

FORGET_BIAS = 1.0  # added to every forget gate's pre-activation, as in PredRNN and MIM


def same_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    """A bias-free convolution keeping the grid size (odd ``kernel_size``)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)


def gated_update(memory: Tensor, i: Tensor, f: Tensor, g: Tensor, forget_bias: float = FORGET_BIAS) -> Tensor:
    """LSTM memory update from pre-activations: sigma(f + 1) o memory + sigma(i) o tanh(g)."""
    return torch.sigmoid(f + forget_bias) * memory + torch.sigmoid(i) * torch.tanh(g)


class ConvLSTMCell(RecurrentCell):
    """Convolutional LSTM with peephole connections (Shi et al. 2015, Eq. 3)::

        i_t = sigma(W_xi * X_t + W_hi * H_{t-1} + W_ci o C_{t-1})
        f_t = sigma(W_xf * X_t + W_hf * H_{t-1} + W_cf o C_{t-1} + 1)
        C_t = f_t o C_{t-1} + i_t o tanh(W_xc * X_t + W_hc * H_{t-1})
        o_t = sigma(W_xo * X_t + W_ho * H_{t-1} + W_co o C_t)
        H_t = o_t o tanh(C_t)

    The peephole weights W_c* are per position ([M, h, w], zero at initialisation, as in MIM's
    ConvLSTMs), so the cell is built for one grid size. Bias-free convolutions with a constant forget
    bias 1 (PredRNN's convention) stand in for Shi's learnt b_*. MIM's non-stationary (MIM-N) and
    stationary (MIM-S) modules are this same cell. OpenSTL's ConvLSTM is this cell without peepholes
    (``peephole=False``) and without the forget bias (``forget_bias=0``).
    Shapes: x [B, C_in, h, w]; state h (H), c (C) [B, M, h, w].
    """

    state_names = ("h", "c")

    def __init__(self, in_channels: int, hidden: int, kernel_size: int, grid: Sequence[int], *,
                 peephole: bool = True, forget_bias: float = FORGET_BIAS) -> None:
        super().__init__(in_channels, hidden, kernel_size)
        self.forget_bias = forget_bias
        self.x_conv = same_conv(in_channels, 4 * hidden, kernel_size)  # [W_xi; W_xf; W_xc; W_xo]
        self.h_conv = same_conv(hidden, 4 * hidden, kernel_size)  # [W_hi; W_hf; W_hc; W_ho]
        # [W_ci; W_cf; W_co]
        self.peephole = nn.Parameter(torch.zeros(3, hidden, *grid)) if peephole else None

    def input_conv(self, x: Tensor) -> Tensor:
        return self.x_conv(x)

    def update(self, xp: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """(H_t, C_t) from the input convolution xp = input_conv(X_t), H_{t-1} and C_{t-1}."""
        i, f, g, o = (xp + self.h_conv(h)).chunk(4, dim=1)
        if self.peephole is None:
            c = gated_update(c, i, f, g, self.forget_bias)
            return torch.sigmoid(o) * torch.tanh(c), c
        w_ci, w_cf, w_co = self.peephole
        c = gated_update(c, i + w_ci * c, f + w_cf * c, g, self.forget_bias)
        return torch.sigmoid(o + w_co * c) * torch.tanh(c), c

    def step(self, xp: Tensor, state: State, carry: State) -> State:
        h, c = self.update(xp, state["h"], state["c"])
        return {"h": h, "c": c}


def convlstm_layers(in_channels: int, hidden: int, layers: int, kernel_size: int, grid: Sequence[int], *,
                    peephole: bool, forget_bias: float) -> list[RecurrentCell]:
    """L ConvLSTM layers of M channels."""
    return [ConvLSTMCell(in_channels if i == 0 else hidden, hidden, kernel_size, grid, peephole=peephole,
                         forget_bias=forget_bias) for i in range(layers)]


# The SRVP paper's Tables 1-3 (MSE per pixel on 0-255; Table 3: SSIM per predicted frame).
PAPER_VALUES = {
    "table1-10": {"mse": 1419.41, "ssim": 0.5661},
    "table1-30": {"mse": 1272.60, "ssim": 0.4963},
    "table2": {"mse": 936.69, "psnr": 17.1198, "ssim": 0.5322},
    "table3": {1: 0.8960, 2: 0.8799, 3: 0.8617, 4: 0.8440},
    # OpenSTL's ConvLSTM-S (MSE and MAE per frame on [0, 1]; its published params include two convolutions per
    # cell that its forward never uses).
    "openstl-mmnist-200": {"mse": 29.80, "mae": 90.64, "ssim": 0.9288, "psnr": 22.10, "params": 15.0e6,
                           "flops": 56.8e9, "fps": 113},
    "openstl-mmnist-2000": {"mse": 22.41, "mae": 73.07, "ssim": 0.9480, "psnr": 23.54, "params": 15.0e6,
                            "flops": 56.8e9, "fps": 113},
    "openstl-kth-100": {"mse": 47.65, "mae": 445.5, "ssim": 0.8977, "psnr": 26.99, "params": 14.9e6,
                      "flops": 1368.0e9, "fps": 16},
    "openstl-human36m-50": {"mse": 125.5, "mae": 1566.7, "ssim": 0.9813, "psnr": 33.4, "params": 15.5e6,
                          "flops": 347.0e9, "fps": 52},
}
# OpenSTL's ConvLSTM cell has neither peepholes nor the forget bias.
OPENSTL_CELL = {"peephole": False, "forget_bias": 0.0}
# quick: M=16 over 4 epochs (measured on Moving MNIST, one thread beside another run: 66 s, MSE 2198, pixel std 0.381
# of the ground truth's; M=32 over 3 epochs: 79 s, 2188, 0.373; M=16 over 3: 50 s, 2224, 0.352).
QUICK_SIZE = {"hidden": 16}
QUICK_RECIPE = {**presets.protocol_recipe("quick"), "epochs": 4}
register_model("convlstm", label="ConvLSTM", tags=("paper", "rnn", "openstl"), rank=10, references=PAPER_VALUES,
               defaults={**rnn_presets(**QUICK_SIZE), **{p: {**kw, **OPENSTL_CELL} for p, kw in OPENSTL_RNN_PRESETS.items()}},
               recipe={**openstl_recipe(5.0e-4), "quick": QUICK_RECIPE},
               )(recurrent_model(convlstm_layers, peephole=True, forget_bias=FORGET_BIAS))
