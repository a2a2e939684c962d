"""Launchers for ``bench run``: a sweep of (model, seed) jobs, in this process or spread over GPUs or Slurm.

* ``local`` (the default): every model in turn, in this process (``vpbench.cli.cmd_run``; nothing here).
* ``gpus``: one job per GPU of this machine at a time. Each (model, seed) job is a child process
  ``python -m vpbench.cli run --models M --seed S ... --launcher local`` with ``CUDA_VISIBLE_DEVICES`` set
  to its GPU (or group of GPUs, with ``--gpus-per-job N``, then under ``torchrun``) and its output in its
  own log. Ctrl-C or SIGTERM stops the children (they mark their runs ``interrupted``).
* ``slurm``: one Slurm job per (model, seed), submitted as one job array through submitit. A job with
  more than one GPU runs ``torchrun --standalone --nproc_per_node N -m vpbench.cli run ...``. A job that
  is preempted or reaches its time limit is requeued and continues by itself: submitit calls
  :meth:`SweepJob.checkpoint` on Slurm's warning signal, which stops the run (status ``interrupted``,
  ``checkpoints/last.pt`` is from its last finished epoch) and hands submitit the same command with
  ``--resume``; a job that Slurm requeues without a warning (``SLURM_RESTART_COUNT`` > 0) resumes too.

Every launch records its jobs in ``<results-dir>/.launcher/jobs.json`` (model, seed, dataset, preset, job
id, submit time, log), which ``bench status`` reads; results land in the same ``results/`` tree as local runs.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from vpbench.errors import UserError

LAUNCHERS = ("local", "gpus", "slurm")
LAUNCHER_DIR = ".launcher"
JOBS_FILE = "jobs.json"
# Options of the launchers themselves: never passed on to the jobs' own ``bench run``.
LAUNCH_DESTS = frozenset({
    "launcher", "gpus", "gpus_per_job", "slurm_partition", "slurm_time", "slurm_extra", "slurm_folder",
    "slurm_cluster", "slurm_wait", "slurm_max_requeues", "dry_run",
})
# Options set per job: --models and --seed name the job's model and seed; --seeds is expanded into jobs.
PER_JOB_DESTS = frozenset({"models", "seed", "seeds"})
STOP_GRACE = 15.0  # seconds a child has to mark its run interrupted before it is killed (cli's grace is 20)


# -- the command line ----------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The launcher options of ``bench run``."""
    group = parser.add_argument_group("launchers (a sweep of model x seed jobs)")
    group.add_argument("--launcher", choices=LAUNCHERS, default="local",
                       help="local: one run after another in this process (default); gpus: one job per GPU of "
                            "this machine at a time; slurm: one Slurm job per model and seed (a job array)")
    group.add_argument("--gpus", help="--launcher gpus: the GPUs to use, e.g. 0,1,2,3 (default: every visible GPU)")
    group.add_argument("--gpus-per-job", type=int, default=1,
                       help="GPUs per job (default 1); more than 1 runs the job under torchrun (DDP)")
    group.add_argument("--slurm-partition", help="--launcher slurm: the partition (default: the cluster's)")
    group.add_argument("--slurm-time", default="24:00:00",
                       help="--launcher slurm: time limit per job, in minutes or [D-]HH:MM:SS (default 24:00:00); "
                            "a job that reaches it is requeued and resumes")
    group.add_argument("--slurm-extra", action="append", default=[], metavar="KEY=VALUE",
                       help="--launcher slurm: another sbatch option, e.g. account=myproj, qos=high, "
                            "constraint=a100, mem=64G, cpus-per-task=8 (repeatable)")
    group.add_argument("--slurm-folder",
                       help="--launcher slurm: submitit's folder of scripts and job logs "
                            "(default: <results-dir>/.launcher/submitit)")
    group.add_argument("--slurm-cluster", choices=("slurm", "local"), default="slurm",
                       help="slurm (default) submits with sbatch; local runs the same submitit jobs as processes "
                            "of this machine (to try a sweep without a cluster)")
    group.add_argument("--slurm-wait", action="store_true",
                       help="--launcher slurm: wait for the jobs and print the sweep's summary (always on with "
                            "--slurm-cluster local)")
    group.add_argument("--slurm-max-requeues", type=int, default=20,
                       help="--launcher slurm: how many times a job may reach its time limit and be requeued "
                            "(default 20; preemptions do not count)")
    group.add_argument("--dry-run", action="store_true",
                       help="with --launcher gpus or slurm: print the jobs' commands (and the sbatch script) "
                            "and launch nothing")


