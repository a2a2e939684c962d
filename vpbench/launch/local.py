"""``--launcher local`` (the default): every run of the sweep in this process, one after another."""
from __future__ import annotations

import argparse
import os
import sys

from vpbench import presets
from vpbench.config import parse_sets
from vpbench.environment import resolve_device
from vpbench.harness import distributed
from vpbench.harness.runner import parse_seeds, plan, run_sweep
from vpbench.harness.trainer import Runtime
from vpbench.launch.base import Launcher, register_launcher
from vpbench.models import expand


@register_launcher
class LocalLauncher(Launcher):
    name = "local"
    help = "one run after another in this process"

    def launch(self, args: argparse.Namespace, run_parser: argparse.ArgumentParser) -> None:
        device, planned = resolve_device(args.device), distributed.planned()
        if not planned.is_main:  # rank 0 speaks for the job
            sys.stdout = open(os.devnull, "w")
        chosen = presets.choose(args.preset, args.protocol, device.type)
        print(presets.announce(chosen, args.preset is not None, device.type))
        models = expand(args.models, chosen.protocol)
        seeds = parse_seeds(args.seeds) if args.seeds else [args.seed]
        configs = plan(models, args.dataset, preset=chosen.name, seeds=seeds, epochs=args.epochs,
                       sets=parse_sets(args.sets), dist=planned, data_dir=args.data_dir)
        dist, device = distributed.from_environment(device)
        precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
        runtime = Runtime(device=device, precision=precision, compile=args.compile, dist=dist)
        print(f"models: {', '.join(models)} | dataset: {args.dataset} | device: {device} | precision: {precision} | "
              f"seed{'s' * (len(seeds) > 1)}: {', '.join(map(str, seeds))}"
              + (f" | processes: {dist.world}" if dist.active else ""))
        results = run_sweep(configs, data_dir=args.data_dir, results_dir=args.results_dir, runtime=runtime,
                            resume=args.resume)
        distributed.finish(dist)
        if not dist.is_main:
            return
        print("\n| Model | Seed | MSE | SSIM | Status |\n|---|---:|---:|---:|---|")
        for m in results:
            mse = "-" if m["mse"] is None else f"{m['mse']:.1f}"
            ssim = "-" if m["ssim"] is None else f"{m['ssim']:.4f}"
            print(f"| {m['label']} | {m['seed']} | {mse} | {ssim} | {m['status']} |")
