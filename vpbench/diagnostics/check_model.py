"""``bench check-model SPEC``: does a model honour the contract of the suite?

The model is built for a dataset and preset as ``bench run`` builds it, then on a random batch:
one forward pass in training mode and a backward pass, and forward passes in evaluation mode at
the dataset's horizon and at another one. Each way of breaking the contract stops the check with
a one-line UserError; a model that passes gets its parameters and fvcore FLOPs printed.
"""
from __future__ import annotations

import argparse
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench import config as cfg
from vpbench import presets
from vpbench.datasets import DataSpec, dataset_entry
from vpbench.errors import UserError
from vpbench.harness.evaluate import check_prediction
from vpbench.metrics.cost import count_flops, count_params, dummy_batch
from vpbench.models import registry
from vpbench.plugins import first_line

BATCH = 2


def _shape(shape: tuple[int, ...] | torch.Size) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _forward(model: nn.Module, frames: Tensor, horizon: int, name: str) -> Tensor:
    try:
        out = model(frames, horizon)
    except Exception as err:
        raise UserError(f"model {name!r}: forward(frames, horizon={horizon}) raised {first_line(err)}") from None
    if not isinstance(out, Tensor):
        raise UserError(f"model {name!r}: forward returned an object of type {type(out).__name__}, not a Tensor "
                        "[B, horizon, C, H, W]")
    return out


def _check_output(out: Tensor, expected: tuple[int, ...], spec: DataSpec, name: str) -> str:
    """Shape, finiteness and range of one prediction; returns its summary."""
    horizon = expected[1]
    if horizon != spec.output_frames and out.shape == (*expected[:1], spec.output_frames, *expected[2:]):
        raise UserError(f"model {name!r} ignores the horizon: forward(frames, horizon={horizon}) returned "
                        f"{spec.output_frames} frames; it must return exactly `horizon` frames")
    check_prediction(out, expected, name)
    if not torch.isfinite(out).all():
        raise UserError(f"model {name!r} returned NaN or Inf on a random batch in [0, 1]; "
                        "check its initialisation, divisions and logs")
    low, high = out.min().item(), out.max().item()
    if low < 0 or high > 1:
        raise UserError(f"model {name!r} returned values in [{low:.3g}, {high:.3g}], outside [0, 1]; "
                        "end it with a sigmoid or a clamp")
    return f"{_shape(out.shape)}, values in [{low:.3f}, {high:.3f}]"


def _backward(model: nn.Module, out: Tensor, target: Tensor, name: str) -> str:
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        return "no trainable parameters: nothing to train (like persistence)"
    loss = F.mse_loss(out, target)
    if not loss.requires_grad:
        raise UserError(f"model {name!r}: its output does not depend on its parameters (detached, or computed "
                        "under no_grad), so training cannot update it")
    try:
        loss.backward()
    except Exception as err:
        raise UserError(f"model {name!r}: backward failed: {first_line(err)}") from None
    unused = [n for n, p in params if p.grad is None]
    note = f" (none for: {', '.join(unused[:3])}{' ...' if len(unused) > 3 else ''})" if unused else ""
    return f"{len(params) - len(unused)}/{len(params)} parameter tensors receive gradients{note}"


def contract_checks(model: nn.Module, spec: DataSpec, name: str) -> Iterator[str]:
    """Run the contract checks on ``model``, yielding one line per check passed."""
    frames, target = dummy_batch(spec, BATCH)
    shape = (BATCH, spec.output_frames, spec.channels, spec.height, spec.width)
    model.train()
    out = _forward(model, frames, spec.output_frames, name)
    yield f"forward    training mode, horizon {spec.output_frames}: {_check_output(out, shape, spec, name)}"
    yield f"backward   {_backward(model, out, target, name)}"
    model.eval()
    other = 1 if spec.output_frames > 1 else 2
    with torch.no_grad():
        for horizon in (spec.output_frames, other):
            summary = _check_output(_forward(model, frames, horizon, name), (BATCH, horizon, *shape[2:]), spec, name)
            yield f"forward    eval mode, horizon {horizon}: {summary}"


def _build(name: str, kwargs: dict[str, Any]) -> nn.Module:
    try:
        model = registry.get_entry(name).factory(**kwargs)
    except Exception as err:
        raise UserError(f"model {name!r}: its factory raised {first_line(err)} when called with "
                        f"{', '.join(f'{k}={v!r}' for k, v in kwargs.items())}") from None
    if not isinstance(model, nn.Module):
        raise UserError(f"model {name!r}: its factory returned an object of type {type(model).__name__}, "
                        "not an nn.Module")
    return model


def check_model(spec: str, dataset: str, *, preset: str = "quick", data_dir: str | None = None) -> None:
    """Build ``spec`` (a model name or ``module:factory``) for ``dataset`` and check the contract."""
    names = registry.expand(spec)
    if len(names) != 1:
        raise UserError(f"check-model takes one model; {spec!r} names {len(names)}: {', '.join(names)}")
    name = names[0]
    entry = registry.get_entry(name)
    config = cfg.resolve(preset, name, dataset, data_dir=data_dir)  # checks the dataset options and the recipe
    data = dataset_entry(dataset).spec(config["dataset"])
    origin = entry.origin
    where = "built-in" if origin["kind"] == "builtin" else (
        f"external: {origin['source']}, package {origin['package'] or '-'}, version {origin['version'] or '-'}")
    print(f"model: {name} ({entry.label}; {where})")
    print(f"dataset: {dataset} ({data.input_frames} -> {data.output_frames} frames of "
          f"{data.channels}x{data.height}x{data.width}), preset {preset}")
    kwargs = registry.model_kwargs(name, preset, data.model_keys(), {})
    print("options: " + (", ".join(f"{k}={v}" for k, v in kwargs.items()) or "(none)"))
    model = _build(name, kwargs)
    for line in contract_checks(model, data, name):
        print(f"  {line}")
    try:
        flops = count_flops(model, data)
    except Exception as err:
        raise UserError(f"model {name!r}: fvcore cannot trace it for FLOPs ({first_line(err)}); `bench run` counts "
                        "them the same way, so make forward traceable by torch.jit.trace") from None
    print(f"  params     {count_params(model):,}")
    print(f"  FLOPs      {flops / 1e9:.3f} G per sequence (fvcore, multiply-adds, batch 1)")
    print(f"{name} honours the contract")


def command(args: argparse.Namespace) -> None:
    """``bench check-model``."""
    check_model(args.spec, args.dataset, preset=presets.choose(args.preset, args.protocol, "cpu").name,
                data_dir=args.data_dir)