def command(args: argparse.Namespace) -> None:
    """``bench run --launcher gpus|slurm``: plan the jobs, then launch them."""
    if args.launcher == "local":
        raise UserError("--launcher local runs in this process (vpbench.cli.cmd_run)")
    sweep = plan_jobs(args)
    print(f"preset: {sweep.preset}" + ("" if args.preset else " (the jobs' default: --preset to change)"))
    if args.launcher == "gpus":
        launch_gpus(sweep, args)
    else:
        launch_slurm(sweep, args)


def check_local(args: argparse.Namespace) -> None:
    """``--launcher local``: an option of the other launchers given anyway is an error, not silently ignored."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    for action in parser._actions:  # noqa: SLF001
        if action.dest != "launcher" and getattr(args, action.dest, action.default) != action.default:
            raise UserError(f"{max(action.option_strings, key=len)} is an option of --launcher gpus or slurm; "
                            "add --launcher gpus or --launcher slurm")


# -- planning --------------------------------------------------------------------------------------

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
        from vpbench.benchmarks.runner import parse_seeds

        return parse_seeds(seeds)
    return list(dict.fromkeys(int(s) for s in seeds))


def model_specs(models: str, protocol: str) -> list[tuple[str, str]]:
    """(registered name, what to pass to a job's --models) for every model of ``--models``: groups are
    expanded; a ``module:factory`` spec is passed on as itself, since a job registers it afresh."""
    from vpbench.models import expand

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


def subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The parser of command ``name`` of ``parser`` (argparse keeps subparsers in a private action)."""
    for action in parser._actions:  # noqa: SLF001
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return action.choices[name]
    raise RuntimeError(f"the parser has no {name} command")


def _run_parser() -> argparse.ArgumentParser:
    """The ``bench run`` parser as vpbench.cli builds it (what a job's command line may hold)."""
    from vpbench.cli import build_parser

    return subparser(build_parser(), "run")


def job_arguments(args: argparse.Namespace, spec: str, seed: int, preset: str) -> list[str]:
    """The ``bench run`` arguments of one job: ``args`` as given (every option ``bench run`` has, paths made
    absolute, the preset made explicit) for one model and seed, with ``--launcher local``."""
    out = ["--models", spec, "--seed", str(seed)]
    parser = _run_parser()
    for action in parser._actions:  # noqa: SLF001
        dest = action.dest
        if not action.option_strings or dest in LAUNCH_DESTS | PER_JOB_DESTS or dest == "help":
            continue
        option = max(action.option_strings, key=len)
        value = getattr(args, dest, action.default)
        if dest == "preset":
            value = preset
        elif dest in ("results_dir", "data_dir") and value:
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


def _device_type(args: argparse.Namespace) -> str:
    """The device type the jobs will train on (for the default preset): the CPU only when asked for."""
    return "cpu" if str(getattr(args, "device", "auto")).startswith("cpu") else "cuda"


def plan_jobs(args: argparse.Namespace) -> Sweep:
    """Every (model, seed) job of the sweep, each configuration resolved and checked here, before anything
    is launched, so that a bad option fails at once instead of in every job."""
    from vpbench import config as cfg
    from vpbench import presets
    from vpbench.benchmarks import distributed
    from vpbench.store import writable_results_dir

    if args.gpus_per_job < 1:
        raise UserError(f"--gpus-per-job {args.gpus_per_job}: use 1 or more")
    device = str(getattr(args, "device", "auto"))
    if args.launcher in ("gpus", "slurm") and re.fullmatch(r"cuda:\d+", device):
        raise UserError(f"--device {device} with --launcher {args.launcher}: each job sees its own GPUs as cuda:0...; "
                        "use --device auto or cuda")
    preset = presets.choose(args.preset, getattr(args, "protocol", None), _device_type(args))
    sets = cfg.parse_sets(getattr(args, "sets", []) or [])
    world = distributed.Dist(0, args.gpus_per_job, 0)
    jobs = []
    for name, spec in model_specs(args.models, preset.protocol):
        for seed in seeds_of(args):
            config = cfg.resolve(preset.name, name, args.dataset, seed=seed, epochs=getattr(args, "epochs", None),
                                 sets=sets)
            distributed.check_batch(config["train"]["batch_size"], world)
            command_ = job_command(job_arguments(args, spec, seed, preset.name), args.gpus_per_job)
            jobs.append(Job(name, spec, seed, config["dataset"]["name"], preset.name, command_, args.gpus_per_job))
    results_dir = Path(args.results_dir).expanduser().resolve()
    if not getattr(args, "dry_run", False):
        writable_results_dir(results_dir)
    return Sweep(jobs, results_dir, jobs[0].dataset, preset.name)


# -- the record of launched jobs (read by `bench status`) ------------------------------------------------

def jobs_path(results_dir: str | Path) -> Path:
    return Path(results_dir) / LAUNCHER_DIR / JOBS_FILE


@contextlib.contextmanager
def _locked(results_dir: Path) -> Iterator[None]:
    import fcntl

    lock = results_dir / LAUNCHER_DIR / "jobs.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_jobs(results_dir: str | Path) -> list[dict[str, Any]]:
    """Every job the launchers recorded under ``results_dir`` (oldest first); [] when there is no record."""
    path = jobs_path(results_dir)
    try:
        return list(json.loads(path.read_text()).get("jobs", []))
    except (OSError, ValueError):
        return []


def update_jobs(results_dir: str | Path, change: Callable[[list[dict[str, Any]]], None]) -> None:
    """Apply ``change`` to the job records in place, under a lock, and write them back atomically."""
    from vpbench.store import atomic_write_bytes

    results_dir = Path(results_dir)
    with _locked(results_dir):
        jobs = read_jobs(results_dir)
        change(jobs)
        atomic_write_bytes(jobs_path(results_dir), (json.dumps({"jobs": jobs}, indent=1) + "\n").encode())


def _record(sweep: Sweep, job: Job, index: int, launcher: str, **extra: Any) -> dict[str, Any]:
    now = time.time()
    return {"id": f"{sweep.launch_id}-{index}", "launch": sweep.launch_id, "launcher": launcher,
            "model": job.model, "seed": job.seed, "dataset": job.dataset, "preset": job.preset,
            "submitted": now, "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)),
            "host": socket.gethostname(), "launcher_pid": os.getpid(), "command": shlex.join(job.command), **extra}


def _set_fields(results_dir: Path, record_id: str, **fields: Any) -> None:
    def change(jobs: list[dict[str, Any]]) -> None:
        for record in jobs:
            if record.get("id") == record_id:
                record.update(fields)

    update_jobs(results_dir, change)


# -- what a job printed: its run folder and outcome -------------------------------------------------------

_RUN_FOLDER = re.compile(r": (?:run folder|already \w+ in) (\S.*?)(?:, skipped)?$")


def run_folder_from_log(log: str | Path) -> Path | None:
    """The run folder a job's log names (the last one: a resumed job names the run it continues)."""
    found = None
    try:
        for line in Path(log).read_text(errors="replace").splitlines():
            match = _RUN_FOLDER.search(line.strip())
            if match:
                found = Path(match.group(1))
    except OSError:
        return None
    return found


def job_outcome(job: Job, log: str | Path | None, results_dir: Path) -> dict[str, Any]:
    """status, mse, ssim and run folder of a finished job, from the run folder its log names."""
    from vpbench.store import RunDir

    folder = run_folder_from_log(log) if log else None
    if folder is None or not folder.is_dir():
        folder = _newest_run(results_dir, job)
    out: dict[str, Any] = {"run": str(folder) if folder else None, "status": "no run", "mse": None, "ssim": None}
    if folder is None:
        return out
    run = RunDir(folder)
    out["status"] = run.status().get("status", "unknown")
    if run.exists("metrics.json"):
        metrics = run.read_json("metrics.json")
        out.update(mse=metrics.get("mse"), ssim=metrics.get("ssim"), status=metrics.get("status", out["status"]))
    return out


def _newest_run(results_dir: Path, job: Job) -> Path | None:
    folder = results_dir / job.dataset / job.model
    runs = sorted(p for p in folder.glob(f"*-{job.preset}-s{job.seed}*") if (p / "config.yaml").is_file()
                  and re.search(rf"-{re.escape(job.preset)}-s{job.seed}(-\d+)?$", p.name))
    return runs[-1] if runs else None


def print_summary(rows: list[tuple[Job, dict[str, Any], str]]) -> None:
    """The sweep's table: one row per job."""
    print("\n| Model | Seed | MSE | SSIM | Status | Job | Run folder |\n|---|---:|---:|---:|---|---|---|")
    for job, outcome, state in rows:
        mse = "-" if outcome.get("mse") is None else f"{outcome['mse']:.1f}"
        ssim = "-" if outcome.get("ssim") is None else f"{outcome['ssim']:.4f}"
        run = outcome["run"] or "-"
        print(f"| {job.model} | {job.seed} | {mse} | {ssim} | {outcome['status']} | {state} | {run} |")


def _check_outcomes(rows: list[tuple[Job, dict[str, Any], str]], logs: dict[str, str]) -> None:
    bad = [f"{job.key} ({state}; log {logs.get(job.key, '-')})" for job, outcome, state in rows
           if state != "exit 0" or outcome["status"] not in ("finished", "diverged")]
    if bad:
        raise UserError(f"{len(bad)} of {len(rows)} jobs did not finish: {'; '.join(bad)}")


# -- --launcher gpus ---------------------------------------------------------------------------------------

def gpu_slots(gpus: str | None, per_job: int) -> list[str]:
    """CUDA_VISIBLE_DEVICES of each slot: ``--gpus 0,1,2,3`` in groups of ``per_job``."""
    if gpus:
        ids = [g.strip() for g in gpus.split(",") if g.strip()]
        if not ids or len(set(ids)) != len(ids):
            raise UserError(f"--gpus {gpus!r}: expected distinct GPU indices, e.g. 0,1,2,3")
    else:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserError("--launcher gpus: no GPU is visible on this machine; pass --gpus 0,1,... "
                            "(with --device cpu, CPU processes stand in for them)")
        ids = [str(i) for i in range(count)]
    if len(ids) < per_job:
        raise UserError(f"--gpus-per-job {per_job} needs at least {per_job} GPUs; --gpus gives {len(ids)}")
    return [",".join(ids[i : i + per_job]) for i in range(0, len(ids) - per_job + 1, per_job)]


def _ignore_usr2() -> None:
    """In a job's process (before exec): ignore Slurm's warning signal, which the launcher handles."""
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def _stop(processes: list[subprocess.Popen], grace: float = STOP_GRACE, settle: float = 0.0) -> None:
    """SIGTERM to each process (its run marks itself interrupted), SIGKILL to those alive after ``grace``.

    ``settle``: seconds to wait first, for processes that got the same Ctrl-C from the terminal (a second
    signal could cut short the writing of their ``interrupted`` status)."""
    deadline = time.time() + settle
    while time.time() < deadline and any(p.poll() is None for p in processes):
        time.sleep(0.1)
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
    deadline = time.time() + grace
    while time.time() < deadline and any(p.poll() is None for p in processes):
        time.sleep(0.1)
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()


def launch_gpus(sweep: Sweep, args: argparse.Namespace, *, poll: float = 0.2) -> list[tuple[Job, dict, str]]:
    """Run the sweep's jobs as child processes, at most one per GPU slot at a time; returns the summary rows."""
    slots = gpu_slots(args.gpus, args.gpus_per_job)
    logs_dir = sweep.launcher_dir / "logs" / sweep.launch_id
    if args.dry_run:
        for job in sweep.jobs:
            print(f"{job.key}: {shlex.join(job.command)}")
        print(f"{len(sweep.jobs)} jobs on GPU slots {', '.join(slots)}; nothing launched (--dry-run)")
        return []
    logs = {job.key: str(logs_dir / f"{job.model}-s{job.seed}.log") for job in sweep.jobs}
    records = [_record(sweep, job, i, "gpus", job_id=f"{sweep.launch_id}-{i}", state="queued", log=logs[job.key])
               for i, job in enumerate(sweep.jobs)]
    update_jobs(sweep.results_dir, lambda jobs: jobs.extend(records))
    logs_dir.mkdir(parents=True, exist_ok=True)
    print(f"launcher gpus: {len(sweep.jobs)} jobs ({sweep.dataset}, preset {sweep.preset}) on "
          f"{len(slots)} slot(s): CUDA_VISIBLE_DEVICES={' | '.join(slots)}; logs in {logs_dir}", flush=True)
    queue = list(zip(sweep.jobs, records))
    free = list(slots)
    running: dict[int, tuple[Job, dict, subprocess.Popen, str, Any]] = {}
    states: dict[str, str] = {}
    try:
        while queue or running:
            while queue and free:
                job, record = queue.pop(0)
                slot = free.pop(0)
                env = {**os.environ, "CUDA_VISIBLE_DEVICES": slot, "PYTHONUNBUFFERED": "1"}
                handle = open(logs[job.key], "a")
                handle.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} CUDA_VISIBLE_DEVICES={slot} "
                             f"{shlex.join(job.command)}\n")
                handle.flush()
                process = subprocess.Popen(job.command, stdout=handle, stderr=subprocess.STDOUT, env=env,
                                           preexec_fn=_ignore_usr2)
                running[process.pid] = (job, record, process, slot, handle)
                _set_fields(sweep.results_dir, record["id"], state="running", started=time.time(), pid=process.pid,
                            gpu=slot)
                print(f"{job.key}: started on CUDA_VISIBLE_DEVICES={slot} (pid {process.pid})", flush=True)
            for pid, (job, record, process, slot, handle) in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                handle.close()
                del running[pid]
                free.append(slot)
                states[job.key] = f"exit {code}"
                _set_fields(sweep.results_dir, record["id"], state="done" if code == 0 else "failed", ended=time.time(),
                            returncode=code)
                print(f"{job.key}: {'done' if code == 0 else f'failed (exit code {code}, log {logs[job.key]})'}",
                      flush=True)
            time.sleep(poll)
    except KeyboardInterrupt:
        print(f"launcher gpus: stopping {len(running)} running job(s); {len(queue)} not started", file=sys.stderr,
              flush=True)
        _stop([entry[2] for entry in running.values()], settle=3.0)
        for _job, record, process, _slot, handle in running.values():
            handle.close()
            _set_fields(sweep.results_dir, record["id"], state="interrupted", ended=time.time(),
                        returncode=process.returncode)
        for _job, record in queue:
            _set_fields(sweep.results_dir, record["id"], state="cancelled")
        raise
    rows = [(job, job_outcome(job, logs[job.key], sweep.results_dir), states.get(job.key, "-")) for job in sweep.jobs]
    print_summary(rows)
    _check_outcomes(rows, logs)
    return rows


