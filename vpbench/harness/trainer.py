"""The training loop: one recipe-driven loop for every model, with validation and checkpoints.

Each epoch trains on freshly generated (or freshly shuffled) batches, validates on the fixed
validation split, writes a row of ``train_log.csv``, saves ``checkpoints/last.pt`` (everything
needed to resume: model, optimiser, schedule, RNG state, history) and, when the validation loss
improves, ``checkpoints/best.pt``. Resuming from ``last.pt`` reproduces an uninterrupted run exactly
on the CPU: training batches depend only on (seed, epoch, index) and the RNG state is restored.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from vpbench.datasets import EpochBatches, SequenceSource
from vpbench.environment import flush_denormals, flush_denormals_in_worker
from vpbench.harness import distributed
from vpbench.harness.distributed import Dist
from vpbench.harness.evaluate import split_batch
from vpbench.harness.images import strip
from vpbench.harness.loggers import Tracker
from vpbench.harness.recipes import Schedule, make_optimizer
from vpbench.harness.steps import train_on_batch
from vpbench.losses import LossContext, Uniform, get_loss, standard_uniform
from vpbench.metrics.frames import to_uint8
from vpbench.store import RunDir


@dataclass(frozen=True)
class Runtime:
    """How (not what) to train: device, precision, compilation and the process group."""

    device: torch.device
    precision: str = "fp32"  # "bf16": autocast to bfloat16 for training steps
    compile: bool = False
    dist: Dist = Dist()

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


@dataclass
class Outcome:
    """How training ended: ``finished`` or ``diverged`` (non-finite loss)."""

    status: str
    epochs_done: int
    best_epoch: int | None = None
    best_val_loss: float | None = None
    message: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)

    def record(self, row: dict[str, Any]) -> bool:
        """Add an epoch's log row; whether its validation loss is the best so far."""
        self.history.append(row)
        self.epochs_done = row["epoch"]
        improved = self.best_val_loss is None or row["val_loss"] < self.best_val_loss
        if improved:
            self.best_val_loss, self.best_epoch = row["val_loss"], row["epoch"]
        return improved


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


@torch.no_grad()
def validate(model: nn.Module, source: SequenceSource, config: Mapping[str, Any], device: torch.device) -> tuple[float, float]:
    """Mean recipe loss and per-pixel MSE (0-255) on the validation split (fp32)."""
    model.eval()
    loss_fn, spec = get_loss(config["loss"]), source.spec
    context = LossContext(0, config)
    sequences = source.split("val")
    losses, sq_err, count = 0.0, 0.0, 0
    for start in range(0, len(sequences), config["eval_batch_size"]):
        batch = torch.from_numpy(sequences[start : start + config["eval_batch_size"]]).to(device)
        inputs, targets = split_batch(batch, spec)
        loss, pred = loss_fn(model, inputs, targets.float().div(255), context)
        losses += loss.item() * len(batch)
        diff = to_uint8(pred).int() - targets.int()
        sq_err += diff.square().sum().item()
        count += diff.numel()
    return losses / len(sequences), sq_err / count


@torch.no_grad()
def sample_strip(model: nn.Module, source: SequenceSource, config: Mapping[str, Any], device: torch.device) -> np.ndarray:
    """The first validation sequence as one picture, uint8 [H, W, 3]: a row of its input frames, one of its
    ground truth and one of the model's prediction (gray: the first channel when there are neither 1 nor 3)."""
    model.eval()
    batch = torch.from_numpy(source.split("val")[:1]).to(device)
    inputs, targets = split_batch(batch, source.spec)
    _, pred = get_loss(config["loss"])(model, inputs, targets.float().div(255), LossContext(0, config))
    rows = [frames[0].cpu().numpy() for frames in (inputs, targets, to_uint8(pred))]
    return np.asarray(strip([r if r.shape[1] in (1, 3) else r[:, :1] for r in rows]))


def fit(model: nn.Module, source: SequenceSource, config: Mapping[str, Any], run: RunDir | None, *,
        runtime: Runtime, seed: int, log: Callable[[str], None], name: str, identity: Mapping[str, str],
        resume: Mapping[str, Any] | None = None, tracker: Tracker | None = None,
        uniform: Uniform = standard_uniform) -> Outcome:
    """Train ``model`` on ``source`` under the ``train`` section ``config``.

    ``run`` is None on processes other than rank 0 (they write nothing); ``resume`` is a
    ``last.pt`` checkpoint to continue from; ``identity`` (model name, configuration digest) is
    stored in every checkpoint so that a checkpoint is never loaded into another model or config;
    ``tracker``: the experiment trackers that also get each step's loss and rate and each epoch's values;
    ``uniform``: where the models' schedule coins come from (:func:`~vpbench.losses.draw_uniform`: scheduled
    sampling, teacher forcing; the run's RNG unless a test injects a reference's draws, as the recipe goldens do).
    """
    params = trainable(model)
    if not params:
        log(f"{name}: no trainable parameters, nothing to train")
        return Outcome("finished", 0)
    distributed.check_batch(config["batch_size"], runtime.dist)
    flush_denormals()
    tracker = tracker or Tracker([], log)
    state = _TrainingState(model, params, source, config, runtime, tracker, uniform)
    torch.manual_seed(seed)
    outcome = Outcome("finished", 0)
    if resume is not None:
        state.restore(resume, outcome)
        log(f"{name}: resuming after epoch {resume['epoch']}")
    for epoch in range(outcome.epochs_done, config["epochs"]):
        started = time.time()
        train_loss = state.train_epoch(epoch, name)
        if train_loss is None or not math.isfinite(train_loss):
            return _diverged(outcome, f"non-finite training loss ({state.last_loss}) in epoch {epoch + 1}", name, log)
        lr = state.optimizer.param_groups[0]["lr"]
        state.schedule.after_epoch()
        val_loss, val_mse = validate(model, source, config, runtime.device)
        if not math.isfinite(val_loss):
            return _diverged(outcome, f"non-finite validation loss in epoch {epoch + 1}", name, log)
        improved = outcome.record({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                                   "val_mse": val_mse, "lr": lr, "seconds": round(time.time() - started, 2)})
        if run is not None:
            _save(run, state, outcome, improved, identity)
        sample = sample_strip(model, source, config, runtime.device) if tracker.active else None
        tracker.epoch(state.step, outcome.history[-1], sample)
        log(f"{name} epoch {epoch + 1}/{config['epochs']}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
            f"val MSE {val_mse:.1f}{' (best)' if improved else ''}, {outcome.history[-1]['seconds']:.0f}s")
    return outcome


