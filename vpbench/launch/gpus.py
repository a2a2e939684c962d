"""``--launcher gpus``: one job per GPU of this machine at a time.

Each (model, seed) job is a child process ``python -m vpbench.cli run --models M --seed S ... --launcher local``
with ``CUDA_VISIBLE_DEVICES`` set to its GPU (or group of GPUs, with ``--gpus-per-job N``, then under
``torchrun``) and its output in its own log. Ctrl-C or SIGTERM stops the children (they mark their runs
``interrupted``).
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from typing import Any

from vpbench.errors import UserError
from vpbench.launch import jobs, processes
from vpbench.launch.base import Launcher, register_launcher
from vpbench.launch.plan import Job, Sweep, plan_jobs


@register_launcher
class GpusLauncher(Launcher):
    name = "gpus"
    help = "one job per GPU of this machine at a time"
    shared = frozenset({"gpus_per_job", "dry_run"})

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:  # noqa: SLF001
        group.add_argument("--gpus", help="--launcher gpus: the GPUs to use, e.g. 0,1,2,3 (default: every visible GPU)")

    def launch(self, args: argparse.Namespace, run_parser: argparse.ArgumentParser) -> None:
        sweep = plan_jobs(args, run_parser)
        print(f"preset: {sweep.preset}" + ("" if args.preset else " (the jobs' default: --preset to change)"))
        launch_gpus(sweep, args)


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
    records = [jobs.record(sweep, job, i, "gpus", job_id=f"{sweep.launch_id}-{i}", state="queued", log=logs[job.key])
               for i, job in enumerate(sweep.jobs)]
    jobs.update_jobs(sweep.results_dir, lambda recorded: recorded.extend(records))
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
                                           preexec_fn=processes.ignore_usr2)
                running[process.pid] = (job, record, process, slot, handle)
                jobs.set_fields(sweep.results_dir, record["id"], state="running", started=time.time(), pid=process.pid,
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
                jobs.set_fields(sweep.results_dir, record["id"], state="done" if code == 0 else "failed", ended=time.time(),
                            returncode=code)
                print(f"{job.key}: {'done' if code == 0 else f'failed (exit code {code}, log {logs[job.key]})'}",
                      flush=True)
            time.sleep(poll)
    except KeyboardInterrupt:
        print(f"launcher gpus: stopping {len(running)} running job(s); {len(queue)} not started", file=sys.stderr,
              flush=True)
        processes.stop([entry[2] for entry in running.values()], settle=3.0)
        for _job, record, process, _slot, handle in running.values():
            handle.close()
            jobs.set_fields(sweep.results_dir, record["id"], state="interrupted", ended=time.time(),
                        returncode=process.returncode)
        for _job, record in queue:
            jobs.set_fields(sweep.results_dir, record["id"], state="cancelled")
        raise
    rows = [(job, jobs.job_outcome(job, logs[job.key], sweep.results_dir), states.get(job.key, "-")) for job in sweep.jobs]
    jobs.print_summary(rows)
    jobs.check_outcomes(rows, logs)
    return rows


