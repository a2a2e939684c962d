"""The optimiser steps of one batch under a model's recipe: what the trainer runs for every batch, and what the
timings time (one batch of a recipe on a random batch, outside a run).

Most recipes take one step per batch. A recipe with ``train.window_frames`` trains on every window of that many
consecutive frames of the batch's sequences in turn, one optimiser step per window, as DMVFN's references do;
``train.window_grads`` says when the gradients are zeroed: before each window (``reset``, the DMVFN authors'
``Model.train``) or once per batch, so that each window's step follows the gradients summed over the windows so
far (``accumulate``, OpenSTL v0.3.0's ``DMVFN.train_one_epoch``).

A recipe with ``train.cpu_channels_last`` keeps the convolution weights in channels-last layout when it runs on a
CPU (:func:`place`): oneDNN's convolutions then run in that layout, measured faster for some models (README:
Performance, "The quick preset").
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from vpbench.datasets import DataSpec
from vpbench.environment import flush_denormals
from vpbench.errors import UserError
from vpbench.harness.recipes import make_optimizer
from vpbench.losses import LossContext, LossFn, Uniform, drawing_from, get_loss, standard_uniform
from vpbench.metrics.cost import dummy_batch

CHANNELS_LAST = {nn.Conv2d: torch.channels_last, nn.ConvTranspose2d: torch.channels_last,
                 nn.Conv3d: torch.channels_last_3d, nn.ConvTranspose3d: torch.channels_last_3d}


def place(model: nn.Module, device: torch.device, train: Mapping[str, Any]) -> nn.Module:
    """``model`` moved to ``device``, its convolution weights in channels-last layout on a CPU when the recipe
    ``train`` asks for it (``cpu_channels_last``); the values are unchanged."""
    model.to(device)
    if device.type == "cpu" and train.get("cpu_channels_last"):
        for module in model.modules():
            layout = CHANNELS_LAST.get(type(module))
            if layout is not None:
                module.weight.data = module.weight.data.contiguous(memory_format=layout)
    return model


def sequence_windows(inputs: Tensor, targets: Tensor, frames: int | None) -> list[tuple[Tensor, Tensor]]:
    """The (inputs, targets) pairs a batch trains on: the batch itself when ``frames`` is None; otherwise every
    window of ``frames`` consecutive frames of the sequences (inputs then targets), its first ``frames - 1`` the
    inputs and its last the target. inputs [B, T_in, ...], targets [B, T_out, ...] -> T_in + T_out - frames + 1
    pairs ([B, frames - 1, ...], [B, 1, ...])."""
    if frames is None:
        return [(inputs, targets)]
    sequence = torch.cat([inputs, targets], dim=1)
    if not 2 <= frames <= sequence.shape[1]:
        raise UserError(f"train.window_frames={frames} does not fit sequences of {sequence.shape[1]} frames; "
                        f"set it between 2 and {sequence.shape[1]}, or to null for one step per batch")
    return [(sequence[:, i : i + frames - 1], sequence[:, i + frames - 1 : i + frames])
            for i in range(sequence.shape[1] - frames + 1)]


def train_on_batch(net: nn.Module, loss_fn: LossFn, optimizer: torch.optim.Optimizer, inputs: Tensor,
                   targets: Tensor, train: Mapping[str, Any], step: int, *,
                   autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                   reduce: Callable[[Tensor], float] = lambda loss: loss.item(),
                   uniform: Uniform = standard_uniform) -> list[float]:
    """The optimiser steps of one batch (inputs [B, T_in, C, H, W], targets [B, T_out, C, H, W] in [0, 1]) under
    the recipe ``train``: one per window of :func:`sequence_windows` (the batch itself without
    ``window_frames``), with ``grad_clip`` before each. ``step``: the optimiser steps done before this batch
    (the loss's context). Returns each window's loss as ``reduce`` reads it (the trainer's: the mean over
    processes); a loss that is not finite ends the list, its step not taken. ``uniform``: where the loss's schedule
    coins come from (:func:`~vpbench.losses.draw_uniform`)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    reset = train.get("window_grads", "reset") == "reset"
    losses: list[float] = []
    optimizer.zero_grad(set_to_none=True)
    for i, (x, y) in enumerate(sequence_windows(inputs, targets, train.get("window_frames"))):
        if i and reset:
            optimizer.zero_grad(set_to_none=True)
        with autocast(), drawing_from(uniform):
            loss, _ = loss_fn(net, x, y, LossContext(step + i, train))
        losses.append(reduce(loss.detach()))
        if not math.isfinite(losses[-1]):
            break
        loss.backward()
        if train.get("grad_clip"):
            nn.utils.clip_grad_norm_(params, train["grad_clip"])
        optimizer.step()
    return losses


def train_step_fn(model: nn.Module, spec: DataSpec, train: Mapping[str, Any], device: torch.device,
                  batch: int, step: int = 0) -> Callable[[], None]:
    """One batch of the model's recipe on a random batch (optimiser included, every window of a windowed
    recipe), as the batch after ``step`` optimiser steps (for step-counted schedules such as scheduled
    sampling)."""
    flush_denormals()
    place(model, device, train)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return lambda: None
    optimizer = make_optimizer(params, train)
    loss_fn = get_loss(train["loss"])
    x, y = dummy_batch(spec, batch, device)

    def one_step() -> None:
        train_on_batch(model, loss_fn, optimizer, x, y, train, step)

    return one_step
