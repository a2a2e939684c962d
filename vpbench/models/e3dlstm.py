"""E3D-LSTM (Wang et al., "Eidetic 3D LSTM: A Model for Video Prediction and Beyond", ICLR 2019) in OpenSTL's
form: Eidetic 3D LSTM layers in OpenSTL's single stack, trained with MSE + L1 over every predicted frame and
scheduled sampling.

Each layer works on a window of two time slices: the bottom layer convolves the previous and the current
input frame (a zero frame before the first), the layers above the two slices of the hidden state below, with
(2, k, k) 3D convolutions. The readout is a bias-free (2, 1, 1) convolution of the top hidden state that
spans the window (here a 1x1 convolution of its two slices, ``RecurrentStack``'s readout). A cell recalls
every earlier memory C of its layer with an attention (the "eidetic" memory):

    R_t = sigma(W_xr * X_t + W_hr * H_{t-1}),  I_t = sigma(W_xi * X_t + W_hi * H_{t-1}),
    G_t = tanh(W_xg * X_t + W_hg * H_{t-1})
    RECALL(R_t, C_{<t}) = softmax(R_t C_{<t}^T) C_{<t}                      (tokens: see ``variant``)
    C_t = LayerNorm(C_{t-1} + RECALL(R_t, C_{<t})) + I_t o G_t
    M'_t = sigma(W_xf' * X_t + W_mf * M + 1) o tanh(W_mm * M)
           + sigma(W_xi' * X_t + W_mi * M) o tanh(W_xg' * X_t + W_mg * M)
    O_t = tanh(W_xo * X_t + W_ho * H_{t-1} + W_co * C_t + W_mo * M'_t)
    H_t = tanh(W_111 * [C_t, M'_t]) o sigma(O_t)

as the authors' code (google/e3d_lstm ``src/layers/rnn_cell.py``) and OpenSTL (``openstl/modules/
e3dlstm_modules.py``) compute it, which differs from the paper's equations: the forget path of M goes through
tanh(W_mm * M), the output gate is squashed twice, and **the cell hands on the global memory M it received,
not M'_t** (both codes return ``global_memory``). M therefore stays at its initial zeros through the whole
stack and sequence; M'_t only acts inside the step, and W_mm, W_mi, W_mf, W_mg (``m_conv``), fed zeros, get no
gradient. Both codes do this; vpbench does too. C_{<t} holds C_{t-1}, ..., C_0 and the initial zero state. As
in OpenSTL (``configs/mmnist/E3DLSTM.py``: layer_norm 0) the convolutions are bias-free, only the sum before
C_t is layer-normalised, with an affine weight per channel, slice and position (the authors' TensorFlow
convolutions have biases, their layer norms (on every gate convolution too) one weight per channel).

``variant`` picks between the two codes where OpenSTL's port computes something else from the same weights:

* ``openstl`` (OpenSTL v0.3.0, whose code produced the published row): the recall reshapes the channel-first
  [B, M, 2, h, w] tensors raw to [B, -1, M], so that a "token" is M consecutive values of one channel's
  (slice, row, column) array, and the memories of C_{<t} are concatenated along channels; a (2, k, k)
  convolution has no padding in time and its single output slice is repeated to the window's two
  (``tf_Conv3d``).
* ``authors`` (google/e3d_lstm): a token is one (slice, row, column) position of one memory, its features the
  M channels (the TensorFlow tensors are channel-last), the memories concatenated along time; a (2, k, k)
  convolution pads TensorFlow's ``same`` way, one zero slice after the window, so that its two output
  slices differ (the first sees both input slices, the second only the later one).

The two variants share every weight. Under OpenSTL's protocol the default is ``openstl`` (the published row's
model, checked against v0.3.0's code); under the SRVP protocol it is ``authors``.

Under the SRVP protocol (presets ``paper``, ``quick``, ``tiny``) the model keeps OpenSTL's form and loss with
the SRVP protocol's optimiser and schedule: the paper's encoder-forecaster does not suit the cell, whose input
is a window of frames and whose recall reads every earlier memory of its own layer (an encoder's memories
would have to cross into a forecaster with other weights). ``paper`` keeps OpenSTL's 4 x 128, 4x4 patches:
on full-resolution 64x64 frames the recall would compare 8,192 positions with up to 155,648 per layer. The
small presets (``quick``, ``tiny`` and their OpenSTL twins) use 8x8 patches, replicate-padding frames whose
sides 8 does not divide (100x100 Human3.6M frames) and cropping the predictions back.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench import presets
from vpbench.errors import UserError
from vpbench.losses import LossContext, full_precision, register_loss, wide
from vpbench.models.convlstm import FORGET_BIAS
from vpbench.models.layers.encoder_forecaster import RecurrentCell, State
from vpbench.models.layers.multiframe import pad_to_multiple
from vpbench.models.layers.openstl_stack import (
    TEST_SAMPLING,
    RecurrentStack,
    mse_all_frames_loss,
    sampling_probabilities,
)
from vpbench.models.registry import register_model

WINDOW = 2  # time slices per layer input (OpenSTL's and the authors' window_length, window_stride 1)
VARIANTS = ("openstl", "authors")


class WindowConv(nn.Module):
    """A bias-free 3D convolution over a window, "same" in space: [B, C_in, 2, h, w] -> [B, C_out, 2, h, w].

    Time kernel 2: ``openstl`` convolves without time padding and repeats the one output slice (OpenSTL's
    ``tf_Conv3d``, a nearest resize); ``authors`` pads one zero slice after the window (TensorFlow's
    ``same``). Time kernel 1 is the same in both."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, time_kernel: int = WINDOW,
                 variant: str = "openstl") -> None:
        super().__init__()
        self.variant = variant
        self.conv = nn.Conv3d(in_channels, out_channels, (time_kernel, kernel_size, kernel_size),
                              padding=(0, kernel_size // 2, kernel_size // 2), bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pad = self.conv.kernel_size[0] - 1
        if self.variant == "authors":
            return self.conv(F.pad(x, (0, 0, 0, 0, 0, pad)))
        return self.conv(x).expand(-1, -1, x.shape[2], -1, -1)


def attend(query: Tensor, memory: Tensor) -> Tensor:
    """softmax(Q K^T) V with K = V = memory, unscaled: query [B, n, M], memory [B, m, M] -> [B, n, M]."""
    weights = torch.softmax(torch.einsum("bxc,byc->bxy", query, memory), dim=2)
    return torch.einsum("bxy,byc->bxc", weights, memory)


class Eidetic3DLSTMCell(RecurrentCell):
    """One E3D-LSTM layer (module docstring) with the RecurrentCell API.

    States hold a window of two slices with the slices folded into the channels: h, c and the zigzag memory
    m are [B, M * 2, h, w], channel 2j + s being channel j of slice s (``hidden`` is M * 2); ``history`` is
    C_{<t}, every earlier c concatenated on channels, the initial zeros first [B, n * M * 2, h, w]; the bottom
    layer (``reads_frames``) also keeps the previous input frame, ``previous`` [B, C_in, h, w]. Its input
    ``x`` is the frame [B, C_in, h, w] (bottom layer) or the hidden state of the layer below [B, C_in * 2, h, w];
    ``input_conv`` leaves it as it is, the window's convolution needing the previous frame too.
    """

    state_names = ("h", "c")
    memory = "m"

    def __init__(self, in_channels: int, hidden: int, kernel_size: int, grid: Sequence[int], *,
                 reads_frames: bool, variant: str = "openstl") -> None:
        super().__init__(in_channels, WINDOW * hidden, kernel_size)
        if variant not in VARIANTS:
            raise UserError(f"invalid value model.variant={variant!r}: must be {' or '.join(VARIANTS)}")
        self.channels, self.reads_frames, self.variant = hidden, reads_frames, variant
        conv = functools.partial(WindowConv, kernel_size=kernel_size, variant=variant)
        self.x_conv = conv(in_channels, 7 * hidden)  # [i, g, r, o, i', g', f']
        self.h_conv = conv(hidden, 4 * hidden)  # [i, g, r, o]
        self.m_conv = conv(hidden, 4 * hidden)  # [i', f', g', m] from M
        self.co_conv = conv(hidden, hidden)  # W_co on C_t
        self.mo_conv = conv(hidden, hidden)  # W_mo on M'_t
        self.fuse = WindowConv(2 * hidden, hidden, 1, time_kernel=1)  # W_111 on [C_t, M'_t]
        self.norm = nn.LayerNorm([hidden, WINDOW, *grid])  # of C_{t-1} + RECALL

    def init_state(self, like: Tensor) -> State:
        b, _, h, w = like.shape
        state = {**super().init_state(like), "history": like.new_zeros(b, 0, h, w)}
        if self.reads_frames:
            state["previous"] = like.new_zeros(b, self.in_channels, h, w)
        return state

    def input_conv(self, x: Tensor) -> Tensor:
        return x

    def _window(self, x: Tensor, state: State) -> Tensor:
        """The layer's input window [B, C_in, 2, h, w]: (previous frame, frame), or the hidden state below."""
        if self.reads_frames:
            return torch.stack([state["previous"], x], dim=2)
        return x.unflatten(1, (self.in_channels, WINDOW))

    def recall(self, r: Tensor, history: Tensor) -> Tensor:
        """RECALL(R_t, C_{<t}): r [B, M, 2, h, w], history [B, n * M * 2, h, w] -> [B, M, 2, h, w]."""
        b, m = r.shape[:2]
        if self.variant == "openstl":  # raw reshapes of the channel-first tensors
            return attend(r.reshape(b, -1, m), history.reshape(b, -1, m)).reshape(r.shape)
        query = r.flatten(2).transpose(1, 2)  # [B, 2 h w, M]: a token per position, its channels as features
        memory = history.unflatten(1, (-1, m, WINDOW)).movedim(2, -1).reshape(b, -1, m)  # [B, n 2 h w, M]
        return attend(query, memory).transpose(1, 2).reshape(r.shape)

    def step(self, xp: Tensor, state: State, carry: State) -> State:
        def window(t: Tensor) -> Tensor:  # [B, M * 2, h, w] -> [B, M, 2, h, w]
            return t.unflatten(1, (self.channels, WINDOW))

        xi, xg, xr, xo, xi2, xg2, xf2 = self.x_conv(self._window(xp, state)).chunk(7, dim=1)
        hi, hg, hr, ho = self.h_conv(window(state["h"])).chunk(4, dim=1)
        history = torch.cat([state["history"], state["c"]], dim=1)
        recalled = self.recall(torch.sigmoid(xr + hr), history)
        c = self.norm(window(state["c"]) + recalled) + torch.sigmoid(xi + hi) * torch.tanh(xg + hg)
        mi, mf, mg, mm = self.m_conv(window(carry["m"])).chunk(4, dim=1)
        m = torch.sigmoid(xf2 + mf + FORGET_BIAS) * torch.tanh(mm) + torch.sigmoid(xi2 + mi) * torch.tanh(xg2 + mg)
        o = torch.tanh(xo + ho + self.co_conv(c) + self.mo_conv(m))
        h = torch.tanh(self.fuse(torch.cat([c, m], dim=1))) * torch.sigmoid(o)
        # carry["m"] stays as it came: the cell hands on the memory it received (module docstring).
        new = {"h": h.flatten(1, 2), "c": c.flatten(1, 2), "history": history}
        if self.reads_frames:
            new["previous"] = xp
        return new


def e3dlstm_layers(in_channels: int, hidden: int, layers: int, kernel_size: int, grid: Sequence[int], *,
                   variant: str) -> list[RecurrentCell]:
    """L Eidetic 3D LSTM layers of M channels, the bottom one reading frames."""
    return [Eidetic3DLSTMCell(in_channels if i == 0 else hidden, hidden, kernel_size, grid, reads_frames=i == 0,
                              variant=variant) for i in range(layers)]


class E3DLSTM(RecurrentStack):
    """E3D-LSTM in OpenSTL's stack (module docstring); ``variant``: ``openstl`` or ``authors``.

    Frames whose sides the patch does not divide are replicate-padded at the bottom and right, and the
    predictions cropped back (the small presets' 8x8 patches on 100x100 frames): the stack's keywords and
    outputs are :class:`RecurrentStack`'s, at the frames' own size. Shapes: frames [B, T_in, C, H, W]."""

    def __init__(self, *, in_channels: int = 1, img_size: Sequence[int] = (64, 64), patch_size: int = 4,
                 hidden: int = 128, layers: int = 4, kernel_size: int = 5, variant: str = "openstl") -> None:
        padded = [side + -side % patch_size for side in img_size]
        super().__init__(functools.partial(e3dlstm_layers, variant=variant), in_channels=in_channels,
                         img_size=padded, patch_size=patch_size, hidden=hidden, layers=layers,
                         kernel_size=kernel_size)

    def forward(self, frames: Tensor, horizon: int, *, targets: Tensor | None = None,
                sampling: tuple[float, float] = TEST_SAMPLING, all_frames: bool = False,
                memory: Tensor | None = None) -> Tensor:
        def padded(x: Tensor) -> Tensor:
            return pad_to_multiple(x.flatten(0, 1), self.patch_size).unflatten(0, x.shape[:2])

        h, w = frames.shape[-2:]
        out = super().forward(padded(frames), horizon, targets=None if targets is None else padded(targets),
                              sampling=sampling, all_frames=all_frames, memory=memory)
        return out[..., :h, :w]


@register_loss("mse_l1_all_frames")
def mse_l1_all_frames_loss(model: nn.Module, inputs: Tensor, targets: Tensor,
                           context: LossContext | None = None) -> tuple[Tensor, Tensor]:
    """E3D-LSTM's loss in OpenSTL: in training, MSE + L1 over every frame the stack predicts (frames 2..T), with
    scheduled sampling (``train.sampling``); in evaluation, the MSE of the predicted frames (as
    ``mse_all_frames``; OpenSTL validates on that MSE)."""
    context = context or LossContext()
    if not model.training:
        return mse_all_frames_loss(model, inputs, targets, context)
    horizon = targets.shape[1]
    sampling = sampling_probabilities(context.step, context.train)
    out = model(inputs, horizon, targets=targets, sampling=sampling, all_frames=True)
    truth = torch.cat([inputs, targets], dim=1)[:, 1:]
    with full_precision(out.device):
        out_wide, truth_wide = wide(out), wide(truth)
        loss = F.mse_loss(out_wide, truth_wide) + F.l1_loss(out_wide, truth_wide)
    return loss, out[:, -horizon:].detach().clamp(0, 1)


def _recipe(preset: str, lr: float | None, stop: int, rate: float) -> dict[str, Any]:
    """The protocol's recipe at ``preset`` with E3D-LSTM's loss and linear scheduled sampling."""
    return {**presets.protocol_recipe(preset), "loss": "mse_l1_all_frames", **({} if lr is None else {"lr": lr}),
            "sampling": "linear", "sampling_stop_iter": stop, "sampling_changing_rate": rate}


# configs/mmnist/E3DLSTM.py: lr 1e-4; scheduled sampling ends at step 50,000 of 125,000 (40%); the shorter runs
# end it at the same fraction of their steps (openstl-quick: 100, quick: 200, tiny: 4).
RECIPES = {
    "openstl": _recipe("openstl", 1.0e-4, 50000, 2.0e-5),
    "openstl-quick": _recipe("openstl-quick", 3.0e-3, 40, 0.025),
    "openstl-tiny": _recipe("openstl-tiny", 3.0e-3, 2, 0.5),
    "paper": _recipe("paper", None, 50000, 2.0e-5),  # the authors' schedule too; the dataset's rate
    "quick": _recipe("quick", None, 80, 0.0125),
    "tiny": _recipe("tiny", None, 2, 0.5),
}
# 4x4 patches at full scale (OpenSTL's); 8x8 at the small scales: the recall compares every position of the window
# with every position of every earlier memory, (2 h w)^2 t products at step t, 16 times fewer than on 4x4 patches.
SIZES = {"full": {"hidden": 128, "layers": 4, "kernel_size": 5, "patch_size": 4},
         "quick": {"hidden": 16, "layers": 2, "kernel_size": 3, "patch_size": 8},
         "tiny": {"hidden": 4, "layers": 1, "kernel_size": 3, "patch_size": 8}}
DEFAULTS = {name: {**SIZES[preset.scale], "variant": "openstl" if preset.protocol == "openstl" else "authors"}
            for name, preset in presets.PRESETS.items()}
# The published row (OpenSTL's docs/en/model_zoos/video_benchmarks.md; MSE and MAE per frame on [0, 1]).
REFERENCES = {
    "openstl-mmnist-200": {"mse": 35.97, "mae": 78.28, "ssim": 0.9320, "psnr": 21.11, "params": 51.0e6,
                           "flops": 298.9e9, "fps": 18},
    "openstl-mmnist-2000": {"mse": 24.07, "mae": 77.49, "ssim": 0.9436, "psnr": 23.19, "params": 51.0e6,
                            "flops": 298.9e9, "fps": 18},
}
register_model("e3dlstm", label="E3D-LSTM", tags=("openstl",), rank=170, references=REFERENCES, defaults=DEFAULTS,
               recipe=RECIPES)(E3DLSTM)
