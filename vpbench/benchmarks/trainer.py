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

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from vpbench.benchmarks import distributed
from vpbench.benchmarks.distributed import Dist
from vpbench.benchmarks.evaluate import split_batch
from vpbench.benchmarks.metrics import to_uint8
from vpbench.benchmarks.recipes import Schedule, get_loss, make_optimizer
from vpbench.datasets import EpochBatches, SequenceSource
from vpbench.environment import flush_denormals, flush_denormals_in_worker
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


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


@torch.no_grad()
def validate(model: nn.Module, source: SequenceSource, config: Mapping[str, Any], device: torch.device) -> tuple[float, float]:
    """Mean recipe loss and per-pixel MSE (0-255) on the validation split (fp32)."""
    model.eval()
    loss_fn, spec = get_loss(config["loss"]), source.spec
    sequences = source.split("val")
    losses, sq_err, count = 0.0, 0.0, 0
    for start in range(0, len(sequences), config["eval_batch_size"]):
        batch = torch.from_numpy(sequences[start : start + config["eval_batch_size"]]).to(device)
        inputs, targets = split_batch(batch, spec)
        loss, pred = loss_fn(model, inputs, targets.float().div(255))
        losses += loss.item() * len(batch)
        diff = to_uint8(pred).int() - targets.int()
        sq_err += diff.square().sum().item()
        count += diff.numel()
    return losses / len(sequences), sq_err / count


def fit(model: nn.Module, source: SequenceSource, config: Mapping[str, Any], run: RunDir | None, *,
        runtime: Runtime, seed: int, log: Callable[[str], None], name: str, identity: Mapping[str, str],
        resume: Mapping[str, Any] | None = None) -> Outcome:
    """Train ``model`` on ``source`` under the ``train`` section ``config``.

    ``run`` is None on processes other than rank 0 (they write nothing); ``resume`` is a
    ``last.pt`` checkpoint to continue from; ``identity`` (model name, configuration digest) is
    stored in every checkpoint so that a checkpoint is never loaded into another model or config.
    """
    params = trainable(model)
    epochs, dist, device = config["epochs"], runtime.dist, runtime.device
    if not params:
        log(f"{name}: no trainable parameters, nothing to train")
        return Outcome("finished", 0)
    distributed.check_batch(config["batch_size"], dist)
    flush_denormals()
    spec = source.spec
    loss_fn = get_loss(config["loss"])
    optimizer = make_optimizer(params, config)
    schedule = Schedule(optimizer, config, source.batches_per_epoch(config["batch_size"]))
    outcome = Outcome("finished", 0)
    torch.manual_seed(seed)
    if resume is not None:
        optimizer.load_state_dict(resume["optimizer"])
        schedule.load_state_dict(resume["schedule"])
        torch.set_rng_state(resume["torch_rng"])
        outcome.history = list(resume["history"])
        outcome.epochs_done = resume["epoch"]
        outcome.best_epoch, outcome.best_val_loss = resume["best"]
        log(f"{name}: resuming after epoch {resume['epoch']}")
    net = distributed.wrap(model, dist, device)
    if runtime.compile:
        net = torch.compile(net)
    for epoch in range(outcome.epochs_done, epochs):
        started = time.time()
        net.train()
        loader = torch.utils.data.DataLoader(
            EpochBatches(source, epoch, config["batch_size"], dist.rank, dist.world),
            batch_size=None,
            num_workers=config["num_workers"],
            pin_memory=device.type == "cuda",
            persistent_workers=False,
            worker_init_fn=flush_denormals_in_worker,
        )
        total, seen = 0.0, 0
        bar = tqdm(loader, desc=f"{name} epoch {epoch + 1}/{epochs}", unit="batch", leave=False,
                   disable=not dist.is_main)
        for batch in bar:
            inputs, targets = split_batch(batch.to(device, non_blocking=True), spec)
            optimizer.zero_grad(set_to_none=True)
            with runtime.autocast():
                loss, _ = loss_fn(net, inputs, targets.float().div(255))
            mean_loss = distributed.mean_across(loss.detach(), dist).item()
            if not math.isfinite(mean_loss):
                outcome.status = "diverged"
                outcome.message = f"non-finite training loss ({mean_loss}) in epoch {epoch + 1}"
                log(f"{name}: {outcome.message}; stopped, the last good checkpoint is kept")
                return outcome
            loss.backward()
            if config.get("grad_clip"):
                nn.utils.clip_grad_norm_(params, config["grad_clip"])
            optimizer.step()
            schedule.after_batch()
            total += mean_loss
            seen += 1
            bar.set_postfix(loss=f"{total / seen:.4f}")
        lr = optimizer.param_groups[0]["lr"]
        schedule.after_epoch()
        val_loss, val_mse = validate(model, source, config, device)
        if not math.isfinite(val_loss):
            outcome.status = "diverged"
            outcome.message = f"non-finite validation loss in epoch {epoch + 1}"
            log(f"{name}: {outcome.message}; stopped, the last good checkpoint is kept")
            return outcome
        row = {"epoch": epoch + 1, "train_loss": total / max(seen, 1), "val_loss": val_loss, "val_mse": val_mse,
               "lr": lr, "seconds": round(time.time() - started, 2)}
        outcome.history.append(row)
        outcome.epochs_done = epoch + 1
        improved = outcome.best_val_loss is None or val_loss < outcome.best_val_loss
        if improved:
            outcome.best_val_loss, outcome.best_epoch = val_loss, epoch + 1
        if run is not None:
            _save(run, model, optimizer, schedule, outcome, improved, identity)
        log(f"{name} epoch {epoch + 1}/{epochs}: train loss {row['train_loss']:.4f}, val loss {val_loss:.4f}, "
            f"val MSE {val_mse:.1f}{' (best)' if improved else ''}, {row['seconds']:.0f}s")
    return outcome


def _save(run: RunDir, model: nn.Module, optimizer: torch.optim.Optimizer, schedule: Schedule, outcome: Outcome,
          improved: bool, identity: Mapping[str, str]) -> None:
    """The epoch's log row and checkpoints; each file is replaced atomically."""
    run.write_csv("train_log.csv", pd.DataFrame(outcome.history))
    if improved:
        run.save_torch("checkpoints/best.pt",
                       {"model": model.state_dict(), "epoch": outcome.epochs_done, "identity": dict(identity)})
    run.save_torch("checkpoints/last.pt", {
        "identity": dict(identity),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "epoch": outcome.epochs_done,
        "torch_rng": torch.get_rng_state(),
        "history": outcome.history,
        "best": (outcome.best_epoch, outcome.best_val_loss),
    })
