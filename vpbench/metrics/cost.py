"""What a model costs: parameters, fvcore FLOPs, latency, peak memory, and the one timer every timing uses.

FLOPs are fvcore's count for one test sequence (batch 1, T_in frames in, T_out out), where a multiply-add
counts as one, as OpenSTL reports. Element-wise operations (activations, gates) are not counted by fvcore.

Timings: :func:`median_seconds` (repeats after a warm-up), :func:`series_seconds` (consecutive calls, so that
a time that grows shows) and :func:`alternating_seconds` (several callables timed in turn, so that a change of
machine load affects each alike). On CUDA each call is synchronised before and after.
"""
from __future__ import annotations

import logging
import statistics
import time
import warnings
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from vpbench.datasets import DataSpec


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
    """Random inputs [B, T_in, C, H, W] and targets [B, T_out, C, H, W] in [0, 1], shaped like the dataset's."""
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


# -- the timer ----------------------------------------------------------------------------------------------

def _synchronize(device: torch.device | str | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def call_seconds(fn: Callable[[], Any], device: torch.device | str | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one call of ``fn`` (synchronised on CUDA)."""
    _synchronize(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    _synchronize(device)
    return time.perf_counter() - start, time.process_time() - start_cpu


def series_seconds(fn: Callable[[], Any], calls: int, *, warmup: int = 1,
                   device: torch.device | str | None = None) -> list[float]:
    """Wall seconds of each of ``calls`` consecutive calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    return [call_seconds(fn, device)[0] for _ in range(calls)]


def median_seconds(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1,
                   device: torch.device | str | None = None) -> float:
    """The median wall seconds of ``repeats`` calls after ``warmup`` untimed ones."""
    return statistics.median(series_seconds(fn, repeats, warmup=warmup, device=device))


def alternating_seconds(fns: Mapping[str, Callable[[], Any]], repeats: int, *, warmup: int = 1,
                        device: torch.device | str | None = None) -> dict[str, list[tuple[float, float]]]:
    """Each callable called ``warmup`` times untimed, then all timed in turn ``repeats`` times (A, B, A, B, ...):
    name -> [(wall, CPU) seconds of each call]."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(call_seconds(fn, device))
    return times


# -- latency and memory -------------------------------------------------------------------------------------

def latency_ms(model: nn.Module, spec: DataSpec, device: torch.device, *, batch: int = 1, repeats: int = 5,
               warmup: int = 1) -> float:
    """Median milliseconds of one forward pass over ``batch`` sequences (eval mode, no grad)."""
    model.eval()
    x, _ = dummy_batch(spec, batch, device)
    with torch.no_grad():
        return 1e3 * median_seconds(lambda: model(x, spec.output_frames), repeats=repeats, warmup=warmup,
                                    device=device)


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
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        level += event.self_cpu_memory_usage
        peak = max(peak, level)
    return peak / 2**20
