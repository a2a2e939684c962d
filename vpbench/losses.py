"""Training losses by name (``train.loss``): the paper's BCE, MSE, and those models register beside them.

A loss is ``fn(model, inputs, targets, context=None) -> (loss, predictions)``: it calls the model
itself, so that a model whose loss needs more than its predictions (every decoder layer's output,
the frames inside the input window, an auxiliary term) can ask for it through keyword arguments of
its forward, which DDP and ``torch.compile`` see as one ordinary call. ``context`` tells the loss
where training stands (the optimiser step, for schedules such as scheduled sampling) and the run's
``train`` options. Losses are computed outside autocast, in float32 or wider.

A model that brings its own loss registers it in its file with ``@register_loss``.
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench.errors import UserError

Uniform = Callable[[tuple[int, ...]], Tensor]  # shape -> float64 draws in [0, 1) on the CPU


def standard_uniform(shape: tuple[int, ...]) -> Tensor:
    """Uniform draws in [0, 1) of ``shape``, float64, from torch's default CPU generator: the one a run seeds and
    its checkpoints save, so that a resumed run draws what an uninterrupted one would."""
    return torch.rand(shape, dtype=torch.float64)


_UNIFORM: contextvars.ContextVar[Uniform] = contextvars.ContextVar("vpbench_uniform", default=standard_uniform)


def draw_uniform(shape: tuple[int, ...]) -> Tensor:
    """Uniform draws in [0, 1) of ``shape`` (float64, CPU) for a training schedule's coins (scheduled sampling,
    teacher forcing): from the source the trainer set around the loss (:func:`drawing_from`), else
    :func:`standard_uniform`. Models draw here, so that a test can give them a reference's draws without
    knowing the model."""
    return _UNIFORM.get()(shape)


@contextlib.contextmanager
def drawing_from(uniform: Uniform) -> Iterator[None]:
    """:func:`draw_uniform` returns ``uniform``'s draws inside the block (the recipe goldens inject a reference's
    draws this way, through ``fit(..., uniform=...)``; a run never does)."""
    token = _UNIFORM.set(uniform)
    try:
        yield
    finally:
        _UNIFORM.reset(token)


@dataclass(frozen=True)
class LossContext:
    """Where training stands: ``step`` optimiser steps done so far (0 in evaluation), and the ``train``
    options of the run."""

    step: int = 0
    train: Mapping[str, Any] = field(default_factory=dict)


LossFn = Callable[..., tuple[Tensor, Tensor]]  # (model, inputs, targets, context=None) -> (loss, predictions)
_LOSSES: dict[str, LossFn] = {}


def register_loss(name: str) -> Callable[[LossFn], LossFn]:
    def add(fn: LossFn) -> LossFn:
        if name in _LOSSES and _LOSSES[name] is not fn:
            raise UserError(f"loss name {name!r} is already taken; register it under another name")
        _LOSSES[name] = fn
        return fn

    return add


def get_loss(name: str) -> LossFn:
    if name not in _LOSSES:
        raise UserError(f"unknown loss {name!r}; known losses: {', '.join(_LOSSES)}")
    return _LOSSES[name]


def loss_names() -> list[str]:
    return list(_LOSSES)


def full_precision(device: torch.device):
    """A region outside autocast: losses are computed in float32 or wider (BCE is unsafe to autocast)."""
    return torch.autocast(device_type=device.type, enabled=False)


def wide(x: Tensor) -> Tensor:
    """x in float32, or in its own dtype when wider (a float64 model keeps a float64 loss)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


@register_loss("bce")
def bce_loss(model: nn.Module, inputs: Tensor, targets: Tensor,
             context: LossContext | None = None) -> tuple[Tensor, Tensor]:
    """Binary cross-entropy on [0, 1] frames (paper Sec. 4.3); NaN when the prediction is not finite."""
    pred = model(inputs, targets.shape[1])
    with full_precision(pred.device):
        if not torch.isfinite(pred).all():  # BCE would raise on NaN; report divergence instead
            return pred.new_tensor(float("nan"), dtype=torch.float32), pred
        probabilities = wide(pred)
        return F.binary_cross_entropy(probabilities, targets.to(probabilities.dtype)), pred


@register_loss("mse")
def mse_loss(model: nn.Module, inputs: Tensor, targets: Tensor,
             context: LossContext | None = None) -> tuple[Tensor, Tensor]:
    """Mean squared error on [0, 1] frames (SimVP's loss, and OpenSTL's protocol)."""
    pred = model(inputs, targets.shape[1])
    with full_precision(pred.device):
        return F.mse_loss(wide(pred), wide(targets)), pred


@register_loss("mse_raw")
def mse_raw_loss(model: nn.Module, inputs: Tensor, targets: Tensor,
                 context: LossContext | None = None) -> tuple[Tensor, Tensor]:
    """Mean squared error on the model's unbounded output (its forward's ``raw=True``), as OpenSTL and
    PredFormer's authors train; the predictions it returns are clamped to [0, 1] (and detached)."""
    pred = model(inputs, targets.shape[1], raw=True)
    with full_precision(pred.device):
        return F.mse_loss(wide(pred), wide(targets)), pred.detach().clamp(0, 1)
