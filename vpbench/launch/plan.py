"""Planning a sweep: the (model, seed) jobs of ``bench run`` and the command line that runs each.

A job's command is ``python -m vpbench.cli run --models M --seed S ... --launcher local`` with every other
option of the sweep passed on (paths made absolute, the preset made explicit), under ``torchrun`` when it
has several GPUs. Every configuration is resolved and checked here, before anything is launched.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from vpbench import config as cfg
from vpbench import presets
from vpbench.errors import UserError
from vpbench.harness import distributed
from vpbench.harness.checkpoints import initial_weights
from vpbench.harness.loggers import parse_loggers
from vpbench.harness.runner import check_samples, draws_of, parse_seeds
from vpbench.launch.base import launcher_dests
from vpbench.models import expand
from vpbench.store import writable_results_dir

LAUNCHER_DIR = ".launcher"  # <results-dir>/.launcher: the jobs record, the launchers' logs and scripts
# Options set per job: --models and --seed name the job's model and seed; --seeds is expanded into jobs.
PER_JOB_DESTS = frozenset({"models", "seed", "seeds"})


@dataclass
class Job:
    """One (model, seed) run of a sweep and the command that runs it."""

    model: str            # the registered name
    spec: str             # what its command passes to --models (the name, or the module:factory spec)
    seed: int
    dataset: str
    preset: str
    command: list[str]    # argv, starting with the python executable
    gpus: int = 1         # processes (torchrun when > 1)

    @property
    def key(self) -> str:
        return f"{self.model}-s{self.seed}"

    def resume_command(self) -> list[str]:
        return self.command if "--resume" in self.command else [*self.command, "--resume"]


@dataclass
class Sweep:
    jobs: list[Job]
    results_dir: Path
    dataset: str
    preset: str
    launch_id: str = field(default_factory=lambda: f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")

    @property
    def launcher_dir(self) -> Path:
        return self.results_dir / LAUNCHER_DIR


def seeds_of(args: argparse.Namespace) -> list[int]:
    """The sweep's seeds: ``--seeds`` (``0,1,2`` or a range ``0-2``, as ``bench run`` reads it) when given,
    else ``--seed``."""
    seeds = getattr(args, "seeds", None)
    if seeds is None or seeds == "" or seeds == []:
        return [int(getattr(args, "seed", 0) or 0)]
    if isinstance(seeds, str):
        return parse_seeds(seeds)
    return list(dict.fromkeys(int(s) for s in seeds))


def model_specs(models: str, protocol: str) -> list[tuple[str, str]]:
    """(registered name, what to pass to a job's --models) for every model of ``--models``: groups are
    expanded; a ``module:factory`` spec is passed on as itself, since a job registers it afresh."""
    out: list[tuple[str, str]] = []
    for item in (i.strip() for i in models.split(",")):
        if not item:
            continue
        for name in expand(item, protocol):
            if name not in {n for n, _ in out}:
                out.append((name, item if ":" in item else name))
    if not out:
        expand("", protocol)  # the registry's own error for an empty list
    return out


def job_arguments(args: argparse.Namespace, spec: str, seed: int, preset: str,
                  run_parser: argparse.ArgumentParser) -> list[str]:
    """The ``bench run`` arguments of one job: ``args`` as given (every option ``bench run`` has, paths made
    absolute, the preset made explicit) for one model and seed, with ``--launcher local``."""
    out = ["--models", spec, "--seed", str(seed)]
    parser, skipped = run_parser, launcher_dests() | PER_JOB_DESTS
    for action in parser._actions:  # noqa: SLF001
        dest = action.dest
        if not action.option_strings or dest in skipped or dest == "help":
            continue
        option = max(action.option_strings, key=len)
        value = getattr(args, dest, action.default)
        if dest == "preset":
            value = preset
        elif dest in ("results_dir", "data_dir", "init") and value:
            value = str(Path(value).expanduser().resolve())
        if isinstance(action, argparse.BooleanOptionalAction):
            if value is not None and value != action.default:
                positive = [o for o in action.option_strings if o.startswith("--") and not o.startswith("--no-")]
                negative = [o for o in action.option_strings if o.startswith("--no-")]
                out += [positive[0] if value else negative[0]]
        elif isinstance(action, argparse._StoreTrueAction):  # noqa: SLF001
            out += [option] if value else []
        elif isinstance(action, argparse._StoreFalseAction):  # noqa: SLF001
            out += [] if value else [option]
        elif isinstance(action, argparse._AppendAction):  # noqa: SLF001
            for item in value or []:
                out += [option, str(item)]
        elif isinstance(action, argparse._StoreAction):  # noqa: SLF001
            if value is None or (value == action.default and dest != "results_dir"):
                continue
            out += [option, *(map(str, value) if isinstance(value, (list, tuple)) else [str(value)])]
        else:
            raise RuntimeError(f"cannot pass option {option} ({type(action).__name__}) on to a job")
    if any(a.dest == "launcher" for a in parser._actions):  # noqa: SLF001
        out += ["--launcher", "local"]
    return out


def job_command(arguments: list[str], gpus: int) -> list[str]:
    """``python -m vpbench.cli run ARGS``, or under torchrun (``--standalone``: a free port per job, so that
    jobs sharing a node never collide) for ``gpus`` > 1."""
    if gpus > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(gpus),
                "-m", "vpbench.cli", "run", *arguments]
    return [sys.executable, "-m", "vpbench.cli", "run", *arguments]


def device_type(args: argparse.Namespace) -> str:
    """The device type the jobs will train on (for the default preset): the CPU only when asked for."""
    return "cpu" if str(getattr(args, "device", "auto")).startswith("cpu") else "cuda"


def plan_jobs(args: argparse.Namespace, run_parser: argparse.ArgumentParser, device_kind: str | None = None) -> Sweep:
    """Every (model, seed) job of the sweep, each configuration resolved and checked here, before anything
    is launched, so that a bad option fails at once instead of in every job. ``device_kind``: the device type
    the jobs train on when the caller knows it (the local launcher: this machine's), which picks the default
    preset; else :func:`device_type`."""
    if args.gpus_per_job < 1:
        raise UserError(f"--gpus-per-job {args.gpus_per_job}: use 1 or more")
    device = str(getattr(args, "device", "auto"))
    if args.launcher in ("gpus", "slurm") and re.fullmatch(r"cuda:\d+", device):
        raise UserError(f"--device {device} with --launcher {args.launcher}: each job sees its own GPUs as cuda:0...; "
                        "use --device auto or cuda")
    preset = presets.choose(args.preset, getattr(args, "protocol", None), device_kind or device_type(args))
    sets = cfg.parse_sets(getattr(args, "sets", []) or [], getattr(args, "metrics", None),
                          getattr(args, "samples", None))
    parse_loggers(getattr(args, "logger", None))  # a tracker's missing package fails here, not in every job
    world = distributed.Dist(0, args.gpus_per_job, 0)
    jobs, configs = [], []
    for name, spec in model_specs(args.models, preset.protocol):
        for seed in seeds_of(args):
            config = cfg.resolve(preset.name, name, args.dataset, seed=seed, epochs=getattr(args, "epochs", None),
                                 sets=sets)
            configs.append(config)
            distributed.check_batch(config["train"]["batch_size"], world)
            if getattr(args, "init", None):
                initial_weights(args.init, name)  # a bad --init fails here, not in every job
            # --samples K is the sweep's: a deterministic model's job draws its one future without it
            job_args = args if draws_of(config) else argparse.Namespace(**{**vars(args), "samples": None})
            command_ = job_command(job_arguments(job_args, spec, seed, preset.name, run_parser), args.gpus_per_job)
            jobs.append(Job(name, spec, seed, config["dataset"]["name"], preset.name, command_, args.gpus_per_job))
    check_samples(configs)  # --samples K > 1 with no stochastic model fails here, not in every job
    results_dir = Path(args.results_dir).expanduser().resolve()
    if not getattr(args, "dry_run", False):
        writable_results_dir(results_dir)
    return Sweep(jobs, results_dir, jobs[0].dataset, preset.name)


