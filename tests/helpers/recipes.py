"""Recipe goldens: vpbench's trainer (``vpbench.harness.trainer.fit``, what ``bench run`` trains with) run over the
batches a reference's own training code trained on, step by step.

A recipe golden (``tests/golden/recipe_*.pt``, written by ``tools/golden/``'s ``*_recipes.py``) holds the
reference's initial weights, its batches (uint8 [epochs, batches, B, T, C, H, W]), the random draws its training
made, and per optimiser step the rate it used, its loss and its weights after the step. :func:`train_like_bench`
trains vpbench's model on those batches with a ``train`` recipe and returns the same per step; the draws are given
to the trainer through its ``uniform`` hook.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from helpers.parity import assert_close, sketch
from vpbench.datasets import DataSpec, SequenceSource
from vpbench.harness.loggers import Tracker
from vpbench.harness.loggers.base import Logger
from vpbench.harness.trainer import Runtime, fit


class GoldenBatches(SequenceSource):
    """The golden's batches, epoch by epoch in its order (uint8 [epochs, batches, B, T, C, H, W]); the first
    batch is also the validation split."""

    def __init__(self, batches: Tensor, input_frames: int) -> None:
        self.batches = batches.numpy()
        _, _, _, frames, channels, height, width = self.batches.shape
        self.spec = DataSpec("golden", input_frames, frames - input_frames, channels, height, width)
        self.provenance = {}

    def batches_per_epoch(self, batch_size: int) -> int:
        assert batch_size == self.batches.shape[2], "the recipe's batch size is the golden's"
        return self.batches.shape[1]

    def train_batch(self, epoch: int, index: int, batch_size: int) -> np.ndarray:
        return self.batches[epoch, index]

    def split(self, name: str) -> np.ndarray:
        return self.batches[0, 0]


class Float64(nn.Module):
    """``model`` in float64: the trainer hands the frames over in float32 (uint8 / 255), the reference's were
    the same values in float64."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.double()

    def forward(self, frames: Tensor, horizon: int, **kwargs: Any) -> Any:
        kwargs = {k: v.double() if isinstance(v, Tensor) else v for k, v in kwargs.items()}
        return self.model(frames.double(), horizon, **kwargs)


@dataclass
class StepRecorder(Logger):
    """A logger of the trainer's steps: the rate each step used, its loss and the model's weights after it."""

    model: nn.Module
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    weights: list[dict[str, Tensor]] = field(default_factory=list)

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        if "train/loss" in values:
            self.lrs.append(values["train/lr"])
            self.losses.append(values["train/loss"])
            self.weights.append({n: p.detach().clone() for n, p in self.model.state_dict().items()})

    def image(self, tag: str, picture: np.ndarray, step: int) -> None:
        pass

    def framewise(self, values: Mapping[str, np.ndarray]) -> None:
        pass

    def close(self) -> None:
        pass


def train_like_bench(model: nn.Module, golden: Mapping[str, Any], train: Mapping[str, Any],
                     draws: Callable[[int, tuple[int, ...]], Tensor] | None = None) -> StepRecorder:
    """``fit`` of ``model`` (float64) on the golden's batches under the recipe ``train``; ``draws(step, shape)``: the
    uniform draws the loss asks for at optimiser step ``step`` (the trainer's own when None). The recorder holds
    ``model``'s own weights (its names, not the float64 wrapper's)."""
    recorder = StepRecorder(model)
    source = GoldenBatches(golden["batches"], golden["config"]["input_frames"])
    kwargs = {} if draws is None else {"uniform": lambda shape: draws(len(recorder.losses), shape)}
    outcome = fit(Float64(model), source, {**train, "num_workers": 0}, None, runtime=Runtime(torch.device("cpu")),
                  seed=0, log=lambda line: None, name="golden", identity={}, tracker=Tracker([recorder], print),
                  **kwargs)
    assert outcome.status == "finished", outcome.message
    return recorder


def assert_steps_match(recorder: StepRecorder, golden: Mapping[str, Any],
                       to_reference: Callable[[Mapping[str, Tensor]], Mapping[str, Tensor]],
                       skip: set[str] = frozenset()) -> None:
    """Every step's rate, loss and weights (by the reference's names, less ``skip``; their sketches where the golden
    holds sketches) equal the golden's."""
    steps = len(golden["loss"])
    assert len(recorder.losses) == steps, f"{len(recorder.losses)} optimiser steps, the reference took {steps}"
    assert_close(torch.tensor(recorder.lrs, dtype=torch.float64), golden["lr"], "learning rates", 1e-15)
    assert_close(torch.tensor(recorder.losses, dtype=torch.float64), golden["loss"], "losses")
    sketched = "weight_sketches" in golden
    for step, (ours, theirs) in enumerate(zip(recorder.weights, golden["weight_sketches" if sketched else "weights"])):
        mapped = to_reference(ours)
        if sketched:
            mapped = sketch({name: mapped[name] for name in theirs}, golden["config"]["sketch_seed"])
        for name in sorted(set(theirs) - skip):
            assert_close(mapped[name], theirs[name], f"step {step + 1}: {name}")
