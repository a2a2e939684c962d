"""The record of launched jobs (``<results-dir>/.launcher/jobs.json``, read by ``bench status``) and what a
finished job left: the run folder its log names, its outcome, the sweep's summary table."""
from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from vpbench.errors import UserError
from vpbench.launch.plan import LAUNCHER_DIR, Job, Sweep
from vpbench.store import DONE, RunDir, atomic_write_bytes

JOBS_FILE = "jobs.json"


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
    results_dir = Path(results_dir)
    with _locked(results_dir):
        jobs = read_jobs(results_dir)
        change(jobs)
        atomic_write_bytes(jobs_path(results_dir), (json.dumps({"jobs": jobs}, indent=1) + "\n").encode())


def record(sweep: Sweep, job: Job, index: int, launcher: str, **extra: Any) -> dict[str, Any]:
    now = time.time()
    return {"id": f"{sweep.launch_id}-{index}", "launch": sweep.launch_id, "launcher": launcher,
            "model": job.model, "seed": job.seed, "dataset": job.dataset, "preset": job.preset,
            "submitted": now, "submitted_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)),
            "host": socket.gethostname(), "launcher_pid": os.getpid(), "command": shlex.join(job.command), **extra}


def set_fields(results_dir: Path, record_id: str, **fields: Any) -> None:
    def change(jobs: list[dict[str, Any]]) -> None:
        for record in jobs:
            if record.get("id") == record_id:
                record.update(fields)

    update_jobs(results_dir, change)


# -- what a job printed: its run folder and outcome

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


def check_outcomes(rows: list[tuple[Job, dict[str, Any], str]], logs: dict[str, str]) -> None:
    bad = [f"{job.key} ({state}; log {logs.get(job.key, '-')})" for job, outcome, state in rows
           if state != "exit 0" or outcome["status"] not in DONE]
    if bad:
        raise UserError(f"{len(bad)} of {len(rows)} jobs did not finish: {'; '.join(bad)}")


