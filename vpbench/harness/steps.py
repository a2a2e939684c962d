"""One training step of a model's recipe on a random batch, outside a run: what the timings time."""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import nn

from vpbench.datasets import DataSpec
from vpbench.environment import flush_denormals
from vpbench.harness.recipes import make_optimizer
from vpbench.losses import LossContext, get_loss
from vpbench.metrics.cost import dummy_batch


def train_step_fn(model: nn.Module, spec: DataSpec, train: Mapping[str, Any], device: torch.device,
                  batch: int, step: int = 0) -> Callable[[], None]:
    """One training step of the model's recipe on a random batch (optimiser included), as the ``step``-th
    step of training (for step-counted schedules such as scheduled sampling)."""
    flush_denormals()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return lambda: None
    optimizer = make_optimizer(params, train)
    loss_fn = get_loss(train["loss"])
    x, y = dummy_batch(spec, batch, device)
    context = LossContext(step, train)

    def one_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss, _ = loss_fn(model, x, y, context)
        loss.backward()
        optimizer.step()

    return one_step
