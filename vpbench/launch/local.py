"""``--launcher local`` (the default): the sweep's runs on this machine.

With ``--jobs 1`` (the default) every run trains in this process, one after another. With ``--jobs N`` the runs
are N child processes at a time (``python -m vpbench.cli run --models M --seed S ... --launcher local``, as the
gpus launcher starts them), the machine's cores shared out between them (``OMP_NUM_THREADS``); ``--jobs auto``
picks N from the cores and the preset (:func:`auto_jobs`). Either way ``bench run`` first prints how long the
sweep should take, from a short measured training step per model, and then a line of overall progress as runs
end.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Mapping

import vpbench
from vpbench import presets
from vpbench.config import parse_sets
from vpbench.environment import resolve_device
from vpbench.errors import UserError
from vpbench.harness import distributed
from vpbench.harness.estimate import makespan, run_seconds
from vpbench.harness.runner import build_sources, parse_seeds, plan, run_sweep
from vpbench.harness.trainer import Runtime
from vpbench.launch.base import Launcher, register_launcher
from vpbench.launch.plan import plan_jobs
from vpbench.launch.pool import Progress, Slot, duration, run_pool
from vpbench.models import expand


def cores() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def auto_jobs(runs: int, scale: str, device_type: str) -> int:
    """``--jobs auto``: on a CPU at the quick and tiny scales, one single-threaded process per core (the small
    convolutions of these scales keep one core busy each better than they share several); one process
    otherwise (a GPU, or the full scale, whose large steps use every core)."""
    if device_type != "cpu" or scale == "full":
        return 1
    return max(1, min(runs, cores()))


def parse_jobs(text: str) -> int | str:
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of processes >= 1, or auto")
    return int(text)


def thread_env(threads: int) -> dict[str, str]:
    """The environment that gives a child process ``threads`` threads (torch's OpenMP pool, MKL, numba)."""
    return {name: str(threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}


@register_launcher
class LocalLauncher(Launcher):
    name = "local"
    help = "the runs on this machine, in this process or --jobs N processes at a time"

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:  # noqa: SLF001
        group.add_argument("--jobs", default="1", type=parse_jobs,
                           help="runs at a time on this machine, each a process with its share of the cores "
                                "(default 1: every run in this process, one after another); auto: one per core "
                                "on a CPU at the quick and tiny scales")

    def launch(self, args: argparse.Namespace, run_parser: argparse.ArgumentParser) -> None:
        device, planned = resolve_device(args.device), distributed.planned()
        if not planned.is_main:  # rank 0 speaks for the job
            sys.stdout = open(os.devnull, "w")
        chosen = presets.choose(args.preset, args.protocol, device.type)
        print(presets.announce(chosen, args.preset is not None, device.type))
        models = expand(args.models, chosen.protocol)
        seeds = parse_seeds(args.seeds) if args.seeds else [args.seed]
        configs = plan(models, args.dataset, preset=chosen.name, seeds=seeds, epochs=args.epochs,
                       sets=parse_sets(args.sets, args.metrics, args.samples), dist=planned, data_dir=args.data_dir, init=args.init,
                       loggers=getattr(args, "logger", None))
        jobs = auto_jobs(len(configs), chosen.scale, device.type) if args.jobs == "auto" else args.jobs
        jobs = min(jobs, len(configs))
        if jobs > 1:
            if planned.active:
                raise UserError("--jobs runs several processes; under torchrun use one (--jobs 1)")
            self._in_processes(args, run_parser, configs, jobs, device)
            return
        self._here(args, configs, models, seeds, device)

    def _here(self, args: argparse.Namespace, configs: list[dict[str, Any]], models: list[str], seeds: list[int],
              device: Any) -> None:
        dist, device = distributed.from_environment(device)
        precision = args.precision if args.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
        runtime = Runtime(device=device, precision=precision, compile=args.compile, dist=dist)
        print(f"models: {', '.join(models)} | dataset: {args.dataset} | device: {device} | precision: {precision} | "
              f"seed{'s' * (len(seeds) > 1)}: {', '.join(map(str, seeds))}"
              + (f" | processes: {dist.world}" if dist.active else ""))
        sources = build_sources(configs, args.data_dir)
        progress = None
        if dist.is_main and len(configs) > 1:
            estimates = _estimates(configs, sources, device, threads=None)
            print(f"estimate: {duration(sum(estimates.values()))} for {len(configs)} runs (from a measured "
                  "training step of each)", flush=True)
            progress = Progress(len(configs), 1, estimates)

        def on_run(event: str, config: Mapping[str, Any]) -> None:
            key = _key(config)
            if event == "start":
                progress.running[key] = time.time()
                print(f"run {len(progress.done) + 1} of {progress.total}: {key} | {progress.line().partition('| ')[2]}",
                      flush=True)
            else:
                progress.done[key] = time.time() - progress.running.pop(key)

        results = run_sweep(configs, data_dir=args.data_dir, results_dir=args.results_dir, runtime=runtime,
                            resume=args.resume, sources=sources, on_run=on_run if progress else None)
        distributed.finish(dist)
        if not dist.is_main:
            return
        if progress is not None:
            print(f"sweep: {len(configs)} runs in {duration(time.time() - progress.started)}")
        print("\n| Model | Seed | MSE | SSIM | Status |\n|---|---:|---:|---:|---|")
        for m in results:
            mse = "-" if m.get("mse") is None else f"{m['mse']:.1f}"
            ssim = "-" if m.get("ssim") is None else f"{m['ssim']:.4f}"
            print(f"| {m['label']} | {m['seed']} | {mse} | {ssim} | {m['status']} |")

    def _in_processes(self, args: argparse.Namespace, run_parser: argparse.ArgumentParser,
                      configs: list[dict[str, Any]], jobs: int, device: Any) -> None:
        threads = max(1, cores() // jobs)
        start_up = time.time() - vpbench.STARTED  # what each child spends before it trains (imports, planning)
        sweep = plan_jobs(args, run_parser, device_kind=device.type)  # the preset chosen for this machine
        estimates = _estimates(configs, build_sources(configs, args.data_dir), device, threads=threads)
        by_key = {job.key: start_up + estimates.get(job.key, 0.0) for job in sweep.jobs}
        order = sorted(sweep.jobs, key=lambda job: -by_key[job.key])  # longest first: the shortest wall time
        print(f"launcher local: {len(sweep.jobs)} runs, {jobs} at a time, {threads} thread{'s' * (threads > 1)} "
              f"each; logs in {sweep.launcher_dir / 'logs' / sweep.launch_id}", flush=True)
        print(f"estimate: {duration(makespan([by_key[j.key] for j in order], jobs))} for {len(sweep.jobs)} runs "
              f"(from a measured training step of each)", flush=True)
        slots = [Slot(f"CPU slot {i + 1} ({threads} thread{'s' * (threads > 1)})", thread_env(threads),
                      {"threads": threads}) for i in range(jobs)]
        run_pool(sweep, slots, "local", progress=Progress(len(sweep.jobs), jobs, by_key), order=order)


def _key(config: Mapping[str, Any]) -> str:
    return f"{config['model']['name']}-s{config['seed']}"


def _estimates(configs: list[dict[str, Any]], sources: Mapping[int, Any], device: Any,
               threads: int | None) -> dict[str, float]:
    """Seconds per run (key ``<model>-s<seed>``), from a short measured step of each. A model that fails here
    gets no estimate: its run records the failure and the sweep goes on."""
    seconds = {}
    for config in configs:
        try:
            seconds[_key(config)] = run_seconds(config, sources[config["seed"]], device, threads=threads)
        except Exception:  # noqa: BLE001 - the run itself reports the failure, with its traceback in the log
            continue
    return seconds