# -- --launcher slurm -------------------------------------------------------------------------------------

def slurm_minutes(text: str) -> int:
    """A Slurm time limit (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``) in minutes,
    rounded up (fractions of a minute are allowed in the minutes form, for tests)."""
    text = str(text).strip()
    days, dash, rest = text.partition("-")
    try:
        if not dash:
            days, rest = "0", text
            parts = [float(p) for p in rest.split(":")]
            if len(parts) == 1:
                minutes = parts[0]
            elif len(parts) == 2:
                minutes = parts[0] + parts[1] / 60
            elif len(parts) == 3:
                minutes = parts[0] * 60 + parts[1] + parts[2] / 60
            else:
                raise ValueError
        else:
            parts = [float(p) for p in rest.split(":")]
            if not 1 <= len(parts) <= 3:
                raise ValueError
            parts += [0.0] * (3 - len(parts))
            minutes = int(days) * 1440 + parts[0] * 60 + parts[1] + parts[2] / 60
    except ValueError:
        raise UserError(f"--slurm-time {text!r}: expected minutes or [D-]HH:MM:SS, e.g. 24:00:00 or "
                        "2-00:00:00") from None
    if minutes <= 0:
        raise UserError(f"--slurm-time {text!r}: must be more than 0")
    return minutes if minutes < 1 else math.ceil(minutes)


