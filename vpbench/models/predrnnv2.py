"""PredRNN.V2 (Wang et al., "PredRNN: A Recurrent Neural Network for Spatiotemporal Predictive Learning",
TPAMI 2022) in OpenSTL's form: ST-LSTM layers in OpenSTL's single stack, trained with the memory decoupling
loss and reverse scheduled sampling.

The stack is PredRNN's (:class:`~vpbench.models.layers.openstl_stack.RecurrentStack` over
:class:`~vpbench.models.stlstm.STLSTMCell`, the ``stlstm`` row's cell): one stack of L ST-LSTMs reads frame t
and a bias-free 1x1 readout of the top hidden state predicts frame t+1, for the T_in + T_out - 1 steps of
the sequence. What V2 adds is training:

* **Memory decoupling.** At every step and layer, the increments of the two memories, dC = i_t o g_t and
  dM = i'_t o g'_t, go through one 1x1 convolution shared by all layers and both memories (the ``adapter``),
  are L2-normalised over space per channel, and the loss adds ``decouple_beta`` times the mean over steps,
  layers, sequences and channels of |cos(adapter(dC), adapter(dM))| (over space) to the MSE of all
  T_in + T_out - 1 predicted frames (loss ``mse_decoupling``). OpenSTL (``openstl/models/predrnnv2_model.py``)
  and the authors (thuml/predrnn-pytorch ``core/models/predrnn_v2.py``) compute it the same way;
  ``decouple_beta`` is 0.1 on Moving MNIST (``configs/mmnist/PredRNNv2.py``), 0.01 in OpenSTL's KTH config.
* **Reverse scheduled sampling** (``train.sampling: reverse``): inside the input window the stack reads the
  true frame with a probability rising from 0.5 to 1 (exponentially, from step ``r_sampling_step_1`` to
  ``r_sampling_step_2`` with scale ``r_exp_alpha``), past it with a probability falling linearly from 0.5 to
  0 over the same steps (:func:`~vpbench.models.layers.openstl_stack.sampling_probabilities`). At test time it
  reads the T_in input frames, then its own predictions.

Under the SRVP protocol (presets ``paper``, ``quick``, ``tiny``) the model keeps this form and its loss,
with the SRVP protocol's optimiser and schedule and the hyperparameters of the paper's RNN rows
(``RNN_PRESETS``: 4 x 128, kernel 5, full-resolution frames at ``paper``). The paper's encoder-forecaster is
not used: its forecaster always reads its own predictions (there is nothing for reverse scheduled sampling
to act on) and it does not expose the increments, so V2 there would be the ``stlstm`` row with an extra
loss term. The sampling schedule is the authors' at ``paper`` (25,000 / 50,000 steps, alpha 2,500:
thuml/predrnn-pytorch ``mnist_script/predrnn_v2_mnist_train.sh``), scaled to the run's length at ``quick``
and ``tiny``. The authors also train on every sequence reversed in time (``--reverse_input 1``); neither
OpenSTL nor vpbench does.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench import presets
from vpbench.losses import LossContext, full_precision, register_loss, wide
from vpbench.models.layers.encoder_forecaster import RecurrentCell, State
from vpbench.models.layers.openstl_stack import (
    TEST_SAMPLING,
    RecurrentStack,
    mse_all_frames_loss,
    sampling_probabilities,
)
from vpbench.models.layers.recurrent_forms import OPENSTL_RNN_PRESETS, RNN_PRESETS
from vpbench.models.registry import register_model
from vpbench.models.stlstm import INCREMENTS, STLSTMCell


def predrnnv2_layers(in_channels: int, hidden: int, layers: int, kernel_size: int,
                     grid: Sequence[int]) -> list[RecurrentCell]:
    """L ST-LSTM layers of M channels that send their memory increments up (``carry["increments"]``)."""
    return [STLSTMCell(in_channels if i == 0 else hidden, hidden, kernel_size, increments=True) for i in range(layers)]


class PredRNNv2(RecurrentStack):
    """OpenSTL's PredRNNv2_Model: the ST-LSTM stack and the shared 1x1 ``adapter`` of the decoupling loss.

    ``forward(frames, horizon)`` and its training keywords are the stack's (see :class:`RecurrentStack`);
    with ``decoupling=True`` it returns (predictions, decouple_beta * decoupling term), the term computed over
    every step and layer of that forward. Shapes: frames [B, T_in, C, H, W], targets [B, horizon, C, H, W].
    """

    def __init__(self, *, in_channels: int = 1, img_size: Sequence[int] = (64, 64), patch_size: int = 4,
                 hidden: int = 128, layers: int = 4, kernel_size: int = 5, decouple_beta: float = 0.1) -> None:
        super().__init__(predrnnv2_layers, in_channels=in_channels, img_size=img_size, patch_size=patch_size,
                         hidden=hidden, layers=layers, kernel_size=kernel_size)
        self.adapter = nn.Conv2d(hidden, hidden, 1, bias=False)  # shared by every layer and both memories
        self.decouple_beta = decouple_beta

    def forward(self, frames: Tensor, horizon: int, *, targets: Tensor | None = None,
                sampling: tuple[float, float] = TEST_SAMPLING, all_frames: bool = False,
                decoupling: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        if not decoupling:
            return super().forward(frames, horizon, targets=targets, sampling=sampling, all_frames=all_frames)
        out, sent = super().forward(frames, horizon, targets=targets, sampling=sampling, all_frames=all_frames,
                                    signals=True)
        return out, self.decouple_beta * self.decoupling_term(sent)

    def decoupling_term(self, sent: list[State]) -> Tensor:
        """mean |cos(adapter(dC), adapter(dM))| over steps, layers, sequences and channels, the cosine taken
        over space. ``sent``: per step, ``"increments"``: per layer (dC, dM), each [B, M, h, w]."""
        pairs = [pair for signals in sent for pair in signals[INCREMENTS]]
        delta_c, delta_m = (torch.stack(deltas) for deltas in zip(*pairs))  # [steps * layers, B, M, h, w]

        def adapted(delta: Tensor) -> Tensor:  # [N, B, M, h, w] -> [N * B, M, h * w], unit norm over space
            return F.normalize(self.adapter(delta.flatten(0, 1)).flatten(2), dim=2)

        return torch.cosine_similarity(adapted(delta_c), adapted(delta_m), dim=2).abs().mean()


@register_loss("mse_decoupling")
def mse_decoupling_loss(model: nn.Module, inputs: Tensor, targets: Tensor,
                        context: LossContext | None = None) -> tuple[Tensor, Tensor]:
    """PredRNN.V2's loss: in training, the MSE over every frame the stack predicts (frames 2..T) plus
    ``decouple_beta`` times the decoupling term, with scheduled sampling (``train.sampling``); in evaluation,
    the MSE of the predicted frames (as ``mse_all_frames``; OpenSTL validates on that MSE)."""
    context = context or LossContext()
    if not model.training:
        return mse_all_frames_loss(model, inputs, targets, context)
    horizon = targets.shape[1]
    sampling = sampling_probabilities(context.step, context.train)
    out, decoupling = model(inputs, horizon, targets=targets, sampling=sampling, all_frames=True, decoupling=True)
    truth = torch.cat([inputs, targets], dim=1)[:, 1:]
    with full_precision(out.device):
        loss = F.mse_loss(wide(out), wide(truth)) + wide(decoupling)
    return loss, out[:, -horizon:].detach().clamp(0, 1)


def _recipe(preset: str, lr: float | None, schedule: tuple[int, int, float]) -> dict[str, Any]:
    """The protocol's recipe at ``preset`` with V2's loss and reverse scheduled sampling (s1, s2, alpha)."""
    s1, s2, alpha = schedule
    rate = {} if lr is None else {"lr": lr}
    return {**presets.protocol_recipe(preset), "loss": "mse_decoupling", **rate, "sampling": "reverse",
            "r_sampling_step_1": s1, "r_sampling_step_2": s2, "r_exp_alpha": alpha}


# OpenSTL's schedule (configs/mmnist/PredRNNv2.py) ends at step 50,000 of 125,000 (200 epochs of 625 steps):
# the shorter runs keep its fractions, 20% / 40% / 4% of their steps (openstl-quick: 100, quick: 200, tiny: 4).
RECIPES = {
    "openstl": _recipe("openstl", 5.0e-4, (25000, 50000, 5000)),
    "openstl-quick": _recipe("openstl-quick", 3.0e-3, (20, 40, 4)),
    "openstl-tiny": _recipe("openstl-tiny", 3.0e-3, (1, 2, 0.2)),
    "paper": _recipe("paper", None, (25000, 50000, 2500)),  # the authors' schedule; the dataset's rate
    "quick": _recipe("quick", None, (40, 80, 8)),
    "tiny": _recipe("tiny", None, (1, 2, 0.2)),
}
OPENSTL_SIZES = {preset: {k: v for k, v in kw.items() if k != "form"} for preset, kw in OPENSTL_RNN_PRESETS.items()}
# The published row (OpenSTL's docs/en/model_zoos/video_benchmarks.md; MSE and MAE per frame on [0, 1]). Its FLOPs
# were traced through the training forward, the decoupling term's adapter convolutions included.
REFERENCES = {
    "openstl-mmnist-200": {"mse": 24.13, "mae": 73.73, "ssim": 0.9453, "psnr": 23.21, "params": 23.9e6,
                           "flops": 116.6e9, "fps": 52},
    "openstl-mmnist-2000": {"mse": 17.26, "mae": 57.22, "ssim": 0.9624, "psnr": 25.01, "params": 23.9e6,
                            "flops": 116.6e9, "fps": 52},
}
register_model("predrnnv2", label="PredRNN.V2", tags=("openstl",), rank=180, references=REFERENCES,
               defaults={**RNN_PRESETS, **{p: {**kw, "decouple_beta": 0.1} for p, kw in OPENSTL_SIZES.items()}},
               recipe=RECIPES)(PredRNNv2)
