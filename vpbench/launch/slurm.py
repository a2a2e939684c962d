"""``--launcher slurm``: one Slurm job per (model, seed), submitted as one job array through submitit.

A job with more than one GPU runs ``torchrun --standalone --nproc_per_node N -m vpbench.cli run ...``. A job that
is preempted or reaches its time limit is requeued and continues by itself: submitit calls
:meth:`SweepJob.checkpoint` on Slurm's warning signal, which stops the run (status ``interrupted``,
``checkpoints/last.pt`` is from its last finished epoch) and hands submitit the same command with
``--resume``; a job that Slurm requeues without a warning (``SLURM_RESTART_COUNT`` > 0) resumes too.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vpbench.errors import UserError
from vpbench.launch import jobs, processes
from vpbench.launch.base import Launcher, register_launcher
from vpbench.launch.plan import Sweep, device_type, plan_jobs


@register_launcher
class SlurmLauncher(Launcher):
    name = "slurm"
    help = "one Slurm job per model and seed (a job array)"
    shared = frozenset({"gpus_per_job", "dry_run"})

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:  # noqa: SLF001
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

    def launch(self, args: argparse.Namespace, run_parser: argparse.ArgumentParser) -> None:
        sweep = plan_jobs(args, run_parser)
        print(f"preset: {sweep.preset}" + ("" if args.preset else " (the jobs' default: --preset to change)"))
        launch_slurm(sweep, args)


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
    if device_type(args) == "cuda":
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
        self._process = subprocess.Popen(argv, env={**os.environ, "PYTHONUNBUFFERED": "1"}, preexec_fn=processes.ignore_usr2)
        try:
            while self._process.poll() is None:
                time.sleep(0.5)
        finally:
            if self._process.poll() is None:  # stopped from outside (requeue, SIGTERM): stop the run too
                processes.stop([self._process])
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
            processes.stop([self._process])
        return DelayedSubmission(SweepJob(self.model, self.seed, self.resume_command, self.resume_command))


def _executor(sweep: Sweep, args: argparse.Namespace) -> Any:
    import submitit

    folder = slurm_folder(sweep, args)
    if args.slurm_cluster == "local":
        executor = submitit.LocalExecutor(folder, max_num_timeout=args.slurm_max_requeues)
        executor.update_parameters(timeout_min=slurm_minutes(args.slurm_time), tasks_per_node=1, nodes=1,
                                   gpus_per_node=args.gpus_per_job if device_type(args) == "cuda" else 0,
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
    records = [jobs.record(sweep, job, i, "slurm", cluster=cluster, job_id=str(handle.job_id),
                       log=str(handle.paths.stdout), state="submitted")
               for i, (job, handle) in enumerate(zip(sweep.jobs, handles))]
    jobs.update_jobs(sweep.results_dir, lambda recorded: recorded.extend(records))
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
            jobs.set_fields(sweep.results_dir, record["id"], state="done" if state == "exit 0" else "failed",
                        ended=time.time())
            rows.append((job, jobs.job_outcome(job, handle.paths.stdout, sweep.results_dir), state))
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
    jobs.print_summary(rows)
    jobs.check_outcomes(rows, logs)
    return handles
