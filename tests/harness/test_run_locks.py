"""One process per run folder: a second ``--resume`` of a run in progress is refused naming the process that holds
it, a lock left by a killed process is taken over, ``bench status`` shows such a run as stopped, and resuming finds
a run by its exact seed."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from vpbench import locks
from vpbench.errors import UserError
from vpbench.launch import status
from vpbench.models import registry
from vpbench.store import RunDir, iter_runs

# A plug-in model (a 1x1 conv) whose training blocks while the file BLOCK exists, from its fifth training call on:
# in the second epoch of a fresh run (4 batches an epoch), in the third of one resumed after epoch 1.
BLOCKING_MODEL = '''
import os, time
import torch
from torch import nn

GIVE_UP_AT = time.time() + 300  # the block ends by then, whatever the test does


class Blocking(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        self.calls = 0

    def forward(self, frames, horizon):
        if self.training:
            self.calls += 1
            while self.calls > 4 and os.path.exists(BLOCK) and time.time() < GIVE_UP_AT:
                time.sleep(0.05)
        return torch.sigmoid(self.conv(frames[:, -1])).unsqueeze(1).expand(-1, horizon, -1, -1, -1)


def make():
    return Blocking()
'''
ARGS = ["run", "--models", "blockingmodel:make", "--dataset", "mmnist", "--preset", "tiny", "--epochs", "3",
        "--device", "cpu"]
METRIC_KEYS = ("mse", "mae", "psnr", "ssim", "best_epoch", "epochs", "status")


def _wait_for(condition, what: str, proc: subprocess.Popen, timeout: float = 120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        assert proc.poll() is None, f"the process ended while waiting for {what}"
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def blocking(tmp_path, monkeypatch) -> Path:
    """The blocking model importable here and in child processes (started in ``tmp_path``); returns BLOCK."""
    block = tmp_path / "block"
    (tmp_path / "blockingmodel.py").write_text(BLOCKING_MODEL.replace("BLOCK", repr(str(block))))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return block


def _start(tmp_path: Path, results: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vpbench.cli", *ARGS, "--results-dir", str(results), *extra],
                            cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(900)  # end-to-end training in child processes: minutes on a loaded machine
def test_a_second_resume_is_refused_while_the_first_finishes_as_an_uninterrupted_run(blocking, tmp_path, bench):
    code, _, err = bench(*ARGS, "--results-dir", tmp_path / "straight")
    assert code == 0, err
    (straight,) = iter_runs(tmp_path / "straight")

    results = tmp_path / "killed"
    blocking.write_text("")
    first = _start(tmp_path, results)
    try:
        run = _wait_for(lambda: next((r for r in iter_runs(results) if r.exists("checkpoints/last.pt")), None),
                        "the first epoch", first)
        _wait_for(lambda: run.status().get("epochs") == 1, "status.json to record epoch 1", first)
    finally:
        first.kill()
        first.wait(timeout=60)
    assert locks.read_holder(run.path)["pid"] == first.pid  # the killed process's lock, left behind
    row = next(r for r in status.status_rows(results, scheduler={}) if r["run"] == str(run.path))
    assert (row["state"], row["epoch"], row["pid"], row["host"]) == ("stopped", 1, first.pid, socket.gethostname())

    resumed = _start(tmp_path, results, "--resume")
    try:
        _wait_for(lambda: (locks.read_holder(run.path) or {}).get("pid") == resumed.pid, "the lock taken over",
                  resumed)
        _wait_for(lambda: "epoch 2/3" in run.file("log.txt").read_text(), "the resumed run to train epoch 2", resumed)
        log_before = run.file("log.txt").read_text()
        code, _, err = bench(*ARGS, "--results-dir", results, "--resume")
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert f"{run.path} is in use by pid {resumed.pid} on host {socket.gethostname()} since 20" in err
        assert run.file("log.txt").read_text() == log_before and run.status()["status"] == "running"
        assert next(r for r in status.status_rows(results, scheduler={}))["state"] == "running"
    finally:
        blocking.unlink(missing_ok=True)
        try:
            _, resumed_err = resumed.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            resumed.kill()
            raise
    assert resumed.returncode == 0, resumed_err

    assert [r.path for r in iter_runs(results)] == [run.path]
    resumed_metrics, straight_metrics = run.read_json("metrics.json"), straight.read_json("metrics.json")
    assert {k: resumed_metrics[k] for k in METRIC_KEYS} == {k: straight_metrics[k] for k in METRIC_KEYS}
    logs = [pd.read_csv(r.file("train_log.csv")).drop(columns="seconds") for r in (run, straight)]
    pd.testing.assert_frame_equal(*logs)  # every epoch once
    assert run.status() == {**run.status(), "status": "finished", "epochs": 3}
    assert locks.read_holder(run.path) is None  # released


def test_the_lock_names_its_holder_and_is_free_once_released(tmp_path):
    first = locks.RunLock(tmp_path).acquire()
    holder = locks.read_holder(tmp_path)
    assert (holder["pid"], holder["host"]) == (os.getpid(), socket.gethostname())
    assert locks.heartbeat_age(tmp_path) < 5 and locks.holder_alive(tmp_path) is True
    with pytest.raises(UserError, match=rf"is in use by pid {os.getpid()} on host .* since {holder['since']}"):
        locks.RunLock(tmp_path).acquire()
    first.release()
    assert locks.read_holder(tmp_path) is None
    with locks.holding(tmp_path):
        assert locks.read_holder(tmp_path)["pid"] == os.getpid()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    return child.pid


def test_without_flock_a_dead_holder_is_taken_over_and_a_live_one_refused(tmp_path, monkeypatch):
    def no_flock(*_):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    here = socket.gethostname()
    (tmp_path / locks.LOCK).write_text(json.dumps({"pid": _dead_pid(), "host": here, "since": "then"}))
    locks.RunLock(tmp_path).acquire().release()  # stale: taken over

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / locks.LOCK).write_text(json.dumps({"pid": sleeper.pid, "host": here, "since": "then"}))
        with pytest.raises(UserError, match=f"in use by pid {sleeper.pid} on host {here} since then"):
            locks.RunLock(tmp_path).acquire()
    finally:
        sleeper.kill()
        sleeper.wait(timeout=60)


def test_a_holder_on_another_host_is_alive_while_its_heartbeat_is(tmp_path):
    (tmp_path / locks.LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere.invalid", "since": "then"}))
    assert locks.holder_alive(tmp_path) is None  # no heartbeat: cannot tell
    (tmp_path / locks.HEARTBEAT).touch()
    assert locks.holder_alive(tmp_path) is True
    assert locks.holder_alive(tmp_path, now=time.time() + locks.STALE_SECONDS + 1) is False


def test_resume_finds_the_run_of_the_exact_seed(own_results, bench):
    """A run of seed 10 (its id ends -s10) is not the run of seed 1 (-s1)."""
    (seed0,) = [r for r in iter_runs(own_results) if r.path.parent.name == "convgru"]
    seed10 = RunDir(Path(shutil.copytree(seed0.path, seed0.path.parent / "20990101-000000-tiny-s10")))
    config = seed10.read_yaml("config.yaml")
    seed10.write_yaml("config.yaml", {**config, "seed": 10})
    seed10.set_status("interrupted")
    code, out, err = bench("run", "--models", "convgru", "--dataset", "mmnist", "--preset", "tiny", "--seed", "1",
                           "--results-dir", own_results, "--resume")
    assert code == 0, err
    (seed1,) = [r for r in iter_runs(own_results) if r.run_id.endswith("-tiny-s1")]
    assert seed1.read_json("metrics.json")["seed"] == 1
    assert seed10.status()["status"] == "interrupted" and "resuming" not in seed10.file("log.txt").read_text()


def test_a_killed_process_leaves_a_lock_the_kernel_has_released(tmp_path):
    """What lets the next process take over: the flock ends with its process, however it ends."""
    child = subprocess.Popen([sys.executable, "-c", "import sys, time; from vpbench.locks import RunLock; "
                              "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)",
                              str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "held\n"
        with pytest.raises(UserError, match=f"pid {child.pid}"):
            locks.RunLock(tmp_path).acquire()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    assert locks.read_holder(tmp_path)["pid"] == child.pid and locks.holder_alive(tmp_path) is False
    locks.RunLock(tmp_path).acquire().release()
