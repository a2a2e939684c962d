"""Training recipes: the loss, optimiser and learning-rate schedule a model is trained with.

A recipe is a set of ``train.*`` keys (see the presets). The paper's recipe (BCE, RMSProp, cosine
annealing) is the default; a model declares another in its registry entry, and may register its
own loss here, so the trainer never special-cases a model.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench.errors import UserError

# (model, inputs [B, T_in, C, H, W], targets [B, T_out, C, H, W]) -> (loss, predictions)
LossFn = Callable[[nn.Module, Tensor, Tensor], tuple[Tensor, Tensor]]
_LOSSES: dict[str, LossFn] = {}


def register_loss(name: str) -> Callable[[LossFn], LossFn]:
    def add(fn: LossFn) -> LossFn:
        _LOSSES[name] = fn
        return fn

    return add


def get_loss(name: str) -> LossFn:
    if name not in _LOSSES:
        raise UserError(f"unknown loss {name!r}; known losses: {', '.join(_LOSSES)}")
    return _LOSSES[name]


def full_precision(device: torch.device):
    """A region outside autocast: losses are computed in float32 or wider (BCE is unsafe to autocast)."""
    return torch.autocast(device_type=device.type, enabled=False)


def wide(x: Tensor) -> Tensor:
    """x in float32, or in its own dtype when wider (a float64 model keeps a float64 loss)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


@register_loss("bce")
def bce_loss(model: nn.Module, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Binary cross-entropy on [0, 1] frames (paper Sec. 4.3); NaN when the prediction is not finite."""
    pred = model(inputs, targets.shape[1])
    with full_precision(pred.device):
        if not torch.isfinite(pred).all():  # BCE would raise on NaN; report divergence instead
            return pred.new_tensor(float("nan"), dtype=torch.float32), pred
        return F.binary_cross_entropy(wide(pred), wide(targets)), pred


@register_loss("mse")
def mse_loss(model: nn.Module, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Mean squared error on [0, 1] frames (SimVP's loss)."""
    pred = model(inputs, targets.shape[1])
    with full_precision(pred.device):
        return F.mse_loss(wide(pred), wide(targets)), pred


@register_loss("mse_l1_layers")
def mse_l1_layers_loss(model: nn.Module, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """MIMO-VP's loss: 10 * MSE + L1, averaged over the outputs of every decoder layer.

    The model returns them through ``model(inputs, horizon, all_layers=True)`` as [L, B, T_out, C, H, W]
    (the last is the prediction), so that DDP and torch.compile see one ordinary forward call."""
    try:
        layers = model(inputs, targets.shape[1], all_layers=True)
    except TypeError as err:
        if "all_layers" not in str(err):
            raise
        raise UserError("loss mse_l1_layers needs a model whose forward takes all_layers=True (MIMO-VP); "
                        "choose another train.loss") from None
    with full_precision(layers.device):
        layers32, targets32 = wide(layers), wide(targets).expand_as(layers)
        loss = 10 * F.mse_loss(layers32, targets32) + F.l1_loss(layers32, targets32)
    return loss, layers[-1]


def make_optimizer(params, config: Mapping[str, Any]) -> torch.optim.Optimizer:
    name, lr, wd = config["optimizer"], config["lr"], config.get("weight_decay", 0.0)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=config.get("momentum", 0.0), weight_decay=wd)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.get("momentum", 0.0), weight_decay=wd)
    return torch.optim.AdamW(params, lr=lr, weight_decay=wd)


class Schedule:
    """A learning-rate schedule and when it steps (after every batch or every epoch)."""

    def __init__(self, optimizer: torch.optim.Optimizer, config: Mapping[str, Any], steps_per_epoch: int):
        name, epochs = config.get("scheduler", "none"), max(1, config["epochs"])
        self.per_batch = name == "onecycle"
        if name == "cosine":  # stepped per epoch, as the official SRVP code
            t_max = config.get("t_max_epochs") or epochs
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=t_max, eta_min=config.get("eta_min", 0.0)
            )
        elif name == "onecycle":
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=config["lr"], total_steps=epochs * steps_per_epoch
            )
        else:
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)

    def after_batch(self) -> None:
        if self.per_batch:
            self.scheduler.step()

    def after_epoch(self) -> None:
        if not self.per_batch:
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)
