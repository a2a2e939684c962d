"""CrevNet (Yu et al., *Efficient and Information-Preserving Future Frame Prediction and Beyond*, ICLR 2020), as
OpenSTL v0.3.0 builds and trains it (``openstl/models/crevnet_model.py``, ``openstl/modules/crevnet_modules.py``,
``openstl/methods/crevnet.py``, ``configs/mmnist/CrevNet.py``).

The model reads windows of three consecutive frames [B, C, 3, H, W]. A bijective autoencoder (space-to-depth and
i-RevNet blocks, :mod:`vpbench.models.layers.reversible_blocks`) encodes a window into a pair of
[B, 32 C, 3, H / 8, W / 8] features; a zigzag predictor of ``layers`` spatiotemporal ConvLSTM cells (3D
convolutions; a memory M passed up the layers and on to the next step, as PredRNN's) updates the pair, layer l
mixing its hidden state into one half through a sigmoid gate and swapping the halves; the autoencoder's inverse
decodes the pair into the next window (frames t + 1 .. t + 3 from frames t .. t + 2).

Prediction, as OpenSTL's: from zero states, the window of the last three input frames, then the decoded window with
its first two frames replaced by the last two input frames, then with its first replaced by the last input frame,
then decoded windows alone; each step predicts the third frame of its window. Training (loss ``crevnet``): every
window of the sequence read in turn (teacher forcing), the sum over steps of the MSE between the decoded window and
the true next one. OpenSTL outputs the first channel only (a bug for RGB); vpbench outputs every channel, and clamps
the output to [0, 1] with a straight-through gradient (fed back unclamped, as OpenSTL).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench import presets
from vpbench.errors import UserError
from vpbench.losses import LossContext, full_precision, register_loss, wide
from vpbench.models.layers.multiframe import pad_to_multiple
from vpbench.models.layers.output_range import clamp_straight_through
from vpbench.models.layers.reversible_blocks import Pair, ReversibleAutoencoder
from vpbench.models.registry import register_model

WINDOW = 3  # frames per window
State = tuple[list[Tensor], list[Tensor], Tensor]  # H and C of every layer; the zigzag memory M


class SpatioTemporalCell(nn.Module):
    """CrevNet's ST-ConvLSTM cell on [B, C, T, h, w] (3x3x3 convolutions with bias)::

        C' = sigma(f) C + sigma(i) tanh(g)             i, f, g = conv([X, H, C])
        M' = sigma(f') M + sigma(i') tanh(g')          i', f', g' = conv([X, M, C'])
        H' = sigma(conv([X, H, C', M'])) tanh(conv1x1([C', M']))
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gates = nn.Conv3d(3 * channels, 3 * channels, 3, padding=1)  # i, f, g
        self.memory_gates = nn.Conv3d(3 * channels, 3 * channels, 3, padding=1)  # i', f', g'
        self.output_gate = nn.Conv3d(4 * channels, channels, 3, padding=1)
        self.fuse = nn.Conv3d(2 * channels, channels, 1)

    def forward(self, x: Tensor, h: Tensor, c: Tensor, m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        i, f, g = self.gates(torch.cat([x, h, c], dim=1)).chunk(3, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        i, f, g = self.memory_gates(torch.cat([x, m, c], dim=1)).chunk(3, dim=1)
        m = torch.sigmoid(f) * m + torch.sigmoid(i) * torch.tanh(g)
        o = torch.sigmoid(self.output_gate(torch.cat([x, h, c, m], dim=1)))
        return o * torch.tanh(self.fuse(torch.cat([c, m], dim=1))), c, m


class ZigzagPredictor(nn.Module):
    """CrevNet's reversible predictor on a pair (x1, x2): for each layer l, (H_l, C_l, M) = cell_l(x1, H_l, C_l, M),
    g = sigmoid(conv1x1(H_l)), x2 = (1 - g) x2 + g H_l, then the halves swap."""

    def __init__(self, channels: int, layers: int) -> None:
        super().__init__()
        self.cells = nn.ModuleList(SpatioTemporalCell(channels) for _ in range(layers))
        self.mixers = nn.ModuleList(nn.Conv3d(channels, channels, 1) for _ in range(layers))

    def forward(self, pair: Pair, state: State) -> tuple[Pair, State]:
        (x1, x2), (hs, cs, m) = pair, state
        hs, cs = list(hs), list(cs)
        for layer, (cell, mixer) in enumerate(zip(self.cells, self.mixers)):
            hs[layer], cs[layer], m = cell(x1, hs[layer], cs[layer], m)
            g = torch.sigmoid(mixer(hs[layer]))
            x1, x2 = (1 - g) * x2 + g * hs[layer], x1
        return (x1, x2), (hs, cs, m)


class CrevNet(nn.Module):
    """CrevNet: :class:`~vpbench.models.layers.reversible_blocks.ReversibleAutoencoder` (``blocks`` per stage) and
    :class:`ZigzagPredictor` (``layers`` cells of 32 C channels: the autoencoder's half width). Frames whose sides
    do not divide by 8 are replicate-padded and the predictions cropped. Shapes: [B, T_in, C, H, W] (T_in >= 3) ->
    [B, horizon, C, H, W]; ``forward(frames, horizon, targets=...)`` returns the decoded windows of the whole
    sequence read with teacher forcing, [B, T_in + horizon - 3, C, 3, H, W] (window i: frames i + 1 .. i + 3)."""

    def __init__(self, *, in_channels: int = 1, layers: int = 8, blocks: Sequence[int] = (4, 5, 3)) -> None:
        super().__init__()
        if layers < 1 or len(blocks) != 3 or min(blocks) < 1:
            raise UserError(f"CrevNet needs layers >= 1 and blocks of three positive counts (its autoencoder's "
                            f"stages), got layers={layers}, blocks={list(blocks)}")
        self.autoencoder = ReversibleAutoencoder(in_channels, blocks)
        self.width = 32 * in_channels
        self.predictor = ZigzagPredictor(self.width, layers)

    def initial_state(self, pair: Pair) -> State:
        zeros = [torch.zeros_like(pair[0]) for _ in self.predictor.cells]
        return zeros, [torch.zeros_like(pair[0]) for _ in self.predictor.cells], torch.zeros_like(pair[0])

    def step(self, window: Tensor, state: State | None) -> tuple[Tensor, State]:
        """The next window [B, C, 3, H, W] from ``window`` and the state (None: zeros)."""
        pair = self.autoencoder.encode(window)
        pair, state = self.predictor(pair, state if state is not None else self.initial_state(pair))
        return self.autoencoder.decode(pair), state

    def forward(self, frames: Tensor, horizon: int, *, targets: Tensor | None = None) -> Tensor:
        if horizon < 1:
            raise UserError(f"horizon must be at least 1 frame, got {horizon}")
        if frames.shape[1] < WINDOW:
            raise UserError(f"CrevNet reads windows of {WINDOW} frames: it needs at least 3 input frames, "
                            f"got {frames.shape[1]}")
        height, width = frames.shape[-2:]
        x = frames if targets is None else torch.cat([frames, targets[:, :horizon]], dim=1)
        x = pad_to_multiple(x.flatten(0, 1), 8).unflatten(0, x.shape[:2]).transpose(1, 2)  # [B, C, T, H, W]
        if targets is not None:
            decoded, state = [], None
            for start in range(x.shape[2] - WINDOW):
                out, state = self.step(x[:, :, start:start + WINDOW], state)
                decoded.append(out)
            return torch.stack(decoded, dim=1)[..., :height, :width]
        window, state, preds = x[:, :, -WINDOW:], None, []
        for k in range(horizon):
            out, state = self.step(window, state)
            window = torch.cat([x[:, :, x.shape[2] - 2 + k:], out[:, :, 2 - k:]], dim=2) if k < 2 else out
            preds.append(window[:, :, -1])
        return clamp_straight_through(torch.stack(preds, dim=1)[..., :height, :width])


@register_loss("crevnet")
def crevnet_loss(model: nn.Module, inputs: Tensor, targets: Tensor,
                 context: LossContext | None = None) -> tuple[Tensor, Tensor]:
    """In training, OpenSTL's CrevNet loss: every window of the sequence read in turn, the sum over the steps of the
    MSE between the decoded window and the next true one; returns the third frames of the windows that end in the
    targets. In evaluation, the MSE of the predicted frames."""
    horizon = targets.shape[1]
    if not model.training:
        pred = model(inputs, horizon)
        with full_precision(pred.device):
            return F.mse_loss(wide(pred), wide(targets)), pred
    decoded = model(inputs, horizon, targets=targets)  # [B, S, C, 3, H, W]
    truth = torch.cat([inputs, targets], dim=1).transpose(1, 2).unfold(2, WINDOW, 1)  # [B, C, S + 1, H, W, 3]
    truth = truth.permute(0, 2, 1, 5, 3, 4)[:, 1:]
    with full_precision(decoded.device):
        loss = sum(F.mse_loss(wide(decoded[:, s]), wide(truth[:, s])) for s in range(decoded.shape[1]))
    return loss, clamp_straight_through(decoded[:, -horizon:, :, -1]).detach()


# OpenSTL's configs/mmnist/CrevNet.py: rnn_size 32 (32 C), 8 predictor layers; its model hard-codes the blocks.
FULL = {"layers": 8, "blocks": [4, 5, 3]}
CREVNET_PRESETS: dict[str, dict[str, Any]] = {
    "paper": FULL, "openstl": FULL,
    "quick": {"layers": 2, "blocks": [1, 2, 1]},
    "tiny": {"layers": 1, "blocks": [1, 1, 1]},
}
CREVNET_PRESETS.update({"openstl-quick": CREVNET_PRESETS["quick"], "openstl-tiny": CREVNET_PRESETS["tiny"]})


# quick: 4 epochs, not the preset's 3: after 3 its predictions faded to near-uniform frames (pixel std 0.33 of the
# ground truth's; MSE 2375.7, SSIM 0.436), after 4 0.66 (MSE 2322.4, SSIM 0.547; Moving MNIST, seed 0, 2026-12-07)
QUICK_EPOCHS = 4


def crevnet_recipe() -> dict[str, dict[str, Any]]:
    """Every preset: OpenSTL's (configs/mmnist/CrevNet.py): the ``crevnet`` loss, Adam (its method's two Adams over
    the predictor and the autoencoder, stepped together, are one), the one-cycle schedule stepped per batch, peak
    lr 5e-3, batch 16; the quick scale over 4 epochs (:data:`QUICK_EPOCHS`)."""
    recipes = {}
    for scale in ("full", "quick", "tiny"):
        openstl = presets.NAMES[("openstl", scale)]
        recipe = {**presets.protocol_recipe(openstl), "loss": "crevnet", "lr": 5.0e-3}
        if scale == "quick":
            recipe["epochs"] = QUICK_EPOCHS
        recipes[openstl] = recipe
        recipes[presets.NAMES[("srvp", scale)]] = {**recipe, "batch_size": 16} if scale == "full" else recipe
    return recipes


# OpenSTL v0.3.0's Moving MNIST table (docs/en/model_zoos/video_benchmarks.md), 200 epochs; no PSNR given. Its FLOPs
# are of a training forward at batch 16.
REFERENCES = {"openstl-mmnist-200": {"mse": 30.15, "mae": 86.28, "ssim": 0.9350, "params": 5.0e6, "flops": 270.7e9,
                                     "fps": 10}}
register_model("crevnet", label="CrevNet", tags=("openstl",), rank=207, defaults=CREVNET_PRESETS,
               recipe=crevnet_recipe(), references=REFERENCES)(CrevNet)
