"""The training loop: one recipe-driven loop for every model, with validation and checkpoints.

Each epoch trains on freshly generated (or freshly shuffled) batches, validates on the fixed
validation split, writes a row of ``train_log.csv``, saves ``checkpoints/last.pt`` (everything
needed to resume) and, when the validation loss improves, ``checkpoints/best.pt``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from vpbench.benchmarks.evaluate import split_batch
from vpbench.benchmarks.metrics import to_uint8
from vpbench.benchmarks.recipes import Schedule, get_loss, make_optimizer
from vpbench.datasets import EpochBatches, SequenceSource
from vpbench.store import RunDir


@dataclass
class Outcome:
    """How training ended: ``finished`` or ``diverged`` (non-finite loss)."""

    status: str
    epochs_done: int
    best_epoch: int | None = None
    best_val_loss: float | None = None
    message: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


@torch.no_grad()
def validate(model: nn.Module, source: SequenceSource, config: Mapping[str, Any], device: torch.device) -> tuple[float, float]:
    """Mean recipe loss and per-pixel MSE (0-255) on the validation split."""
    model.eval()
    loss_fn, spec = get_loss(config["loss"]), source.spec
    sequences = source.split("val")
    losses, sq_err, count = [], 0.0, 0
    for start in range(0, len(sequences), config["eval_batch_size"]):
        batch = torch.from_numpy(sequences[start : start + config["eval_batch_size"]]).to(device)
        inputs, targets = split_batch(batch, spec)
        loss, pred = loss_fn(model, inputs, targets.float().div(255))
        losses.append(loss.item() * len(batch))
        diff = to_uint8(pred).int() - targets.int()
        sq_err += diff.square().sum().item()
        count += diff.numel()
    return sum(losses) / len(sequences), sq_err / count


def fit(model: nn.Module, source: SequenceSource, config: Mapping[str, Any], run: RunDir, *,
        device: torch.device, seed: int, log: Callable[[str], None], name: str) -> Outcome:
    """Train ``model`` on ``source`` under the ``train`` section ``config``."""
    params = trainable(model)
    epochs = config["epochs"]
    if not params:
        log(f"{name}: no trainable parameters, nothing to train")
        return Outcome("finished", 0)
    torch.manual_seed(seed)
    spec = source.spec
    steps = source.batches_per_epoch(config["batch_size"])
    loss_fn = get_loss(config["loss"])
    optimizer = make_optimizer(params, config)
    schedule = Schedule(optimizer, config, steps)
    outcome = Outcome("finished", 0)
    for epoch in range(epochs):
        started = time.time()
        model.train()
        loader = torch.utils.data.DataLoader(
            EpochBatches(source, epoch, config["batch_size"]),
            batch_size=None,
            num_workers=config["num_workers"],
            pin_memory=device.type == "cuda",
        )
        total, seen = 0.0, 0
        bar = tqdm(loader, desc=f"{name} epoch {epoch + 1}/{epochs}", unit="batch", leave=False)
        for batch in bar:
            inputs, targets = split_batch(batch.to(device, non_blocking=True), spec)
            optimizer.zero_grad(set_to_none=True)
            loss, _ = loss_fn(model, inputs, targets.float().div(255))
            if not torch.isfinite(loss):
                outcome.status = "diverged"
                outcome.message = f"non-finite training loss ({loss.item()}) in epoch {epoch + 1}"
                log(f"{name}: {outcome.message}; stopped, the last good checkpoint is kept")
                return outcome
            loss.backward()
            if config.get("grad_clip"):
                nn.utils.clip_grad_norm_(params, config["grad_clip"])
            optimizer.step()
            schedule.after_batch()
            total += loss.item()
            seen += 1
            bar.set_postfix(loss=f"{total / seen:.4f}")
        lr = optimizer.param_groups[0]["lr"]
        schedule.after_epoch()
        val_loss, val_mse = validate(model, source, config, device)
        row = {
            "epoch": epoch + 1,
            "train_loss": total / max(seen, 1),
            "val_loss": val_loss,
            "val_mse": val_mse,
            "lr": lr,
            "seconds": round(time.time() - started, 2),
        }
        outcome.history.append(row)
        outcome.epochs_done = epoch + 1
        run.write_csv("train_log.csv", pd.DataFrame(outcome.history))
        improved = math.isfinite(val_loss) and (outcome.best_val_loss is None or val_loss < outcome.best_val_loss)
        if improved:
            outcome.best_val_loss, outcome.best_epoch = val_loss, epoch + 1
            run.save_torch("checkpoints/best.pt", {"model": model.state_dict(), "epoch": epoch + 1})
        run.save_torch(
            "checkpoints/last.pt",
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(),
                "epoch": epoch + 1,
                "torch_rng": torch.get_rng_state(),
                "numpy_rng": np.random.get_state(),
                "history": outcome.history,
                "best": (outcome.best_epoch, outcome.best_val_loss),
            },
        )
        log(
            f"{name} epoch {epoch + 1}/{epochs}: train loss {row['train_loss']:.4f}, val loss {val_loss:.4f}, "
            f"val MSE {val_mse:.1f}{' (best)' if improved else ''}, {row['seconds']:.0f}s"
        )
    return outcome
