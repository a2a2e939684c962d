"""Interrupted runs resume exactly, diverging models do not stop a sweep, DDP matches one process."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from torch import nn

from vpbench.models import registry
from vpbench.store import iter_runs

# Long enough epochs (100 batches) that a kill lands inside the second epoch.
SLOW_TINY = ["--preset", "tiny", "--epochs", "3", "--set", "dataset.train_sequences=400"]
METRIC_KEYS = ("mse", "mae", "psnr", "ssim", "best_epoch", "epochs", "status")


def only_run(results, model: str):
    (run,) = [r for r in iter_runs(results) if r.path.parent.name == model]
    return run


@pytest.mark.timeout(900)  # end-to-end training in child processes: minutes on a loaded machine
def test_a_killed_run_resumes_to_the_same_metrics(tmp_path, bench):
    args = ["run", "--models", "convgru", "--dataset", "mmnist", *SLOW_TINY]
    assert bench(*args, "--results-dir", tmp_path / "straight")[0] == 0

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "vpbench.cli", *args, "--results-dir", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list(killed.glob("mmnist/convgru/*/checkpoints/last.pt")):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail("the run ended (or took 300 s) before its first checkpoint")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    run = only_run(killed, "convgru")
    assert run.status()["status"] == "running" and not run.exists("metrics.json")

    code, out, _ = bench(*args, "--results-dir", killed, "--resume")
    assert code == 0
    assert "resuming after epoch" in run.file("log.txt").read_text()
    resumed, straight = run.read_json("metrics.json"), only_run(tmp_path / "straight", "convgru").read_json("metrics.json")
    assert {k: resumed[k] for k in METRIC_KEYS} == {k: straight[k] for k in METRIC_KEYS}
    logs = [pd.read_csv(r.file("train_log.csv")).drop(columns="seconds") for r in (run, only_run(tmp_path / "straight", "convgru"))]
    pd.testing.assert_frame_equal(*logs)


def test_a_resumed_sweep_skips_finished_models(own_results, bench):
    code, out, _ = bench("run", "--models", "convgru,persistence", "--dataset", "mmnist", "--preset", "tiny",
                         "--results-dir", own_results, "--resume")
    assert code == 0
    assert "convgru: already finished" in out and "persistence: already finished" in out


def test_resume_refuses_a_run_with_another_configuration(own_results, bench):
    code, _, err = bench("run", "--models", "convgru", "--dataset", "mmnist", "--preset", "tiny",
                         "--results-dir", own_results, "--resume", "--set", "train.lr=0.5")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "has another configuration (train.lr: 0.001 -> 0.5)" in err


class NaNAfter(nn.Module):
    """Predicts a constant until its ``steps``-th training call, then NaN."""

    def __init__(self, steps: int = 6):
        super().__init__()
        self.logit = nn.Parameter(torch.zeros(()))
        self.steps, self.calls = steps, 0

    def forward(self, frames: torch.Tensor, horizon: int) -> torch.Tensor:
        if self.training:
            self.calls += 1
        out = torch.sigmoid(self.logit).expand(frames.shape[0], horizon, *frames.shape[2:])
        return out * float("nan") if self.training and self.calls > self.steps else out


@pytest.fixture
def nan_model(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_model("nan-after", label="NaN after 6 steps")(NaNAfter)
    return "nan-after"


def test_a_diverging_model_is_recorded_and_the_sweep_goes_on(nan_model, bench, tmp_path):
    code, out, _ = bench("run", "--models", f"{nan_model},persistence", "--dataset", "mmnist", "--preset", "tiny",
                         "--epochs", "3", "--results-dir", tmp_path)
    assert code == 0
    run = only_run(tmp_path, nan_model)
    metrics = run.read_json("metrics.json")
    assert metrics["status"] == "diverged" and "non-finite training loss" in metrics["message"]
    assert metrics["best_epoch"] == 1 and metrics["mse"] is not None  # evaluated from the last good checkpoint
    assert run.exists("checkpoints/best.pt") and run.load_torch("checkpoints/last.pt")["epoch"] == 1
    assert only_run(tmp_path, "persistence").read_json("metrics.json")["status"] == "finished"


class Fails(nn.Module):
    """A plug-in model whose forward raises a ValueError (not a RuntimeError or UserError)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, frames: torch.Tensor, horizon: int) -> torch.Tensor:
        raise ValueError("this plug-in cannot predict")


def test_any_failure_of_one_model_is_recorded_and_the_sweep_goes_on(monkeypatch, bench, tmp_path):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    registry.register_model("fails", label="Fails")(Fails)
    code, out, err = bench("run", "--models", "fails,persistence", "--dataset", "mmnist", "--preset", "tiny",
                           "--results-dir", tmp_path)
    assert code == 2 and "Traceback" not in err
    last_line = err.strip().splitlines()[-1]
    assert "1 of 2 models failed: fails (ValueError: this plug-in cannot predict" in last_line
    failed = only_run(tmp_path, "fails")
    assert failed.status()["status"] == "failed"
    log = failed.file("log.txt").read_text()
    assert "Traceback" in log and "ValueError: this plug-in cannot predict" in log
    assert only_run(tmp_path, "persistence").read_json("metrics.json")["status"] == "finished"


@pytest.mark.timeout(900)  # end-to-end training in child processes: minutes on a loaded machine
def test_two_process_gloo_ddp_matches_one_process(tmp_path, bench):
    """Plain SGD: its step is proportional to the gradient, so summed gradients (2x) would not match."""
    args = ["run", "--models", "convgru", "--dataset", "mmnist", "--preset", "tiny", "--epochs", "2",
            "--set", "model.dropout=0", "--set", "dataset.train_sequences=32", "--set", "train.optimizer=sgd",
            "--set", "train.lr=0.5", "--set", "train.momentum=0", "--set", "train.weight_decay=0"]
    assert bench(*args, "--results-dir", tmp_path / "one")[0] == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29533", "-m", "vpbench.cli", *args, "--results-dir", str(tmp_path / "two")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    one, two = only_run(tmp_path / "one", "convgru"), only_run(tmp_path / "two", "convgru")
    assert two.read_json("environment.json")["world_size"] == 2
    losses = [pd.read_csv(r.file("train_log.csv"))[["train_loss", "val_loss"]].to_numpy() for r in (one, two)]
    # Same global batch, averaged gradients: equal up to float summation order.
    assert abs(losses[0] - losses[1]).max() < 1e-5
    assert abs(losses[0][1, 0] - losses[0][0, 0]) > 1e-3  # the steps move the loss: a 2x step would show
    assert len(list((tmp_path / "two").glob("mmnist/convgru/*"))) == 1  # only rank 0 writes