def slurm_extra(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--slurm-extra {item!r}: expected KEY=VALUE, e.g. account=myproj")
        out[key.strip().lstrip("-")] = value.strip()
    return out


def slurm_parameters(sweep: Sweep, args: argparse.Namespace) -> dict[str, Any]:
    """The parameters of submitit's SlurmExecutor (sbatch options) for the sweep's job array."""
    from submitit.slurm.slurm import _get_default_parameters

    gpus = args.gpus_per_job
    params: dict[str, Any] = {
        "job_name": f"vpbench-{sweep.dataset}-{sweep.preset}",
        "time": slurm_minutes(args.slurm_time),
        "nodes": 1,
        "ntasks_per_node": 1,
        "cpus_per_task": 5 * gpus,  # a training process and 4 loader workers (train.num_workers) per GPU
        "signal_delay_s": 120,  # Slurm's warning signal (USR2) before the time limit: time to stop and requeue
        "setup": ["export PYTHONUNBUFFERED=1"] + _script_comments(sweep),
    }
    if _device_type(args) == "cuda":
        params["gpus_per_node"] = gpus
    if args.slurm_partition:
        params["partition"] = args.slurm_partition
    additional = {}
    known = set(_get_default_parameters())
    for key, value in slurm_extra(args.slurm_extra).items():
        name = key.replace("-", "_")
        if name in known and name not in ("setup", "teardown", "additional_parameters", "srun_args"):
            params[name] = int(value) if value.isdigit() else value
        else:
            additional[key] = value
    if additional:
        params["additional_parameters"] = additional
    return params


def _script_comments(sweep: Sweep) -> list[str]:
    """Lines of the sbatch script naming what each array task runs, and what it runs after a requeue."""
    lines = ["# vpbench: one (model, seed) job per array task, SLURM_ARRAY_TASK_ID: command"]
    for i, job in enumerate(sweep.jobs):
        lines.append(f"#   {i}: {shlex.join(job.command)}")
    lines.append("# requeued after preemption or the time limit, each task runs its command with --resume:")
    for i, job in enumerate(sweep.jobs):
        lines.append(f"#   {i} (requeue): {shlex.join(job.resume_command())}")
    return lines


def slurm_folder(sweep: Sweep, args: argparse.Namespace) -> Path:
    base = Path(args.slurm_folder).expanduser().resolve() if args.slurm_folder else sweep.launcher_dir / "submitit"
    return base / "%j"


def slurm_script(sweep: Sweep, args: argparse.Namespace) -> str:
    """The sbatch script of the sweep's job array, as submitit writes it (without submitting anything)."""
    from submitit.slurm.slurm import _make_sbatch_string

    folder = slurm_folder(sweep, args)
    runner = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))])
    params = slurm_parameters(sweep, args)
    return _make_sbatch_string(command=runner, folder=folder, map_count=len(sweep.jobs) if len(sweep.jobs) > 1
                               else None, **params)


