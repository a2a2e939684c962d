"""``bench status``: one line per run of a results tree, and the launched jobs that have not started yet."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from vpbench.cli import main
from vpbench.launch import jobs, status
from vpbench.store import RunDir, iter_runs


def clone(run: RunDir, run_id: str, *, state: str, epochs_total: int, log_rows: list[tuple[int, float, float]],
          seed: int | None = None, **extra) -> RunDir:
    """A copy of a real tiny run under another id, made to look like a run in ``state``: its status, the
    epochs of its configuration and its train_log.csv rows (epoch, val_mse, seconds) are replaced."""
    copy = RunDir(Path(shutil.copytree(run.path, run.path.parent / run_id)))
    config = copy.read_yaml("config.yaml")
    config["train"]["epochs"] = epochs_total
    if seed is not None:
        config["seed"] = seed
    copy.write_yaml("config.yaml", config)
    copy.write_csv("train_log.csv", pd.DataFrame(
        [{"epoch": e, "train_loss": 0.5, "val_loss": 0.5, "val_mse": m, "lr": 1e-3, "seconds": s}
         for e, m, s in log_rows]))
    copy.set_status(state, **extra)
    if state not in ("finished", "diverged"):
        copy.file("metrics.json").unlink(missing_ok=True)
    return copy


def age(run: RunDir, seconds: float) -> None:
    """Make every file of ``run`` look last written ``seconds`` ago."""
    when = time.time() - seconds
    for path in run.path.rglob("*"):
        os.utime(path, (when, when))


@pytest.fixture
def tree(own_results) -> Path:
    """The tiny runs of convgru and persistence (finished), plus convgru runs made failed, running and stalled."""
    runs = {r.path.parent.name: r for r in iter_runs(own_results)}
    convgru = runs["convgru"]
    clone(convgru, "20990101-000001-tiny-s1", seed=1, state="failed", epochs_total=4,
          log_rows=[(1, 3000.0, 20.0)], error="RuntimeError: boom")
    clone(convgru, "20990101-000002-tiny-s2", seed=2, state="running", epochs_total=5,
          log_rows=[(1, 3100.0, 10.0), (2, 2900.0, 30.0)])
    stalled = clone(convgru, "20990101-000003-tiny-s3", seed=3, state="running", epochs_total=5,
                    log_rows=[(1, 3100.0, 10.0)])
    age(stalled, 3600)
    return own_results


def by_seed(rows: list[dict]) -> dict:
    return {(r["model"], r["seed"]): r for r in rows}


def test_one_line_per_run_with_state_epoch_mse_and_time_left(tree):
    rows = status.status_rows(tree, scheduler={})
    assert len(rows) == len(list(iter_runs(tree))) == 5
    found = by_seed(rows)
    finished = found[("convgru", 0)]
    assert finished["state"] == "finished" and finished["epoch"] == finished["epochs"] == 1
    assert finished["val_mse"] > 0 and finished["left_s"] is None and finished["dataset"] == "mmnist"
    assert finished["preset"] == "tiny"
    assert found[("persistence", 0)]["state"] == "finished"
    failed = found[("convgru", 1)]
    assert failed["state"] == "failed" and failed["error"] == "RuntimeError: boom" and failed["left_s"] is None
    running = found[("convgru", 2)]
    assert running["state"] == "running" and (running["epoch"], running["epochs"]) == (2, 5)
    assert running["val_mse"] == 2900.0 and running["elapsed_s"] == 40.0
    assert running["left_s"] == pytest.approx(20.0 * 3)  # mean epoch (20 s) x 3 epochs left
    stalled = found[("convgru", 3)]
    assert stalled["state"] == "stalled?"  # "running", but nothing written for an hour (epochs take 10 s)
    assert stalled["left_s"] == pytest.approx(40.0)


def test_the_table_and_json(tree, capsys):
    assert main(["status", "--results-dir", str(tree)]) == 0
    out = capsys.readouterr().out
    header, *lines = out.splitlines()
    assert header.split()[:5] == ["Model", "Seed", "Dataset", "Preset", "State"]
    running = next(line for line in lines if "20990101-000002-tiny-s2" in line)
    assert running.split()[:8] == ["convgru", "2", "mmnist", "tiny", "running", "2/5", "2900.0", "40s"]
    assert "1m00s" in running  # time left
    assert "1 failed, 2 finished, 1 running, 1 stalled?" in out
    assert main(["status", "--results-dir", str(tree), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["state"] for r in rows) == ["failed", "finished", "finished", "running", "stalled?"]


def test_launched_jobs_are_queued_until_their_run_starts(tree):
    runs = {(r.read_yaml("config.yaml")["model"]["name"], r.read_yaml("config.yaml")["seed"]): r
            for r in iter_runs(tree)}
    gone = subprocess.Popen(["true"])
    gone.wait()
    now = time.time()
    base = {"dataset": "mmnist", "preset": "tiny", "submitted": now - 5, "host": os.uname().nodename}
    log = tree / "job.log"
    log.write_text(f"convgru: run folder {runs[('convgru', 2)].path}\n")
    records = [
        # waiting in a live gpus launcher's queue: queued
        {**base, "id": "a-0", "launcher": "gpus", "model": "simvp", "seed": 0, "state": "queued",
         "launcher_pid": os.getpid(), "job_id": "a-0"},
        # in Slurm's queue: queued, with the job id and Slurm's state
        {**base, "id": "b-0", "launcher": "slurm", "cluster": "slurm", "model": "srvp", "seed": 0, "job_id": "77_3",
         "state": "submitted"},
        # a Slurm job whose run is running: the run's line gets the job id (matched through the job's log)
        {**base, "id": "b-1", "launcher": "slurm", "cluster": "slurm", "model": "convgru", "seed": 2,
         "job_id": "77_4", "state": "submitted", "log": str(log)},
        # a gpus job whose process is gone while its run still says running: stalled?
        {**base, "id": "c-0", "launcher": "gpus", "model": "persistence", "seed": 0, "state": "running",
         "pid": gone.pid, "job_id": "c-0", "submitted": now - 10**6},
        # a queued job of a launcher that is gone: cancelled
        {**base, "id": "d-0", "launcher": "gpus", "model": "mim", "seed": 0, "state": "queued",
         "launcher_pid": gone.pid, "job_id": "d-0"},
    ]
    jobs.update_jobs(tree, lambda recorded: recorded.extend(records))
    # the stalled case needs a "running" run of persistence
    persistence = runs[("persistence", 0)]
    persistence.set_status("running")
    rows = by_seed(status.status_rows(tree, scheduler={"77_3": "PENDING", "77_4": "RUNNING"}))
    assert (rows[("simvp", 0)]["state"], rows[("simvp", 0)]["job_id"]) == ("queued", "a-0")
    assert rows[("simvp", 0)]["run"] is None
    srvp = rows[("srvp", 0)]
    assert (srvp["state"], srvp["job_id"], srvp["job_state"]) == ("queued", "77_3", "PENDING")
    convgru = rows[("convgru", 2)]
    assert (convgru["state"], convgru["job_id"], convgru["job_state"]) == ("running", "77_4", "RUNNING")
    assert rows[("persistence", 0)]["state"] == "stalled?"
    assert rows[("mim", 0)]["state"] == "cancelled"
    # without sacct or squeue, Slurm's state is unknown and the job is shown queued
    rows = by_seed(status.status_rows(tree, scheduler={}))
    assert (rows[("srvp", 0)]["state"], rows[("srvp", 0)]["job_state"]) == ("queued", "unknown")
    assert rows[("convgru", 2)]["state"] == "running"


def test_slurm_states_come_from_sacct(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sacct = bin_dir / "sacct"
    sacct.write_text('#!/bin/sh\necho "$@" > ' + str(tmp_path / "args") +
                     '\nprintf "12_0|COMPLETED\\n12_1|CANCELLED by 0\\n12_[2-4,6%%2]|PENDING\\n13|RUNNING\\n"\n')
    sacct.chmod(sacct.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    states = status.slurm_states(["12_0", "12_1", "12_3", "12_6", "13", "14"])
    assert states["12_0"] == "COMPLETED" and states["12_1"] == "CANCELLED" and states["13"] == "RUNNING"
    assert states["12_3"] == states["12_6"] == "PENDING" and "14" not in states
    assert "-j 12,13,14" in (tmp_path / "args").read_text()
    assert status.expand_job_ids("5_[0-2]") == ["5_0", "5_1", "5_2"]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert status.slurm_states(["12_0"]) == {}


def test_durations_and_a_missing_results_dir(tmp_path, capsys):
    assert [status.duration(s) for s in (None, 5, 65, 3725, 93784)] == ["-", "5s", "1m05s", "1h02m", "1d02h"]
    assert main(["status", "--results-dir", str(tmp_path / "nosuch")]) == 2
    assert "does not exist" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["status", "--results-dir", str(empty)]) == 0
    assert "no runs" in capsys.readouterr().out


def test_a_running_run_whose_process_is_gone_is_stopped(own_results):
    """Its lock names a pid that has gone from this host, or a heartbeat another host stopped touching."""
    from vpbench import locks

    convgru = next(r for r in iter_runs(own_results) if r.path.parent.name == "convgru")
    gone = subprocess.Popen(["true"])
    gone.wait(timeout=60)
    here = clone(convgru, "20990101-000005-tiny-s5", seed=5, state="running", epochs=2, epochs_total=5,
                 log_rows=[(1, 3100.0, 10.0)])
    here.write_json(locks.LOCK, {"pid": gone.pid, "host": os.uname().nodename, "since": "2099-01-01T00:00:05"})
    there = clone(convgru, "20990101-000006-tiny-s6", seed=6, state="running", epochs_total=5,
                  log_rows=[(1, 3100.0, 10.0)])
    there.write_json(locks.LOCK, {"pid": 1, "host": "elsewhere.invalid", "since": "2099-01-01T00:00:06"})
    there.file(locks.HEARTBEAT).touch()
    found = by_seed(status.status_rows(own_results, scheduler={}))
    assert (found[("convgru", 5)]["state"], found[("convgru", 5)]["pid"]) == ("stopped", gone.pid)
    assert found[("convgru", 5)]["epoch"] == 2  # status.json's epoch reached, ahead of train_log.csv's
    assert (found[("convgru", 6)]["state"], found[("convgru", 6)]["host"]) == ("running", "elsewhere.invalid")
    later = time.time() + locks.STALE_SECONDS + 1
    assert by_seed(status.status_rows(own_results, scheduler={}, now=later))[("convgru", 6)]["state"] == "stopped"
