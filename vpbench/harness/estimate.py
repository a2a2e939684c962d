"""How long a run will take, from a short measured training step: what ``bench run`` says before it trains.

A run's time is estimated as ``epochs x batches per epoch x training step`` plus the forward passes of
validation (every epoch) and test (once), each measured on a random batch of the run's training batch size (not
the evaluation's, 32 at quick, whose passes took two thirds of the estimate's own time for evaluation that is a few
percent of a run): a warm-up step, then the median of a few, with the number of threads the run will have. Model
building and data loading are not counted; the estimate is a guide, and the progress line corrects it as runs
finish.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

from vpbench.datasets import SequenceSource
from vpbench.harness.steps import place, train_step_fn
from vpbench.metrics.cost import dummy_batch, median_seconds
from vpbench.models import build_model

STEPS = 2  # timed training steps per model (after one warm-up)


def run_seconds(config: Mapping[str, Any], source: SequenceSource, device: torch.device, *,
                threads: int | None = None) -> float:
    """The estimated seconds of training and testing the run ``config`` on ``source``, with ``threads`` torch
    threads (default: as now)."""
    saved = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(config["seed"])
        train, spec = config["train"], source.spec
        model = place(build_model(config), device, train)
        batch = min(train["batch_size"], len(source.split("test")))
        x, _ = dummy_batch(spec, batch, device)
        model.eval()
        with torch.no_grad():
            forward = median_seconds(lambda: model(x, spec.output_frames), repeats=STEPS, device=device)
        evaluation = forward / batch * (train["epochs"] * len(source.split("val")) + len(source.split("test")))
        if not any(p.requires_grad for p in model.parameters()):
            return evaluation
        step = median_seconds(train_step_fn(model, spec, train, device, train["batch_size"]), repeats=STEPS,
                              device=device)
        return train["epochs"] * source.batches_per_epoch(train["batch_size"]) * step + evaluation
    finally:
        torch.set_num_threads(saved)


def makespan(seconds: list[float], slots: int) -> float:
    """The wall time of a queue of jobs of these durations (in queue order) on ``slots`` slots, each job taken
    by the slot that frees first."""
    ends = [0.0] * max(1, slots)
    for duration in seconds:
        ends[ends.index(min(ends))] += duration
    return max(ends) if seconds else 0.0
