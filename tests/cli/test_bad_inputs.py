"""Bad inputs not covered elsewhere: each gives one line naming the problem and the fix (exit 2)."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from helpers.signals import default_signals

from vpbench.errors import UserError
from vpbench.harness.distributed import Dist, check_batch
from vpbench.store import iter_runs

TINY = ["--dataset", "mmnist", "--preset", "tiny"]


def assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err


def test_an_idx_file_that_is_not_mnist_images(bench, tmp_path):
    header = np.array([0x801, 3, 28, 28], dtype=">u4").tobytes()  # 0x801: a label file
    (tmp_path / "train-images-idx3-ubyte").write_bytes(header + bytes(3 * 784))
    assert_one_line(*bench("run", "--models", "persistence", *TINY, "--data-dir", tmp_path,
                           "--results-dir", tmp_path / "r")[::2], "not an MNIST image file")


def test_a_horizon_longer_than_the_standard_test_file(bench, tmp_path):
    np.save(tmp_path / "mnist_test_seq.npy", np.zeros((20, 4, 64, 64), np.uint8))
    code, _, err = bench("run", "--models", "persistence", *TINY, "--data-dir", tmp_path, "--results-dir",
                         tmp_path / "r", "--set", "dataset.test_set=standard", "--set", "dataset.output_frames=30")
    assert_one_line(code, err, "has 20 frames, but 40 are needed")


def test_cuda_requested_without_cuda(bench, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = bench("run", "--models", "persistence", *TINY, "--device", "cuda", "--results-dir", tmp_path)
    assert_one_line(code, err, "CUDA is not available", "--device cpu")


def test_an_unreadable_checkpoint_is_not_resumed(tiny_results, bench, tmp_path):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(tiny_results, results)
    run = next(r for r in iter_runs(results) if r.path.parent.name == "convgru")
    run.set_status("interrupted")
    run.file("checkpoints/last.pt").write_bytes(b"not a checkpoint")
    code, _, err = bench("run", "--models", "convgru", *TINY, "--results-dir", results, "--resume")
    assert_one_line(code, err, "last.pt: not a checkpoint torch can read", "without --resume")


def test_a_checkpoint_of_another_model_is_not_loaded(tiny_results, bench, tmp_path):
    import shutil

    results = tmp_path / "results"
    shutil.copytree(tiny_results, results)
    run = next(r for r in iter_runs(results) if r.path.parent.name == "convgru")
    run.set_status("interrupted")
    checkpoint = run.load_torch("checkpoints/last.pt")
    checkpoint["identity"] = {"model": "srvp", "config": "0123456789abcdef"}
    run.save_torch("checkpoints/last.pt", checkpoint)
    code, _, err = bench("run", "--models", "convgru", *TINY, "--results-dir", results, "--resume")
    assert_one_line(code, err, "was written by {'model': 'srvp'", "cannot be resumed here")


def test_a_batch_that_does_not_split_over_the_processes():
    check_batch(8, Dist(0, 4))
    with pytest.raises(UserError, match="train.batch_size=8 cannot be split over 3 processes"):
        check_batch(8, Dist(0, 3))


@pytest.mark.parametrize("extra, env, needle", [
    ([], {"WORLD_SIZE": "3", "RANK": "0"}, "train.batch_size=4 cannot be split over 3 processes"),
    (["--set", "model.patch_size=3"], {}, "patch_size 3 does not divide the 64x64 frames"),
    (["--dataset", "nosuch"], {}, "unknown dataset 'nosuch'"),
])
def test_preconditions_fail_before_any_run_folder_or_process_group(bench, tmp_path, monkeypatch, extra, env,
                                                                   needle):
    """Each is one line on stderr with exit code 2, before a run folder is created (and, for the batch
    split, before the process group is joined, which would wait for the other processes)."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, _, err = bench("run", "--models", "convgru", *TINY, *extra, "--results-dir", tmp_path / "results")
    assert_one_line(code, err, needle)
    assert not list(iter_runs(tmp_path / "results"))


SLOW_MODEL = '''
import hashlib
import torch
from torch import nn


class Slow(nn.Module):
    """Stays inside one long native call (minutes) in its first training forward, as a training step
    of the paper preset on a CPU does."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, frames, horizon):
        if self.training:
            open(MARKER, "w").close()
            hashlib.pbkdf2_hmac("sha256", b"vpbench", b"salt", 10**9)
        return torch.sigmoid(self.w).expand(frames.shape[0], horizon, *frames.shape[2:])


def make():
    return Slow()
'''


@pytest.mark.parametrize("signum, said", [(signal.SIGTERM, "terminated"), (signal.SIGINT, "interrupted")])
def test_a_signal_stops_profile_promptly_inside_a_long_native_call(tmp_path, signum, said):
    (tmp_path / "slowmodel.py").write_text(SLOW_MODEL.replace("MARKER", repr(str(tmp_path / "inside"))))
    proc = subprocess.Popen([sys.executable, "-m", "vpbench.cli", "profile", "--models", "slowmodel:make", *TINY,
                             "--results-dir", str(tmp_path / "results")], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    deadline = time.time() + 120
    while not (tmp_path / "inside").exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"bench profile never reached the model's forward: {proc.communicate(timeout=30)[1][-2000:]}")
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signum)
    started = time.time()
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("bench profile went on for 10 s after the signal")
    assert time.time() - started < 5
    assert proc.returncode == 128 + signum and err.strip().splitlines()[-1] == f"bench profile: {said}"


@pytest.mark.timeout(900)  # end-to-end training in child processes: minutes on a loaded machine
@pytest.mark.parametrize("signum, said", [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")])
def test_ctrl_c_and_sigterm_leave_a_resumable_run(tmp_path, bench, signum, said):
    args = ["run", "--models", "convgru", *TINY, "--epochs", "3", "--set", "dataset.train_sequences=400",
            "--results-dir", str(tmp_path)]
    proc = subprocess.Popen([sys.executable, "-m", "vpbench.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    deadline = time.time() + 300
    while not list(tmp_path.glob("mmnist/convgru/*/checkpoints/last.pt")):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail("the run ended (or took 300 s) before its first checkpoint")
        time.sleep(0.01)
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"bench run went on for 120 s after signal {signum}")
    assert proc.returncode == 128 + signum and err.strip().splitlines()[-1] == f"bench run: {said}; resume with --resume"
    (run,) = list(iter_runs(tmp_path))
    assert run.status()["status"] == "interrupted"
    code, _, _ = bench(*args, "--resume")
    assert code == 0 and run.read_json("metrics.json")["status"] == "finished"


WATCHED = '''
import os, signal, subprocess, sys, time
from vpbench.signals import Watchdog as _Watchdog
signal.signal(signal.SIGCHLD, lambda *_: None)  # as torch's DataLoader does when it starts workers
signal.signal(signal.SIGTERM, lambda *_: None)  # a main thread that does not act on it (stuck in a native call)
watchdog = _Watchdog("run", 0.2)
subprocess.run([sys.executable, "-c", "pass"], check=True)  # its exit sends SIGCHLD
time.sleep(1.0)
print("alive", flush=True)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(10)
'''


def test_the_watchdog_ends_the_process_on_sigterm_only_not_when_a_child_exits():
    proc = subprocess.run([sys.executable, "-c", WATCHED], capture_output=True, text=True, timeout=60,
                          preexec_fn=default_signals)
    assert proc.stdout == "alive\n", proc.stderr
    assert proc.returncode == 128 + signal.SIGTERM
    assert proc.stderr.strip().splitlines()[-1] == "bench run: terminated; resume with --resume"
