"""The trainer's hook for injected randomness: ``train_on_batch(..., uniform=...)`` (``fit``'s ``uniform``) is where
every model's schedule coins come from (``vpbench.losses.draw_uniform``), whatever the model."""
from __future__ import annotations

import torch
from torch import nn

from vpbench.harness.steps import train_on_batch
from vpbench.losses import draw_uniform


def test_a_loss_draws_from_the_trainers_source_and_only_inside_the_step() -> None:
    model = nn.Linear(1, 1)
    seen: list[torch.Tensor] = []

    def loss_fn(net, x, y, context):
        seen.append(draw_uniform((2, 3)))
        return net(x).square().mean(), x

    def injected(shape: tuple[int, ...]) -> torch.Tensor:
        return torch.full(shape, 0.25, dtype=torch.float64)

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train_on_batch(model, loss_fn, optimizer, torch.ones(4, 1), torch.ones(4, 1), {}, 0, uniform=injected)
    assert torch.equal(seen[0], torch.full((2, 3), 0.25, dtype=torch.float64))
    torch.manual_seed(0)
    outside = draw_uniform((2, 3))  # the run's RNG again once the step is over
    torch.manual_seed(0)
    assert torch.equal(outside, torch.rand((2, 3), dtype=torch.float64))
    train_on_batch(model, loss_fn, optimizer, torch.ones(4, 1), torch.ones(4, 1), {}, 1)
    assert not torch.equal(seen[1], seen[0]) and ((seen[1] >= 0) & (seen[1] < 1)).all()
