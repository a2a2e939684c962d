"""PredRNN's spatiotemporal LSTM (ST-LSTM, Wang et al. 2017) and the ``stlstm`` encoder-forecaster."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from vpbench.models.convlstm import gated_update, same_conv
from vpbench.models.layers.encoder_forecaster import RecurrentCell, State
from vpbench.models.layers.recurrent_forms import OPENSTL_RNN_PRESETS, openstl_recipe, recurrent_model, rnn_presets
from vpbench.models.registry import register_model

INCREMENTS = "increments"  # the per-step signal of ST-LSTM's memory increments (PredRNN.V2)


class DualMemoryCell(RecurrentCell):
    """Base of the PredRNN family: a temporal memory C in the cell's state and a spatiotemporal
    memory M flowing in a zigzag through ``carry["m"]`` (up the layers, then from the top layer at t
    to the bottom layer at t+1). The hidden state reads both memories: H_t = o_t o tanh(W_11 * [C_t, M_t]),
    W_11 a 1x1 convolution.
    """

    state_names: tuple[str, ...] = ("h", "c")
    memory = "m"

    def __init__(self, in_channels: int, hidden: int, kernel_size: int) -> None:
        super().__init__(in_channels, hidden, kernel_size)
        self.fuse = nn.Conv2d(2 * hidden, hidden, 1, bias=False)  # W_11

    def hidden_state(self, o: Tensor, cm: Tensor) -> Tensor:
        """H_t from the activated output gate o and [C_t, M_t] (concatenated on channels)."""
        return o * torch.tanh(self.fuse(cm))


class STLSTMCell(DualMemoryCell):
    """Spatiotemporal LSTM (PredRNN, Wang et al. 2017, Eq. 3)::

        C_t = sigma(W_xf * X_t + W_hf * H_{t-1} + 1) o C_{t-1}
              + sigma(W_xi * X_t + W_hi * H_{t-1}) o tanh(W_xg * X_t + W_hg * H_{t-1})
        M_t = sigma(W_xf' * X_t + W_mf * M + 1) o M
              + sigma(W_xi' * X_t + W_mi * M) o tanh(W_xg' * X_t + W_mg * M)
        o_t = sigma(W_xo * X_t + W_ho * H_{t-1} + W_co * [C_t, M_t])
        H_t = o_t o tanh(W_11 * [C_t, M_t])

    where M is the spatiotemporal memory coming from the layer below (from the top layer at t-1 for
    the bottom layer). As in thuml/predrnn-pytorch: bias-free convolutions, forget bias 1, no
    layer norm. With ``increments`` (PredRNN.V2's decoupling loss), each step also appends the two
    memory increments (i_t o g_t, i'_t o g'_t) to the per-step signal ``carry["increments"]``, one
    pair per layer, bottom first. Shapes: x [B, C_in, h, w]; state h, c and memory m [B, M, h, w].
    """

    def __init__(self, in_channels: int, hidden: int, kernel_size: int, *, increments: bool = False) -> None:
        super().__init__(in_channels, hidden, kernel_size)
        self.increments = increments
        if increments:
            self.signals = (INCREMENTS,)
        self.x_conv = same_conv(in_channels, 7 * hidden, kernel_size)  # [i, f, g, i', f', g', o]
        self.h_conv = same_conv(hidden, 4 * hidden, kernel_size)  # [i, f, g, o]
        self.m_conv = same_conv(hidden, 3 * hidden, kernel_size)  # [i', f', g']
        self.o_conv = same_conv(2 * hidden, hidden, kernel_size)  # W_co on [C_t, M_t]

    def input_conv(self, x: Tensor) -> Tensor:
        return self.x_conv(x)

    def step(self, xp: Tensor, state: State, carry: State) -> State:
        xi, xf, xg, xi2, xf2, xg2, xo = xp.chunk(7, dim=1)
        hi, hf, hg, ho = self.h_conv(state["h"]).chunk(4, dim=1)
        mi, mf, mg = self.m_conv(carry["m"]).chunk(3, dim=1)
        i, g, i2, g2 = xi + hi, xg + hg, xi2 + mi, xg2 + mg
        c = gated_update(state["c"], i, xf + hf, g)
        m = gated_update(carry["m"], i2, xf2 + mf, g2)
        if self.increments:  # what gated_update adds to C and to M
            delta_c, delta_m = torch.sigmoid(i) * torch.tanh(g), torch.sigmoid(i2) * torch.tanh(g2)
            carry.setdefault(INCREMENTS, []).append((delta_c, delta_m))
        cm = torch.cat([c, m], dim=1)
        carry["m"] = m
        return {"h": self.hidden_state(torch.sigmoid(xo + ho + self.o_conv(cm)), cm), "c": c}


def stlstm_layers(in_channels: int, hidden: int, layers: int, kernel_size: int,
                  grid: Sequence[int]) -> list[RecurrentCell]:
    """L ST-LSTM layers of M channels, the spatiotemporal memory zigzagging through them."""
    return [STLSTMCell(in_channels if i == 0 else hidden, hidden, kernel_size) for i in range(layers)]


PAPER_VALUES = {
    "table1-10": {"mse": 1533.24, "ssim": 0.5481},
    "table1-30": {"mse": 1324.94, "ssim": 0.4636},
    "table2": {"mse": 386.21, "psnr": 21.9665, "ssim": 0.7294},
    "table3": {1: 0.9656, 2: 0.9519, 3: 0.9397, 4: 0.9285},
    "openstl-mmnist-200": {"mse": 23.97, "mae": 72.82, "ssim": 0.9462, "psnr": 23.28, "params": 23.8e6,
                           "flops": 116.0e9, "fps": 54},
    "openstl-mmnist-2000": {"mse": 26.43, "mae": 77.52, "ssim": 0.9411, "psnr": 22.90, "params": 23.8e6,
                            "flops": 116.0e9, "fps": 54},
    "openstl-kth-100": {"mse": 41.07, "mae": 380.6, "ssim": 0.9097, "psnr": 27.95, "params": 23.6e6,
                      "flops": 2800.0e9, "fps": 7},
    "openstl-human36m-50": {"mse": 113.2, "mae": 1458.3, "ssim": 0.9831, "psnr": 33.94, "params": 24.6e6,
                          "flops": 704.0e9, "fps": 25},
}
# quick: M=12 (measured on Moving MNIST, one thread beside another run, 3 epochs: 60 s, MSE 2205, SSIM 0.351, pixel std
# 0.371 of the ground truth's; M=32: 152 s, 2217, 0.323, 0.364; M=16: 81 s, 2272, 0.306, 0.343; M=16 over 4 epochs:
# 100 s, 2247, 0.293, 0.360; M=12 over 4: 90 s, 2178, 0.371, 0.403). A short run trains the narrower cell further.
QUICK_SIZE = {"hidden": 12}
register_model("stlstm", label="ST-LSTM", labels={"openstl": "PredRNN"}, tags=("paper", "rnn", "openstl"), rank=20,
               references=PAPER_VALUES, defaults={**rnn_presets(**QUICK_SIZE), **OPENSTL_RNN_PRESETS},
               recipe=openstl_recipe(5.0e-4))(recurrent_model(stlstm_layers))
