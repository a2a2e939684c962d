"""OpenSTL's form of the recurrent models, and its loss with scheduled sampling.

Under OpenSTL's protocol, ``convlstm``, ``stlstm``, ``causallstm`` and ``mim`` are built as OpenSTL (and
PredRNN before it) builds them, from the same cell files as the paper's encoder-forecaster: one stack of
L cells reads frame t and its readout predicts frame t+1, for every t from the first input frame to the
one before the last predicted frame (T_in + T_out - 1 steps; 19 on Moving MNIST). The readout is a
bias-free 1x1 convolution of the top layer's hidden state, with no activation.

In training (``mse_all_frames``), the loss is the MSE over all T_in + T_out - 1 predicted frames,
those inside the input window included, and the input at each step past the input window is the true
frame with a probability that falls as training goes on (scheduled sampling, PredRNN's): otherwise the
stack reads its own previous prediction. In testing it reads the input frames, then its own predictions.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench.losses import LossContext, draw_uniform, full_precision, register_loss, wide
from vpbench.models.layers.encoder_forecaster import LayerFactory, State, check_patch, patchify, step_layers, unpatchify
from vpbench.models.layers.output_range import clamp_straight_through

TEST_SAMPLING = (1.0, 0.0)  # (P(true frame) inside the input window, past it): the input frames, then predictions


class RecurrentStack(nn.Module):
    """One stack of L recurrent cells over the whole sequence, a 1x1 readout of the top layer (OpenSTL's
    ConvLSTM, PredRNN, PredRNN++ and MIM models).

    ``forward(frames, horizon)`` honours the contract (predictions clamped to [0, 1] with a straight-through
    gradient). For training, ``forward(frames, horizon, targets=..., sampling=(p_in, p_out),
    all_frames=True)`` returns the raw (unclamped) predictions of frames 2..T_in+horizon [B, T_in+horizon-1,
    C, H, W]: at step t >= 1 the input is the true frame with probability p_in inside the input window
    and p_out past it (drawn per sequence and step, whole frames), else the previous prediction. The draws:
    one :func:`~vpbench.losses.draw_uniform` per forward, [B, T_in+horizon-1], column t compared with step t's
    probability (OpenSTL draws its masks the same way, per sequence and step, once per batch).
    With ``signals=True`` it returns (predictions, signals): per step, what the cells sent up through
    ``carry`` besides the zigzag memory (e.g. ST-LSTM's memory increments for PredRNN.V2's loss).
    ``memory``: the zigzag memory's first value, shaped as the cells' hidden state on the patch grid (zeros when
    None, as OpenSTL starts it; the parity tests start E3D-LSTM's elsewhere so that its memory path runs).
    Shapes: frames [B, T_in, C, H, W], targets [B, horizon, C, H, W].
    """

    def __init__(self, make_layers: LayerFactory, *, in_channels: int = 1, img_size: Sequence[int] = (64, 64),
                 patch_size: int = 4, hidden: int = 128, layers: int = 4, kernel_size: int = 5) -> None:
        super().__init__()
        self.patch_size = patch_size
        grid = check_patch(img_size, patch_size)
        self.frame_channels = in_channels * patch_size**2
        self.cells = nn.ModuleList(make_layers(self.frame_channels, hidden, layers, kernel_size, grid))
        self.readout = nn.Conv2d(self.cells[-1].hidden, self.frame_channels, 1, bias=False)

    def forward(self, frames: Tensor, horizon: int, *, targets: Tensor | None = None,
                sampling: tuple[float, float] = TEST_SAMPLING, all_frames: bool = False,
                signals: bool = False, memory: Tensor | None = None) -> Tensor | tuple[Tensor, list[State]]:
        x = patchify(frames, self.patch_size)
        true = x if targets is None else torch.cat([x, patchify(targets, self.patch_size)], dim=1)
        t_in, steps = x.shape[1], x.shape[1] + horizon - 1
        probs = [1.0 if t == 0 else 0.0 if t >= true.shape[1] else sampling[0] if t < t_in else sampling[1]
                 for t in range(steps)]
        # The first layer's input convolution of the true frames it surely reads, batched over time; unbind,
        # not known[:, t]: indexing backpropagates through a zero-filled copy of the whole batch per step.
        given = [t for t, p in enumerate(probs) if p >= 1]
        known = dict(zip(given, self.cells[0].input_conv(true[:, given].flatten(0, 1)).unflatten(
            0, (true.shape[0], len(given))).unbind(1)))
        states = [cell.init_state(x[:, 0].new_zeros(x.shape[0], cell.hidden, *x.shape[3:])) for cell in self.cells]
        start = torch.zeros_like(states[0]["h"]) if memory is None else memory
        carry: State = {c.memory: start for c in self.cells if c.memory}
        draws = draw_uniform((x.shape[0], steps)) if any(0 < p < 1 for p in probs) else None
        preds: list[Tensor] = []
        sent: list[State] = []  # per step, the signals besides the zigzag memory
        for t, p in enumerate(probs):
            if p >= 1:
                xp0 = known[t]
            elif p <= 0:
                xp0 = self.cells[0].input_conv(preds[-1])
            else:
                use_true = (draws[:, t] < p).to(x)[:, None, None, None]
                xp0 = self.cells[0].input_conv(use_true * true[:, t] + (1 - use_true) * preds[-1])
            states = step_layers(self.cells, None, states, carry, xp0)
            if signals:
                sent.append({k: v for k, v in carry.items() if k not in {c.memory for c in self.cells}})
            preds.append(self.readout(states[-1]["h"]))
        out = unpatchify(torch.stack(preds, dim=1), self.patch_size)
        out = out if all_frames else clamp_straight_through(out[:, -horizon:])
        return (out, sent) if signals else out


def sampling_probabilities(step: int, train: Mapping[str, Any]) -> tuple[float, float]:
    """(P(true frame) inside the input window, past it) at optimiser step ``step`` (0-based), as OpenSTL's
    ``schedule_sampling`` and ``reserve_schedule_sampling_exp`` compute them:

    * ``linear`` (PredRNN): 1 inside the window; past it 1 - rate * (step + 1) until ``sampling_stop_iter``,
      then 0;
    * ``reverse`` (PredRNN.V2): inside the window 0.5 until step s1, then 1 - 0.5 exp(-(step - s1) / alpha)
      until s2, then 1; past it 0.5 until s1, falling linearly to 0 at s2;
    * ``none``: the test-time input (1, 0)."""
    kind = train.get("sampling", "none")
    if kind == "linear":
        stop, rate = train["sampling_stop_iter"], train["sampling_changing_rate"]
        return 1.0, max(0.0, 1.0 - rate * (step + 1)) if step < stop else 0.0
    if kind == "reverse":
        s1, s2, alpha = train["r_sampling_step_1"], train["r_sampling_step_2"], train["r_exp_alpha"]
        if step < s1:
            return 0.5, 0.5
        if step < s2:
            return 1.0 - 0.5 * math.exp(-(step - s1) / alpha), 0.5 - 0.5 / (s2 - s1) * (step - s1)
        return 1.0, 0.0
    return TEST_SAMPLING


@register_loss("mse_all_frames")
def mse_all_frames_loss(model: nn.Module, inputs: Tensor, targets: Tensor,
                        context: LossContext | None = None) -> tuple[Tensor, Tensor]:
    """OpenSTL's loss for its recurrent models: in training, the MSE over every frame the stack predicts
    (frames 2..T, inside the input window too), with scheduled sampling (``train.sampling``); in
    evaluation, over the predicted frames only, read with the test-time input."""
    context = context or LossContext()
    horizon = targets.shape[1]
    if model.training:
        sampling = sampling_probabilities(context.step, context.train)
        out = model(inputs, horizon, targets=targets, sampling=sampling, all_frames=True)
        truth = torch.cat([inputs, targets], dim=1)[:, 1:]
    else:
        out = model(inputs, horizon, all_frames=True)[:, -horizon:]
        truth = targets
    with full_precision(out.device):
        loss = F.mse_loss(wide(out), wide(truth))
    return loss, out[:, -horizon:].detach().clamp(0, 1)