class SweepJob:
    """A submitit job: run one (model, seed) command and, when Slurm warns of preemption or the time
    limit, stop it and hand back the same command with ``--resume`` (submitit requeues the job with it)."""

    def __init__(self, model: str, seed: int, command: list[str], resume_command: list[str]) -> None:
        self.model, self.seed = model, seed
        self.command, self.resume_command = list(command), list(resume_command)
        self._process: subprocess.Popen | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_process"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._process = None

    def argv(self) -> list[str]:
        """The command to run now: with ``--resume`` when Slurm restarted this job (requeued without warning)."""
        restarted = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0
        return self.resume_command if restarted else self.command

    def __call__(self) -> dict[str, Any]:
        argv = self.argv()
        print(f"vpbench job {self.model} seed {self.seed}: {shlex.join(argv)}", flush=True)
        self._process = subprocess.Popen(argv, env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=_ignore_usr2)
        try:
            while self._process.poll() is None:
                time.sleep(0.5)
        finally:
            if self._process.poll() is None:  # stopped from outside (requeue, SIGTERM): stop the run too
                _stop([self._process])
        code = self._process.returncode
        if code != 0:
            raise RuntimeError(f"{self.model} seed {self.seed}: bench run exited with code {code}")
        return {"model": self.model, "seed": self.seed, "returncode": code}

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Called by submitit on Slurm's warning signal: stop the run (it marks itself interrupted) and
        requeue the same command with ``--resume``."""
        from submitit.helpers import DelayedSubmission

        if self._process is not None:
            print(f"vpbench job {self.model} seed {self.seed}: preempted or at the time limit; stopping the run "
                  "and requeueing it with --resume", flush=True)
            _stop([self._process])
        return DelayedSubmission(SweepJob(self.model, self.seed, self.resume_command, self.resume_command))


def _executor(sweep: Sweep, args: argparse.Namespace) -> Any:
    import submitit

    folder = slurm_folder(sweep, args)
    if args.slurm_cluster == "local":
        executor = submitit.LocalExecutor(folder, max_num_timeout=args.slurm_max_requeues)
        executor.update_parameters(timeout_min=slurm_minutes(args.slurm_time), tasks_per_node=1, nodes=1,
                                   gpus_per_node=args.gpus_per_job if _device_type(args) == "cuda" else 0,
                                   signal_delay_s=min(120, max(5, int(slurm_minutes(args.slurm_time) * 60 / 4))))
        return executor
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise UserError("--launcher slurm: sbatch/srun not found on this machine; run it on the cluster's login node "
                        "(or --dry-run to see the script, --slurm-cluster local to run the jobs here)")
    executor = submitit.SlurmExecutor(folder, max_num_timeout=args.slurm_max_requeues)
    executor.update_parameters(**slurm_parameters(sweep, args))
    return executor


def launch_slurm(sweep: Sweep, args: argparse.Namespace) -> list[Any]:
    """Submit one job per (model, seed) as one job array; returns submitit's job handles. Waits for them
    (and prints the summary) with ``--slurm-wait`` or ``--slurm-cluster local``."""
    if args.dry_run:
        for job in sweep.jobs:
            print(f"{job.key}: {shlex.join(job.command)}")
        if args.slurm_cluster == "slurm":
            print("\n" + slurm_script(sweep, args))
        print(f"{len(sweep.jobs)} jobs; nothing submitted (--dry-run)")
        return []
    executor = _executor(sweep, args)
    with executor.batch():
        handles = [executor.submit(SweepJob(job.model, job.seed, job.command, job.resume_command()))
                   for job in sweep.jobs]
    cluster = "slurm" if args.slurm_cluster == "slurm" else "local"
    records = [_record(sweep, job, i, "slurm", cluster=cluster, job_id=str(handle.job_id),
                       log=str(handle.paths.stdout), state="submitted")
               for i, (job, handle) in enumerate(zip(sweep.jobs, handles))]
    update_jobs(sweep.results_dir, lambda jobs: jobs.extend(records))
    for job, handle in zip(sweep.jobs, handles):
        print(f"{job.key}: job {handle.job_id} (log {handle.paths.stdout})")
    print(f"submitted {len(handles)} jobs ({sweep.dataset}, preset {sweep.preset}) to {cluster}; "
          f"results in {sweep.results_dir}; follow them with `bench status --results-dir {sweep.results_dir}`",
          flush=True)
    if not (args.slurm_wait or args.slurm_cluster == "local"):
        return handles
    rows, logs = [], {}
    try:
        for job, handle, record in zip(sweep.jobs, handles, records):
            try:
                handle.result()
                state = "exit 0"
            except Exception as err:  # noqa: BLE001  the job's failure, reported in the summary
                state = f"failed: {str(err).strip().splitlines()[-1][:200] if str(err).strip() else type(err).__name__}"
            logs[job.key] = str(handle.paths.stdout)
            _set_fields(sweep.results_dir, record["id"], state="done" if state == "exit 0" else "failed",
                        ended=time.time())
            rows.append((job, job_outcome(job, handle.paths.stdout, sweep.results_dir), state))
    except KeyboardInterrupt:
        if args.slurm_cluster == "local":
            for handle in handles:
                with contextlib.suppress(Exception):
                    handle.cancel(check=False)
            print("launcher slurm: local jobs cancelled", file=sys.stderr)
        else:
            print("launcher slurm: stopped waiting; the jobs keep running (scancel "
                  f"{str(handles[0].job_id).split('_')[0]} to stop them)", file=sys.stderr)
        raise
    print_summary(rows)
    _check_outcomes(rows, logs)
    return handles
