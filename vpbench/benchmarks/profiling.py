"""Cost of a model: parameters, fvcore FLOPs, inference latency, training-step time, peak memory.

FLOPs are fvcore's count for one test sequence (batch 1, T_in frames in, T_out out), where a
multiply-add counts as one, as OpenSTL reports. Element-wise operations (activations, gates)
are not counted by fvcore.
"""
from __future__ import annotations

import json
import logging
import statistics
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from vpbench.benchmarks.recipes import make_optimizer
from vpbench.losses import LossContext, get_loss
from vpbench.datasets import DataSpec
from vpbench.environment import flush_denormals


class _FixedHorizon(nn.Module):
    """``model(x, horizon)`` with the horizon bound, so that jit tracing sees tensors only."""

    def __init__(self, model: nn.Module, horizon: int):
        super().__init__()
        self.model, self.horizon = model, horizon

    def forward(self, frames: Tensor) -> Tensor:
        return self.model(frames, self.horizon)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def dummy_batch(spec: DataSpec, batch: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Random inputs and targets in [0, 1] shaped like the dataset's sequences."""
    g = torch.Generator().manual_seed(0)
    shape = (spec.channels, spec.height, spec.width)
    x = torch.rand(batch, spec.input_frames, *shape, generator=g)
    y = torch.rand(batch, spec.output_frames, *shape, generator=g)
    return x.to(device), y.to(device)


@torch.no_grad()
def count_flops(model: nn.Module, spec: DataSpec) -> int:
    """fvcore FLOPs (multiply-adds) for one sequence, in eval mode, on the model's device."""
    with warnings.catch_warnings():  # fvcore scripts and traces through torch.jit, which warns of its deprecation
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis

        logging.getLogger("fvcore").setLevel(logging.ERROR)
        was_training = model.training
        device = next(model.parameters(), torch.empty(0)).device
        model.eval()
        x, _ = dummy_batch(spec, 1, device)
        analysis = FlopCountAnalysis(_FixedHorizon(model, spec.output_frames), (x,))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        total = int(analysis.total())
        model.train(was_training)
    return total


def _median_ms(fn: Callable[[], Any], device: torch.device, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def time_inference(model: nn.Module, spec: DataSpec, device: torch.device, *, batch: int = 1,
                   repeats: int = 5, warmup: int = 1) -> float:
    """Median milliseconds of one forward pass over ``batch`` sequences (eval mode, no grad)."""
    model.eval()
    x, _ = dummy_batch(spec, batch, device)
    with torch.no_grad():
        return _median_ms(lambda: model(x, spec.output_frames), device, repeats, warmup)


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


def peak_memory_mb(fn: Callable[[], Any], device: torch.device) -> float:
    """Peak memory allocated by tensors while ``fn`` runs (CUDA allocator, or torch's CPU profiler)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    level = peak = 0
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    for event in events:
        level += event.self_cpu_memory_usage
        peak = max(peak, level)
    return peak / 2**20


def profile_model(model: nn.Module, spec: DataSpec, train: Mapping[str, Any], device: torch.device, *,
                  repeats: int = 5, timing: bool = True) -> dict[str, Any]:
    """params, flops, latency_ms (batch 1), train_step_ms and peak_mem_mb (the preset's batch); the
    last three are None without ``timing``."""
    model.to(device)
    costs: dict[str, Any] = {"params": count_params(model), "flops": count_flops(model, spec),
                             "latency_ms": None, "train_step_ms": None, "peak_mem_mb": None}
    if timing:
        step = train_step_fn(model, spec, train, device, train["batch_size"])
        costs["train_step_ms"] = _median_ms(step, device, repeats, warmup=1)
        costs["peak_mem_mb"] = peak_memory_mb(step, device)
        costs["latency_ms"] = time_inference(model, spec, device, repeats=repeats)
    return costs


def save_profiles(rows: list[dict[str, Any]], results_dir: str | Path) -> Path:
    """Merge rows into ``<results_dir>/profiles/<dataset>-<preset>-<device>.json`` (one object per model)."""
    from vpbench.store import atomic_write_bytes, writable_results_dir

    first = rows[0]
    device = first["device"].replace(":", "")
    path = writable_results_dir(results_dir) / "profiles" / f"{first['dataset']}-{first['preset']}-{device}.json"
    merged = {r["model"]: r for r in (json.loads(path.read_text()) if path.is_file() else [])}
    for row in rows:  # a profile without timings keeps the timings measured before
        merged[row["model"]] = {**merged.get(row["model"], {}), **{k: v for k, v in row.items() if v is not None}}
    atomic_write_bytes(path, (json.dumps(list(merged.values()), indent=2) + "\n").encode())
    return path
