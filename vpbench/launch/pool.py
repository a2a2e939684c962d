"""Running a sweep's jobs as child processes on a fixed set of slots, at most one job per slot at a time.

A slot is what a job is given: a GPU (or group of GPUs) for ``--launcher gpus``, a share of this machine's CPU
cores for ``bench run --jobs N``. Each job's output goes to its own log; this process prints one line per job
started and finished and a line of overall progress (jobs done of all, elapsed, an estimate of what remains),
so that the console stays readable however many jobs run side by side. Ctrl-C or SIGTERM stops the children
(they mark their runs ``interrupted``), records the jobs and re-raises.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from vpbench.harness.estimate import makespan
from vpbench.launch import jobs, processes
from vpbench.launch.plan import Job, Sweep

PROGRESS_EVERY = 30.0  # seconds between progress lines while no job starts or ends


@dataclass(frozen=True)
class Slot:
    """Where a job runs: a label for the console, the environment its process gets and what the jobs record notes
    of it (``{"gpu": "0"}``, ``{"threads": 1}``)."""

    label: str
    env: Mapping[str, str]
    fields: Mapping[str, Any] = field(default_factory=dict)


def duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s``, ``42s``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


# Seconds of agreement between estimate and measurement assumed before any job ends: finished jobs correct the
# estimates in proportion to their length, so that a job of seconds (persistence: mostly the process's start, 7 s
# against its 1-s estimate) no longer multiplies a 40-minute estimate by 5.
PRIOR_SECONDS = 60.0


@dataclass
class Progress:
    """The overall line: jobs done of all, elapsed and remaining time. ``estimates`` (seconds per job key, from a
    short measured step) give the remaining time before any job ends; finished jobs rescale them by how long they
    really took."""

    total: int
    slots: int
    estimates: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    done: dict[str, float] = field(default_factory=dict)          # job key -> seconds it took
    running: dict[str, float] = field(default_factory=dict)       # job key -> start time
    last_line: float = 0.0

    def remaining(self, now: float) -> float | None:
        """Seconds left: the work not done (estimates, corrected by the ratio of measured to estimated time of the
        finished jobs, both with :data:`PRIOR_SECONDS` added) scheduled on the slots, the running jobs first (the
        longest job bounds it: one 40-minute run beside a 7-second one leaves 40 minutes, not 20)."""
        if not self.estimates:
            return None
        finished = [k for k in self.done if k in self.estimates]
        ratio = ((sum(self.done[k] for k in finished) + PRIOR_SECONDS)
                 / (sum(self.estimates[k] for k in finished) + PRIOR_SECONDS))
        left = {key: max(estimate * ratio - (now - self.running.get(key, now)), 0.0)
                for key, estimate in self.estimates.items() if key not in self.done}
        order = sorted(left, key=lambda key: key not in self.running)  # running first, then the queue's order
        return makespan([left[key] for key in order], self.slots)

    def line(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        self.last_line = now
        return (f"progress: {len(self.done)} of {self.total} done, {len(self.running)} running | elapsed "
                f"{duration(now - self.started)} | remaining ~{duration(self.remaining(now))}")


def run_pool(sweep: Sweep, slots: list[Slot], launcher: str, *, poll: float = 0.2, progress: Progress | None = None,
             order: list[Job] | None = None) -> list[tuple[Job, dict[str, Any], str]]:
    """Run every job of ``sweep``, at most one per slot at a time, in ``order`` (default: the sweep's); returns the
    summary rows (job, outcome, state), in the sweep's order."""
    logs_dir = sweep.launcher_dir / "logs" / sweep.launch_id
    logs = {job.key: str(logs_dir / f"{job.model}-s{job.seed}.log") for job in sweep.jobs}
    records = [jobs.record(sweep, job, i, launcher, job_id=f"{sweep.launch_id}-{i}", state="queued", log=logs[job.key])
               for i, job in enumerate(sweep.jobs)]
    jobs.update_jobs(sweep.results_dir, lambda recorded: recorded.extend(records))
    logs_dir.mkdir(parents=True, exist_ok=True)
    progress = progress or Progress(len(sweep.jobs), len(slots))
    record_of = {job.key: record for job, record in zip(sweep.jobs, records)}
    queue = [(job, record_of[job.key]) for job in (order or sweep.jobs)]
    free = list(slots)
    running: dict[int, tuple[Job, dict, subprocess.Popen, Slot, Any]] = {}
    states: dict[str, str] = {}
    try:
        while queue or running:
            while queue and free:
                job, record = queue.pop(0)
                slot = free.pop(0)
                handle = open(logs[job.key], "a")
                handle.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} {slot.label} {shlex.join(job.command)}\n")
                handle.flush()
                process = subprocess.Popen(job.command, stdout=handle, stderr=subprocess.STDOUT,
                                           env={**os.environ, **slot.env, "PYTHONUNBUFFERED": "1"},
                                           preexec_fn=processes.ignore_usr2)
                running[process.pid] = (job, record, process, slot, handle)
                progress.running[job.key] = time.time()
                jobs.set_fields(sweep.results_dir, record["id"], state="running", started=time.time(), pid=process.pid,
                                **slot.fields)
                print(f"{job.key}: started on {slot.label} (pid {process.pid})", flush=True)
            ended = False
            for pid, (job, record, process, slot, handle) in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                handle.close()
                del running[pid]
                free.append(slot)
                progress.done[job.key] = time.time() - progress.running.pop(job.key)
                states[job.key] = f"exit {code}"
                jobs.set_fields(sweep.results_dir, record["id"], state="done" if code == 0 else "failed",
                                ended=time.time(), returncode=code)
                took = duration(progress.done[job.key])
                print(f"{job.key}: {f'done in {took}' if code == 0 else f'failed (exit code {code}, log {logs[job.key]})'}",
                      flush=True)
                ended = True
            if (ended and (queue or running)) or time.time() - progress.last_line > PROGRESS_EVERY:
                print(progress.line(), flush=True)
            time.sleep(poll)
    except KeyboardInterrupt:
        print(f"launcher {launcher}: stopping {len(running)} running job(s); {len(queue)} not started",
              file=sys.stderr, flush=True)
        processes.stop([entry[2] for entry in running.values()], settle=3.0)
        for _job, record, process, _slot, handle in running.values():
            handle.close()
            jobs.set_fields(sweep.results_dir, record["id"], state="interrupted", ended=time.time(),
                            returncode=process.returncode)
        for _job, record in queue:
            jobs.set_fields(sweep.results_dir, record["id"], state="cancelled")
        raise
    print(f"sweep: {len(sweep.jobs)} jobs in {duration(time.time() - progress.started)}", flush=True)
    rows = [(job, jobs.job_outcome(job, logs[job.key], sweep.results_dir), states.get(job.key, "-"))
            for job in sweep.jobs]
    jobs.print_summary(rows)
    jobs.check_outcomes(rows, logs)
    return rows
