"""Memory In Memory (MIM, Wang et al. 2019) and the ``mim`` encoder-forecaster.

The stack is MIM's: an ST-LSTM first layer, then MIM blocks. Non-stationarity enters as the
difference of the first layer's adjacent hidden states, sent up through ``carry["d"]``; each MIM
block turns the signal it receives into its own D_t (its MIM-N output) and sends that up instead.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from vpbench import presets
from vpbench.models.convlstm import ConvLSTMCell, gated_update, same_conv
from vpbench.models.layers.encoder_forecaster import RecurrentCell, State
from vpbench.models.layers.recurrent_forms import OPENSTL_RNN_PRESETS, openstl_recipe, recurrent_model, rnn_presets
from vpbench.models.registry import register_model
from vpbench.models.stlstm import DualMemoryCell, STLSTMCell


class DifferencingSTLSTMCell(STLSTMCell):
    """MIM's first layer: an ST-LSTM that also sends d_t = H_t - H_{t-1} up as ``carry["d"]``.

    Before the first step there is no H_{t-1}: d is then zero, and (all convolutions being bias-free)
    every MIM-N and MIM-S of the stack stays exactly at its zero state for that step, which is what
    the original code gets by skipping MIM-N at t=1. ``init_state`` marks the state as ``first``.
    """

    signals = ("d",)

    def init_state(self, like: Tensor) -> State:
        return {**super().init_state(like), "first": True}

    def step(self, xp: Tensor, state: State, carry: State) -> State:
        new = super().step(xp, state, carry)
        carry["d"] = torch.zeros_like(new["h"]) if state.get("first") else new["h"] - state["h"]
        return new


class MIMBlock(DualMemoryCell):
    """A MIM block: an ST-LSTM whose forget path C_{t-1} -> C_t is two cascaded ConvLSTMs::

        D_t, N_t = MIM-N(d_t; D_{t-1}, N_{t-1})        non-stationary module, input d_t from below
        T_t, S_t = MIM-S(D_t; C_{t-1}, S_{t-1})        stationary module, hidden state C_{t-1}
        C_t = T_t + sigma(W_xi * X_t + W_hi * H_{t-1}) o tanh(W_xg * X_t + W_hg * H_{t-1})
        M_t = sigma(W_xf' * X_t + W_mf * M + 1) o M
              + sigma(W_xi * X_t + W_mi * M) o tanh(W_xg * X_t + W_mg * M)
        o_t = sigma(W_xo * X_t + W_ho * H_{t-1} + W_mo * M)
        H_t = o_t o tanh(W_11 * [C_t, M_t])

    MIM-N and MIM-S are peephole ConvLSTMs (:class:`ConvLSTMCell`, written "(input; hidden, cell)");
    d_t is the difference H_t - H_{t-1} of the first layer for the lowest block, the D_t of the block
    below for the others; D_t goes up. As in the original, the gates i and g of C and M share their
    input convolution. S is ordinary cell state, reset for every sequence and trained through, as in the
    TensorFlow original; OpenSTL's port keeps it on the module, detached before every step and carried
    over from one batch to the next. ``detach_stationary`` cuts S from the graph before every step as
    OpenSTL does (its carrying S over between batches is not reproduced).
    Shapes: x [B, M, h, w]; state h, c, d (D), n (N), s (S), memory m and signal d: [B, M, h, w].
    """

    state_names = ("h", "c", "d", "n", "s")
    signals = ("d",)

    def __init__(self, in_channels: int, hidden: int, kernel_size: int, grid: Sequence[int], *,
                 detach_stationary: bool = False) -> None:
        super().__init__(in_channels, hidden, kernel_size)
        self.detach_stationary = detach_stationary
        self.x_conv = same_conv(in_channels, 4 * hidden, kernel_size)  # [i, f', g, o]
        self.h_conv = same_conv(hidden, 3 * hidden, kernel_size)  # [i, g, o]
        self.m_conv = same_conv(hidden, 4 * hidden, kernel_size)  # [i', f', g', o]
        self.mim_n = ConvLSTMCell(hidden, hidden, kernel_size, grid)
        self.mim_s = ConvLSTMCell(hidden, hidden, kernel_size, grid)

    def input_conv(self, x: Tensor) -> Tensor:
        return self.x_conv(x)

    def step(self, xp: Tensor, state: State, carry: State) -> State:
        xi, xf, xg, xo = xp.chunk(4, dim=1)
        hi, hg, ho = self.h_conv(state["h"]).chunk(3, dim=1)
        mi, mf, mg, mo = self.m_conv(carry["m"]).chunk(4, dim=1)
        m = gated_update(carry["m"], xi + mi, xf + mf, xg + mg)
        d, n = self.mim_n.update(self.mim_n.input_conv(carry["d"]), state["d"], state["n"])
        stationary = state["s"].detach() if self.detach_stationary else state["s"]
        t, s = self.mim_s.update(self.mim_s.input_conv(d), state["c"], stationary)
        c = t + torch.sigmoid(xi + hi) * torch.tanh(xg + hg)
        carry["m"], carry["d"] = m, d
        h = self.hidden_state(torch.sigmoid(xo + ho + mo), torch.cat([c, m], dim=1))
        return {"h": h, "c": c, "d": d, "n": n, "s": s}


def mim_layers(in_channels: int, hidden: int, layers: int, kernel_size: int, grid: Sequence[int], *,
               detach_stationary: bool) -> list[RecurrentCell]:
    """An ST-LSTM layer that sends its differences up, then L-1 MIM blocks."""
    return [DifferencingSTLSTMCell(in_channels, hidden, kernel_size)] + [
        MIMBlock(hidden, hidden, kernel_size, grid, detach_stationary=detach_stationary) for _ in range(layers - 1)]


PAPER_VALUES = {
    "table1-10": {"mse": 1385.35, "ssim": 0.5950},
    "table1-30": {"mse": 1303.11, "ssim": 0.4908},
    "table2": {"mse": 445.27, "psnr": 21.3214, "ssim": 0.6947},
    "table3": {1: 0.9599, 2: 0.9446, 3: 0.9313, 4: 0.9185},
    "openstl-mmnist-200": {"mse": 22.55, "mae": 69.97, "ssim": 0.9498, "psnr": 23.56, "params": 38.0e6,
                           "flops": 179.2e9, "fps": 37},
    "openstl-mmnist-2000": {"mse": 14.73, "mae": 52.31, "ssim": 0.9678, "psnr": 25.99, "params": 38.0e6,
                            "flops": 179.2e9, "fps": 37},
    "openstl-kth-100": {"mse": 40.73, "mae": 380.8, "ssim": 0.9025, "psnr": 27.78, "params": 39.8e6,
                      "flops": 1099.0e9, "fps": 17},
    "openstl-human36m-50": {"mse": 112.1, "mae": 1467.1, "ssim": 0.9829, "psnr": 33.97, "params": 47.6e6,
                          "flops": 1051.0e9, "fps": 17},
}
# Under OpenSTL's protocol, S is detached before every step as OpenSTL's port does (--set
# model.detach_stationary=false trains through it, as the TensorFlow original).
OPENSTL_CELL = {"detach_stationary": True}
# quick: M=16 over 2 epochs, the protocol's recipe peaking at 5e-3 (measured on Moving MNIST, one thread beside another
# run: 78 s, MSE 2246, pixel std 0.370 of the ground truth's; M=32 over 3 epochs: 187 s, 2249, 0.357; M=16 over 3:
# 138 s, 2216, 0.360).
QUICK_SIZE = {"hidden": 16}
QUICK_RECIPE = {**presets.protocol_recipe("quick"), "lr": 5.0e-3, "epochs": 2}
register_model("mim", label="MIM", tags=("paper", "rnn", "openstl"), rank=40, references=PAPER_VALUES,
               defaults={**rnn_presets(**QUICK_SIZE), **{p: {**kw, **OPENSTL_CELL} for p, kw in OPENSTL_RNN_PRESETS.items()}},
               recipe={**openstl_recipe(5.0e-4), "quick": QUICK_RECIPE})(recurrent_model(mim_layers, detach_stationary=False))
