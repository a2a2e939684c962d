"""``bench status``: where every run of a results tree stands, and the jobs launchers have queued.

One line per run folder (``<results-dir>/<dataset>/<model>/<run-id>/``): model, seed, dataset, preset,
state, the epoch reached out of the run's epochs, the last validation MSE (``train_log.csv``), the
training time so far and an estimate of the time left (mean epoch seconds x epochs left). Jobs that a
launcher submitted (``<results-dir>/.launcher/jobs.json``, see :mod:`vpbench.launch.jobs`) and that have not
started a run yet are one line each, ``queued``; with Slurm each line also gives the job id and its state
from ``sacct`` (or ``squeue``), else ``unknown``.

States: ``queued``, ``running``, ``finished``, ``failed``, ``diverged``, ``interrupted``, ``stopped`` for a run
that says ``running`` but whose process is gone (the pid its lock records has gone from this host, or its
heartbeat stopped: see :mod:`vpbench.locks`), and ``stalled?`` for such a run that records no holder (written
before run folders had locks) when its launcher's record says so, Slurm ended its job, or nothing has been
written to it for three epochs' time.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable

from vpbench.errors import UserError
from vpbench.launch.jobs import read_jobs, run_folder_from_log
from vpbench.locks import holder_alive, pid_alive, read_holder
from vpbench.store import iter_runs

# Slurm states in which a job will not run any more (a run still "running" in it has lost its process).
SLURM_ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
               "PREEMPTED", "TIMEOUT", "REVOKED", "SPECIAL_EXIT"}
SLURM_ACTIVE = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "RESIZING"}
SLURM_WAITING = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED", "CONFIGURING"}
STALL_EPOCHS = 3          # a running run with no write for this many mean epochs is "stalled?"
STALL_MIN_SECONDS = 600   # ... and for at least this long
LAUNCHER_ACTIVE = ("queued", "submitted", "running")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results-dir", default="results", help="folder of run folders (default: results)")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="json: a list of objects, one per line of the table")


def command(args: argparse.Namespace) -> None:
    rows = status_rows(args.results_dir)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return
    print(format_table(rows))


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _run_time(run_id: str) -> float | None:
    """When a run folder was created, from its id ``YYYYmmdd-HHMMSS-...``."""
    try:
        return time.mktime(time.strptime(run_id[:15], "%Y%m%d-%H%M%S"))
    except ValueError:
        return None


def read_run(path: Path) -> dict[str, Any] | None:
    """What ``bench status`` shows of one run folder (None when it has no readable configuration)."""
    import pandas as pd
    import yaml

    try:
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    try:
        status = json.loads((path / "status.json").read_text())
    except (OSError, ValueError):
        status = {"status": "unknown"}
    epochs_done, val_mse, seconds = 0, None, []
    try:
        log = pd.read_csv(path / "train_log.csv")
        if len(log):
            epochs_done = int(log["epoch"].iloc[-1])
            val_mse = float(log["val_mse"].iloc[-1]) if "val_mse" in log else None
            seconds = [float(s) for s in log["seconds"]] if "seconds" in log else []
    except (OSError, ValueError, KeyError, pd.errors.EmptyDataError):
        pass
    eval_seconds = 0.0
    try:
        eval_seconds = float(json.loads((path / "metrics.json").read_text()).get("eval_seconds") or 0.0)
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    files = [path / name for name in ("status.json", "train_log.csv", "log.txt", "checkpoints/last.pt")]
    activity = max((t for t in map(_mtime, files) if t is not None), default=_run_time(path.name))
    train = config.get("train") or {}
    holder = read_holder(path) or {}
    return {
        "model": (config.get("model") or {}).get("name", path.parent.name),
        "seed": config.get("seed"),
        "dataset": (config.get("dataset") or {}).get("name", path.parent.parent.name),
        "preset": config.get("preset"),
        "state": status.get("status", "unknown"),
        "epoch": max(epochs_done, int(status.get("epochs") or 0)),
        "epochs": train.get("epochs"),
        "val_mse": val_mse,
        "elapsed_s": round(sum(seconds) + eval_seconds, 1),
        "mean_epoch_s": sum(seconds) / len(seconds) if seconds else None,
        "left_s": None,
        "job_id": None,
        "job_state": None,
        "run": str(path),
        "run_id": path.name,
        "created": _run_time(path.name),
        "activity": activity,
        "error": status.get("error"),
        "pid": holder.get("pid"),
        "host": holder.get("host"),
    }


# -- the launchers' records and the scheduler ------------------------------------------------------------

def expand_job_ids(text: str) -> list[str]:
    """``123_[0-2,5%4]`` -> ``123_0 123_1 123_2 123_5``; any other id as itself."""
    match = re.fullmatch(r"(\d+)_\[([^\]]+)\]", text.strip())
    if not match:
        return [text.strip()]
    base, body = match.group(1), match.group(2).split("%")[0]
    out = []
    for part in body.split(","):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            out.extend(f"{base}_{i}" for i in range(int(lo), int(hi or lo) + 1))
    return out


def slurm_states(job_ids: Iterable[str], *, timeout: float = 20.0) -> dict[str, str]:
    """Slurm's state of each job id (``123`` or array task ``123_4``), from ``sacct``, else ``squeue``;
    ids the scheduler does not answer for are missing (shown as ``unknown``)."""
    ids = sorted({str(j) for j in job_ids if j})
    if not ids:
        return {}
    bases = sorted({j.split("_")[0] for j in ids})
    states: dict[str, str] = {}
    queries = []
    if shutil.which("sacct"):
        queries.append(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(bases)])
    if shutil.which("squeue"):
        queries.append(["squeue", "-h", "-o", "%i|%T", "-j", ",".join(bases)])
    for query in queries:
        try:
            out = subprocess.run(query, capture_output=True, text=True, timeout=timeout, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for line in out.splitlines():
            job, _, state = line.strip().partition("|")
            if not job or not state:
                continue
            for one in expand_job_ids(job):
                states.setdefault(one, state.split()[0].rstrip("+"))
        if all(j in states for j in ids):
            break
    return states


def _job_state(record: dict[str, Any], scheduler: dict[str, str], here: str) -> tuple[str, bool | None]:
    """(the job's state as shown, whether its process is alive: None when unknown)."""
    launcher, recorded = record.get("launcher"), record.get("state", "unknown")
    same_host = record.get("host") == here
    if launcher == "slurm" and record.get("cluster", "slurm") == "slurm":
        state = scheduler.get(str(record.get("job_id")), "unknown")
        if state == "unknown":
            return state, None
        return state, state in SLURM_ACTIVE
    if launcher == "gpus" and recorded == "queued":  # waiting in its launcher's queue, unless the launcher is gone
        launcher_alive = pid_alive(record.get("launcher_pid")) if same_host else None
        return ("cancelled" if launcher_alive is False else "queued"), None
    # processes of this machine: the gpus launcher's children, submitit's local jobs (their controller)
    pid = record.get("pid") if launcher == "gpus" else record.get("job_id")
    alive = pid_alive(pid) if same_host and pid else None
    if recorded in ("submitted", "running") and alive is not None:
        return ("running" if alive else "ended"), alive
    return recorded, alive if recorded in ("submitted", "running") else False


# -- the table --------------------------------------------------------------------------------------------

def status_rows(results_dir: str | Path, *, now: float | None = None,
                scheduler: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One dict per run folder and per launched job without a run yet (see the module's docstring).
    ``scheduler``: Slurm states by job id (queried with sacct/squeue when None)."""
    root = Path(results_dir).expanduser()
    if not root.is_dir():
        raise UserError(f"results directory {str(root)!r} does not exist; pass --results-dir DIR")
    now = time.time() if now is None else now
    here = socket.gethostname()
    runs = [r for r in (read_run(run.path) for run in iter_runs(root)) if r is not None]
    records = read_jobs(root)
    if scheduler is None:
        scheduler = slurm_states(r.get("job_id") for r in records
                                 if r.get("launcher") == "slurm" and r.get("cluster", "slurm") == "slurm")

    def key(row: dict[str, Any]) -> tuple:
        return (row["dataset"], row["model"], row["preset"], int(row["seed"]) if row["seed"] is not None else None)

    claimed: set[str] = set()
    newest_record: dict[tuple, str] = {}
    for record in records:
        newest_record[key(record)] = record.get("id")
    job_rows = []
    by_path = {str(Path(r["run"]).resolve()): r for r in runs}
    for record in sorted(records, key=lambda r: r.get("submitted", 0), reverse=True):
        state, alive = _job_state(record, scheduler, here)
        submitted = float(record.get("submitted") or 0)
        named = run_folder_from_log(record["log"]) if record.get("log") else None
        run = by_path.get(str(named.resolve())) if named is not None else None
        if run is None or run["run"] in claimed:  # no log yet: the newest run written to since the submission
            mine = [r for r in runs if key(r) == key(record) and r["run"] not in claimed
                    and max(r["activity"] or 0, r["created"] or 0) >= submitted - 2]
            run = max(mine, key=lambda r: (r["created"] or 0, r["run_id"])) if mine else None
        if run is not None:
            claimed.add(run["run"])
            run.update(job_id=record.get("job_id"), job_state=state, _alive=alive)
            continue
        if record.get("id") != newest_record.get(key(record)):
            continue  # an older launch of the same run, superseded
        job_rows.append({
            "model": record.get("model"), "seed": record.get("seed"), "dataset": record.get("dataset"),
            "preset": record.get("preset"), "state": _runless_state(state), "epoch": 0, "epochs": None,
            "val_mse": None, "elapsed_s": None, "mean_epoch_s": None, "left_s": None, "job_id": record.get("job_id"),
            "job_state": state, "run": None, "run_id": None, "created": submitted, "activity": None, "error": None,
            "pid": None, "host": None,
        })
    for row in runs:
        alive = row.pop("_alive", None)
        held = holder_alive(Path(row["run"]), now) if row["state"] == "running" else None
        if held is False:
            row["state"] = "stopped"
        elif held is None and row["state"] == "running" and _stalled(row, alive, now):
            row["state"] = "stalled?"
        if row["state"] in ("running", "stopped", "stalled?", "interrupted") and row["epochs"] is not None:
            left = max(int(row["epochs"]) - row["epoch"], 0)
            row["left_s"] = round(row["mean_epoch_s"] * left, 1) if row["mean_epoch_s"] is not None else None
    rows = runs + job_rows
    rows.sort(key=lambda r: (str(r["dataset"]), str(r["model"]), str(r["preset"]), r["seed"] if r["seed"] is not None
                             else -1, r["created"] or 0, r["run_id"] or "~"))
    return rows


def _runless_state(state: str) -> str:
    """The state of a launched job that has no run folder yet."""
    if state in ("running", "RUNNING"):
        return "running"  # started, its run folder not created yet
    if state in ("queued", "submitted", "unknown") or state in SLURM_WAITING:
        return "queued"
    if state in ("cancelled", "CANCELLED"):
        return "cancelled"
    return "failed"  # ended before its run started (see the job's log)


def _stalled(row: dict[str, Any], alive: bool | None, now: float) -> bool:
    """A "running" run whose process is gone: its launcher or Slurm says so, or nothing was written to it
    for three epochs' time (and at least ten minutes)."""
    if alive is False:
        return True
    if alive is True or row["mean_epoch_s"] is None or row["activity"] is None:
        return False
    return now - row["activity"] > max(STALL_EPOCHS * row["mean_epoch_s"], STALL_MIN_SECONDS)


def duration(seconds: float | None) -> str:
    """``93784`` -> ``1d02h``; ``3725`` -> ``1h02m``; ``65`` -> ``1m05s``; None -> ``-``."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


COLUMNS = ("Model", "Seed", "Dataset", "Preset", "State", "Epoch", "Val MSE", "Elapsed", "Left (est.)", "Job",
           "Job state", "Run")


def format_table(rows: list[dict[str, Any]]) -> str:
    """The rows as an aligned text table, with a count of runs per state under it."""
    if not rows:
        return "no runs and no launched jobs in this results directory"
    cells = []
    for r in rows:
        epoch = f"{r['epoch']}/{r['epochs']}" if r["epochs"] is not None else (str(r["epoch"]) if r["run"] else "-")
        cells.append((
            str(r["model"]), str(r["seed"]), str(r["dataset"]), str(r["preset"]), str(r["state"]), epoch,
            "-" if r["val_mse"] is None else f"{r['val_mse']:.1f}", duration(r["elapsed_s"]),
            duration(r["left_s"]) if r["left_s"] is not None else "-",
            str(r["job_id"]) if r["job_id"] else "-", str(r["job_state"]) if r["job_state"] else "-",
            r["run_id"] or "-",
        ))
    widths = [max(len(c[i]) for c in [COLUMNS, *cells]) for i in range(len(COLUMNS))]
    lines = ["  ".join(text.ljust(w) for text, w in zip(row, widths)).rstrip() for row in [COLUMNS, *cells]]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    lines.append("")
    lines.append(", ".join(f"{n} {state}" for state, n in sorted(counts.items())) +
                 " (Left: mean epoch time x epochs left, an estimate)")
    return "\n".join(lines)

