"""``bench profile``: each model's parameters, fvcore FLOPs, inference latency, training-step time and peak
memory (see :mod:`vpbench.metrics.cost`), printed and saved under ``<results-dir>/profiles/`` for the report."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from vpbench import presets
from vpbench.datasets import DataSpec
from vpbench.harness.steps import train_step_fn
from vpbench.metrics.cost import count_flops, count_params, latency_ms, median_seconds, peak_memory_mb


def profile_model(model: nn.Module, spec: DataSpec, train: Mapping[str, Any], device: torch.device, *,
                  repeats: int = 5, timing: bool = True) -> dict[str, Any]:
    """params, flops, latency_ms (batch 1), train_step_ms and peak_mem_mb (the preset's batch); the
    last three are None without ``timing``."""
    model.to(device)
    costs: dict[str, Any] = {"params": count_params(model), "flops": count_flops(model, spec),
                             "latency_ms": None, "train_step_ms": None, "peak_mem_mb": None}
    if timing:
        step = train_step_fn(model, spec, train, device, train["batch_size"])
        costs["train_step_ms"] = 1e3 * median_seconds(step, repeats=repeats, device=device)
        costs["peak_mem_mb"] = peak_memory_mb(step, device)
        costs["latency_ms"] = latency_ms(model, spec, device, repeats=repeats)
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


def _number(value: float | None, decimals: int) -> str:
    return "-" if value is None else f"{value:,.{decimals}f}"


def command(args: argparse.Namespace) -> None:
    """``bench profile``: a table (or, with ``--format json``, JSON alone on stdout: notes go to stderr)."""
    from vpbench import config as cfg
    from vpbench.datasets import dataset_entry
    from vpbench.environment import resolve_device
    from vpbench.models import build_model, expand

    note = sys.stderr if args.format == "json" else sys.stdout
    device = resolve_device(args.device)
    chosen = presets.choose(args.preset, args.protocol, device.type)
    print(presets.announce(chosen, args.preset is not None, device.type), file=note)
    timing = not args.no_timing
    if timing and chosen.scale == "full" and device.type == "cpu":
        print("note: timing the paper preset on a CPU trains at the preset's batch (minutes and tens of GB "
              "per recurrent model); --no-timing gives parameters and FLOPs in seconds", file=note)
    rows = []
    for name in expand(args.models, chosen.protocol):
        config = cfg.resolve(chosen.name, name, args.dataset, sets=cfg.parse_sets(args.sets), data_dir=args.data_dir)
        spec = dataset_entry(args.dataset).spec(config["dataset"])
        costs = profile_model(build_model(config), spec, config["train"], device, timing=timing)
        rows.append({"model": name, "dataset": args.dataset, "preset": chosen.name, "device": str(device), **costs})
    save_profiles(rows, args.results_dir)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return
    print(f"\ndevice: {device} | batch 1 for FLOPs and latency, batch {config['train']['batch_size']} for a train step")
    print("| Model | Params | GFLOPs | Latency (ms) | Train step (ms) | Peak memory (MB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['params']:,} | {r['flops'] / 1e9:.2f} | {_number(r['latency_ms'], 1)} | "
              f"{_number(r['train_step_ms'], 1)} | {_number(r['peak_mem_mb'], 0)} |")
