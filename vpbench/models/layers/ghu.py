"""PredRNN++'s Gradient Highway Unit (GHU, Wang et al. 2018, Eq. 3)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from vpbench.models.convlstm import same_conv
from vpbench.models.layers.encoder_forecaster import RecurrentCell, State

INIT_RANGE = 1e-3  # PredRNN++ initialises the GHU's kernels uniformly in [-0.001, 0.001]


class GHU(RecurrentCell):
    """Gradient Highway Unit: a short path for gradients from far inputs to far outputs::

        P_t = tanh(W_px * X_t + W_pz * Z_{t-1})
        S_t = sigma(W_sx * X_t + W_sz * Z_{t-1})
        Z_t = S_t o P_t + (1 - S_t) o Z_{t-1}

    Z is the unit's state and its output (``"h"``); it does not touch the spatiotemporal memory,
    which passes it by on its zigzag. Bias-free convolutions with tiny initial kernels, as PredRNN++.
    Shapes: x [B, C_in, h, w]; state h (Z) [B, M, h, w].
    """

    def __init__(self, in_channels: int, hidden: int, kernel_size: int) -> None:
        super().__init__(in_channels, hidden, kernel_size)
        self.x_conv = same_conv(in_channels, 2 * hidden, kernel_size)  # [W_px; W_sx]
        self.z_conv = same_conv(hidden, 2 * hidden, kernel_size)  # [W_pz; W_sz]
        for conv in (self.x_conv, self.z_conv):
            nn.init.uniform_(conv.weight, -INIT_RANGE, INIT_RANGE)

    def input_conv(self, x: Tensor) -> Tensor:
        return self.x_conv(x)

    def step(self, xp: Tensor, state: State, carry: State) -> State:
        z = state["h"]
        p, s = (xp + self.z_conv(z)).chunk(2, dim=1)
        s = torch.sigmoid(s)
        return {"h": s * torch.tanh(p) + (1 - s) * z}
