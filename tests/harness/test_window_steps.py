"""Recipes that take one optimiser step per window of consecutive frames (``train.window_frames``), with the
gradients zeroed before each window (``reset``: DMVFN's authors) or once per batch (``accumulate``: OpenSTL
v0.3.0's DMVFN), against loops written as each reference writes them."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vpbench import config as cfg
from vpbench.datasets import build_dataset
from vpbench.errors import UserError
from vpbench.harness.steps import sequence_windows, train_on_batch
from vpbench.harness.trainer import Runtime, fit
from vpbench.losses import get_loss
from vpbench.models import build_model
from vpbench.store import RunDir


class LastFrameAffine(nn.Module):
    """The next frames as a * (the last input frame) + b: [B, T, C, H, W] -> [B, horizon, C, H, W]."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Parameter(torch.tensor(0.3)), nn.Parameter(torch.tensor(0.1))

    def forward(self, frames: torch.Tensor, horizon: int) -> torch.Tensor:
        return (self.a * frames[:, -1:] + self.b).expand(-1, horizon, -1, -1, -1)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 1, 4, 4, generator=g), torch.rand(2, 2, 1, 4, 4, generator=g)


def reference_loop(accumulate: bool) -> tuple[list[float], dict[str, torch.Tensor]]:
    """The references' loop over the windows (X_i, X_i+1) -> X_i+2: SGD with momentum, MSE."""
    model = LastFrameAffine()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    frames = torch.cat(batch(), dim=1)
    losses = []
    optimizer.zero_grad()
    for i in range(frames.shape[1] - 2):
        if not accumulate:
            optimizer.zero_grad()
        loss = F.mse_loss(model(frames[:, i : i + 2], 1), frames[:, i + 2 : i + 3])
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
    return losses, {k: v.detach() for k, v in model.state_dict().items()}


def vpbench_batch(train: dict) -> tuple[list[float], dict[str, torch.Tensor]]:
    model = LastFrameAffine()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    losses = train_on_batch(model, get_loss("mse"), optimizer, *batch(), {"loss": "mse", **train}, step=0)
    return losses, {k: v.detach() for k, v in model.state_dict().items()}


def test_windows_of_consecutive_frames():
    x, y = batch()
    windows = sequence_windows(x, y, 3)
    assert len(windows) == 3
    for i, (inputs, target) in enumerate(windows):
        frames = torch.cat([x, y], 1)
        assert torch.equal(inputs, frames[:, i : i + 2]) and torch.equal(target, frames[:, i + 2 : i + 3])
    assert sequence_windows(x, y, None) == [(x, y)]
    with pytest.raises(UserError, match="window_frames=6"):
        sequence_windows(x, y, 6)


@pytest.mark.parametrize("grads", ["reset", "accumulate"])
def test_one_step_per_window_as_the_reference(grads):
    losses, weights = vpbench_batch({"window_frames": 3, "window_grads": grads})
    expected_losses, expected = reference_loop(accumulate=grads == "accumulate")
    assert losses == pytest.approx(expected_losses, rel=1e-6)
    for name, value in expected.items():
        assert torch.allclose(weights[name], value, atol=1e-7), name


def test_the_two_protocols_train_differently_and_differ_from_one_step_per_batch():
    reset, accumulate, whole = (vpbench_batch(t)[1]["a"] for t in (
        {"window_frames": 3, "window_grads": "reset"}, {"window_frames": 3, "window_grads": "accumulate"}, {}))
    assert len({reset.item(), accumulate.item(), whole.item()}) == 3
    assert len(vpbench_batch({})[0]) == 1


def test_dmvfn_recipes_follow_each_reference():
    def train(preset):
        t = cfg.resolve(preset, "dmvfn", "mmnist")["train"]
        return t["window_frames"], t["window_grads"]

    assert train("openstl") == train("openstl-tiny") == (3, "accumulate")  # OpenSTL v0.3.0
    assert train("paper") == train("tiny") == (3, "reset")  # the authors'
    with pytest.raises(UserError, match="window_grads"):
        cfg.resolve("tiny", "dmvfn", "mmnist", sets={"train": {"window_grads": "sometimes"}})


def test_the_trainer_counts_a_step_per_window_and_steps_the_schedule_per_batch(tmp_path):
    config = cfg.resolve("tiny", "dmvfn", "mmnist", sets={
        "dataset": {"input_frames": 2, "output_frames": 2, "train_sequences": 4, "val_sequences": 1,
                    "test_sequences": 1},
        "train": {"epochs": 1, "batch_size": 2, "scheduler": "onecycle"},
        "model": {"features": [4], "scales": [1], "routing_hidden": 2}})
    source = build_dataset("mmnist", config["dataset"], None, 0)
    torch.manual_seed(0)
    model = build_model(config)
    run = RunDir(tmp_path)
    fit(model, source, config["train"], run, runtime=Runtime(torch.device("cpu")), seed=0, log=lambda _: None,
        name="dmvfn", identity={})
    last = run.load_torch("checkpoints/last.pt")
    assert last["step"] == 2 * 2  # 2 batches of 2 windows
    assert next(iter(last["optimizer"]["state"].values()))["step"].item() == 2 * 2
    assert last["schedule"]["last_epoch"] == 2  # one-cycle: once per batch