class _TrainingState:
    """What training carries from step to step: the wrapped model, optimiser, schedule and step count."""

    def __init__(self, model: nn.Module, params: list[nn.Parameter], source: SequenceSource,
                 config: Mapping[str, Any], runtime: Runtime, tracker: Tracker, uniform: Uniform) -> None:
        self.model, self.params, self.source, self.config, self.runtime = model, params, source, config, runtime
        self.tracker, self.uniform = tracker, uniform
        self.loss_fn = get_loss(config["loss"])
        self.optimizer = make_optimizer(params, config)
        self.batches = source.batches_per_epoch(config["batch_size"])
        self.schedule = Schedule(self.optimizer, config, self.batches)
        self.step = 0  # optimiser steps done (for step-counted schedules, e.g. scheduled sampling)
        self.last_loss = float("nan")
        net = distributed.wrap(model, runtime.dist, runtime.device)
        self.net = torch.compile(net) if runtime.compile else net

    def restore(self, checkpoint: Mapping[str, Any], outcome: Outcome) -> None:
        """Continue from a ``last.pt`` checkpoint: optimiser, schedule, RNG state and history."""
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.schedule.load_state_dict(checkpoint["schedule"])
        torch.set_rng_state(checkpoint["torch_rng"])
        outcome.history = list(checkpoint["history"])
        outcome.epochs_done = checkpoint["epoch"]
        outcome.best_epoch, outcome.best_val_loss = checkpoint["best"]
        self.step = checkpoint.get("step", checkpoint["epoch"] * self.batches)

    def loader(self, epoch: int) -> torch.utils.data.DataLoader:
        dist, device = self.runtime.dist, self.runtime.device
        return torch.utils.data.DataLoader(
            EpochBatches(self.source, epoch, self.config["batch_size"], dist.rank, dist.world),
            batch_size=None, num_workers=self.config["num_workers"], pin_memory=device.type == "cuda",
            persistent_workers=False, worker_init_fn=flush_denormals_in_worker,
        )

    def train_epoch(self, epoch: int, name: str) -> float | None:
        """One epoch of training steps: the mean training loss, or None once a step's loss is not finite."""
        self.net.train()
        total, seen = 0.0, 0
        bar = tqdm(self.loader(epoch), desc=f"{name} epoch {epoch + 1}/{self.config['epochs']}", unit="batch",
                   leave=False, disable=not self.runtime.dist.is_main)
        for batch in bar:
            lr = self.optimizer.param_groups[0]["lr"]
            loss = self.train_step(batch)
            if loss is None:
                return None
            self.tracker.step(self.step, loss, lr)
            total += loss
            seen += 1
            bar.set_postfix(loss=f"{total / seen:.4f}")
        return total / max(seen, 1)

    def train_step(self, batch: torch.Tensor) -> float | None:
        """The optimiser steps of a batch (one, or one per window: :func:`train_on_batch`): its loss (the mean
        over processes and windows), or None when one is not finite. The schedule steps once per batch."""
        inputs, targets = split_batch(batch.to(self.runtime.device, non_blocking=True), self.source.spec)
        losses = train_on_batch(self.net, self.loss_fn, self.optimizer, inputs, targets.float().div(255),
                                self.config, self.step, autocast=self.runtime.autocast,
                                reduce=lambda loss: distributed.mean_across(loss, self.runtime.dist).item(),
                                uniform=self.uniform)
        self.last_loss = losses[-1]
        if not math.isfinite(self.last_loss):
            return None
        self.schedule.after_batch()
        self.step += len(losses)
        return sum(losses) / len(losses)


def _diverged(outcome: Outcome, message: str, name: str, log: Callable[[str], None]) -> Outcome:
    outcome.status, outcome.message = "diverged", message
    log(f"{name}: {message}; stopped, the last good checkpoint is kept")
    return outcome


def _save(run: RunDir, state: _TrainingState, outcome: Outcome, improved: bool, identity: Mapping[str, str]) -> None:
    """The epoch's log row and checkpoints; each file is replaced atomically."""
    run.write_csv("train_log.csv", pd.DataFrame(outcome.history))
    run.set_status("running", epochs=outcome.epochs_done)
    if improved:
        run.save_torch("checkpoints/best.pt",
                       {"model": state.model.state_dict(), "epoch": outcome.epochs_done, "identity": dict(identity)})
    run.save_torch("checkpoints/last.pt", {
        "identity": dict(identity),
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "schedule": state.schedule.state_dict(),
        "step": state.step,
        "epoch": outcome.epochs_done,
        "torch_rng": torch.get_rng_state(),
        "history": outcome.history,
        "best": (outcome.best_epoch, outcome.best_val_loss),
    })
