"""The RNN encoder-forecaster of the paper (Fig. 1, Sec. 3.1), generic over its recurrent cell.

The encoder reads the N input frames X_1..X_t through L recurrent layers; the forecaster (L layers
with their own weights) starts from the encoder's final states, takes X_t as its first input and then
its own previous prediction, and a CNN output layer turns the hidden states of all L layers into the
next frame. The only thing that differs between the RNN rows of the paper's tables is the cell.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from vpbench.errors import UserError

State = dict[str, Any]

# (in_channels, hidden, layers, kernel_size, grid, **cell options) -> the cells of one stack
LayerFactory = Callable[..., Sequence["RecurrentCell"]]


class RecurrentCell(nn.Module):
    """One recurrent layer of the encoder-forecaster.

    A cell declares what it carries:
      * ``state_names``: its own state between time steps, all of shape [B, hidden, h, w];
        ``"h"`` is the hidden state, which is also the layer's output.
      * ``memory``: the name of a memory flowing in a zigzag (PredRNN's spatiotemporal memory):
        up through the layers within a step, and from the top layer at t to the bottom layer at t+1.
      * ``signals``: other per-step values passed upward through ``carry`` (e.g. MIM's differences).

    ``step`` is split so that input convolutions can be batched over time: ``input_conv(x)`` holds
    everything computed from x alone, ``step(xp, state, carry)`` the recurrence, with xp = input_conv(x).
    """

    state_names: tuple[str, ...] = ("h",)
    memory: str | None = None
    signals: tuple[str, ...] = ()

    def __init__(self, in_channels: int, hidden: int, kernel_size: int) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise UserError(f"kernel_size must be odd to keep the frame size, got {kernel_size}")
        self.in_channels, self.hidden, self.kernel_size = in_channels, hidden, kernel_size

    def init_state(self, like: Tensor) -> State:
        """Zero state for a batch shaped like ``like`` [B, C, h, w]."""
        b, _, h, w = like.shape
        return {name: like.new_zeros(b, self.hidden, h, w) for name in self.state_names}

    def input_conv(self, x: Tensor) -> Tensor:
        """The part of the step computed from the input alone. x: [B, C_in, h, w]."""
        raise NotImplementedError

    def step(self, xp: Tensor, state: State, carry: State) -> State:
        """One time step: returns the new state; may update ``carry`` in place."""
        raise NotImplementedError


def patchify(frames: Tensor, patch: int) -> Tensor:
    """Space-to-depth: [B, T, C, H, W] -> [B, T, C*p*p, H/p, W/p] (PredRNN's reshape_patch)."""
    if patch == 1:
        return frames
    b, t, c, h, w = frames.shape
    x = frames.reshape(b, t, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 1, 2, 4, 6, 3, 5).reshape(b, t, c * patch * patch, h // patch, w // patch)


def unpatchify(x: Tensor, patch: int) -> Tensor:
    """Inverse of :func:`patchify`."""
    if patch == 1:
        return x
    b, t, cpp, hp, wp = x.shape
    c = cpp // (patch * patch)
    x = x.reshape(b, t, c, patch, patch, hp, wp).permute(0, 1, 2, 5, 3, 6, 4)
    return x.reshape(b, t, c, hp * patch, wp * patch)


def step_layers(layers: Sequence[RecurrentCell], x: Tensor | None, states: list[State], carry: State,
                xp0: Tensor | None = None) -> list[State]:
    """One time step through a stack of cells (time-major order): layer 0 reads x (or its input
    convolution ``xp0``, when given), each layer above the hidden state of the one below. The zigzag
    memory stays in ``carry``; per-step signals sent up do not cross time steps."""
    memories = {cell.memory for cell in layers}
    for name in [k for k in carry if k not in memories]:
        del carry[name]
    new_states = []
    for i, (cell, state) in enumerate(zip(layers, states)):
        xp = xp0 if (i == 0 and xp0 is not None) else cell.input_conv(x)
        state = cell.step(xp, state, carry)
        new_states.append(state)
        x = state["h"]
    return new_states


def check_patch(img_size: Sequence[int], patch_size: int) -> tuple[int, int]:
    """Frame size after patching; a clear error when the patch does not tile the frame."""
    h, w = img_size
    if patch_size < 1 or h % patch_size or w % patch_size:
        raise UserError(
            f"patch_size {patch_size} does not divide the {h}x{w} frames; choose a divisor of both sides"
        )
    return h // patch_size, w // patch_size


class EncoderForecaster(nn.Module):
    """Encoder (L layers) -> forecaster (L layers) -> 3x3 conv + sigmoid over all L hidden states.

    Subclasses (SRVP) add features to the output layer through :meth:`prepare` (computed once per
    sequence from the inputs and the encoder's outputs) and :meth:`readout` (one per forecast step).
    """

    def __init__(
        self,
        make_layers: LayerFactory,
        *,
        in_channels: int = 1,
        img_size: Sequence[int] = (64, 64),
        patch_size: int = 1,
        hidden: int = 128,
        layers: int = 4,
        kernel_size: int = 5,
        extra_out_channels: int = 0,
    ) -> None:
        super().__init__()
        if hidden < 1 or layers < 1:
            raise UserError(f"hidden and layers must be positive, got hidden={hidden}, layers={layers}")
        self.patch_size = patch_size
        self.grid = check_patch(img_size, patch_size)
        self.frame_channels = in_channels * patch_size**2
        self.encoder = nn.ModuleList(make_layers(self.frame_channels, hidden, layers, kernel_size, self.grid))
        self.forecaster = nn.ModuleList(make_layers(self.frame_channels, hidden, layers, kernel_size, self.grid))
        self.hidden_channels = sum(cell.hidden for cell in self.forecaster)
        # Output layer (Eq. 11 without F1, F2): conv over the concatenated hidden states of all layers.
        self.output = nn.Sequential(
            nn.Conv2d(self.hidden_channels + extra_out_channels, self.frame_channels, 3, padding=1),
            nn.Sigmoid(),
        )
        # Without zigzag memory or upward signals, layer l at t needs only layer l at t-1 and
        # layer l-1 at t: the encoder can then run layer by layer and batch its input convolutions.
        self.layer_major = not any(c.memory or c.signals for c in self.encoder)

    # -- hooks for subclasses --------------------------------------------------------------------
    def prepare(self, x: Tensor, enc_out: Tensor) -> Any:
        """Per-sequence context for :meth:`readout`. x: [B, N, C, h, w], enc_out: [B, N, M, h, w]."""
        return None

    def readout(self, hiddens: list[Tensor], context: Any) -> Tensor:
        """Next (patched) frame from the forecaster's hidden states [B, M, h, w] of all layers."""
        return self.output(torch.cat(hiddens, dim=1))

    # -- recurrence ------------------------------------------------------------------------------
    def _init(self, layers: nn.ModuleList, x0: Tensor) -> tuple[list[State], State]:
        states: list[State] = []
        carry: State = {}
        for cell in layers:
            like = x0.new_zeros(x0.shape[0], cell.hidden, *x0.shape[2:])
            states.append(cell.init_state(like))
            if cell.memory and cell.memory not in carry:
                carry[cell.memory] = like.new_zeros(like.shape)
        return states, carry

    @staticmethod
    def _batched_input_conv(cell: RecurrentCell, x: Tensor) -> Tensor:
        """input_conv over all time steps at once: [B, T, C, h, w] -> [B, T, C', h, w]."""
        return cell.input_conv(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    def encode(self, x: Tensor) -> tuple[list[State], State, Tensor]:
        """Run the encoder over x [B, N, C, h, w]: final states, memory, top-layer outputs [B, N, M, h, w]."""
        states, carry = self._init(self.encoder, x[:, 0])
        if self.layer_major:
            seq = x
            for i, cell in enumerate(self.encoder):
                xp = self._batched_input_conv(cell, seq)
                state, outs = states[i], []
                # unbind, not seq[:, t]: indexing backpropagates through a zero-filled copy of the whole
                # sequence per step, unbind through one stack.
                for xp_t in xp.unbind(1):
                    state = cell.step(xp_t, state, carry)
                    outs.append(state["h"])
                states[i], seq = state, torch.stack(outs, dim=1)
            return states, carry, seq
        xp0 = self._batched_input_conv(self.encoder[0], x)
        outs = []
        for x_t, xp_t in zip(x.unbind(1), xp0.unbind(1)):
            states = step_layers(self.encoder, x_t, states, carry, xp_t)
            outs.append(states[-1]["h"])
        return states, carry, torch.stack(outs, dim=1)

    def forward(self, frames: Tensor, horizon: int) -> Tensor:
        """frames: [B, T_in, C, H, W] in [0, 1] -> predictions [B, horizon, C, H, W] in [0, 1]."""
        x = patchify(frames, self.patch_size)
        states, carry, enc_out = self.encode(x)
        context = self.prepare(x, enc_out)
        z, preds = x[:, -1], []
        for _ in range(horizon):
            states = step_layers(self.forecaster, z, states, carry)
            z = self.readout([s["h"] for s in states], context)
            preds.append(z)
        return unpatchify(torch.stack(preds, dim=1), self.patch_size)
