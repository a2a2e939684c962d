"""``bench run --jobs N``: the sweep's runs as N processes at a time on this machine's cores, the estimate printed
before training and the progress line; several jobs on one GPU with ``--gpus 0,0,1,1``."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vpbench.cli import build_parser, run_parser
from vpbench.errors import UserError
from vpbench.harness.estimate import makespan
from vpbench.launch import check_options, gpus, local
from vpbench.launch.plan import plan_jobs
from vpbench.launch.pool import PRIOR_SECONDS, Progress, duration
from vpbench.store import iter_runs


def metrics_by_model(results) -> dict[str, dict]:
    return {run.read_json("metrics.json")["model"]: run.read_json("metrics.json") for run in iter_runs(results)}


@pytest.mark.slow
def test_two_jobs_give_the_same_runs_as_one_process_and_say_how_long(tmp_path):
    common = ["--models", "convgru,persistence", "--dataset", "mmnist", "--preset", "tiny", "--device", "cpu"]
    one = subprocess.run([sys.executable, "-m", "vpbench.cli", "run", *common, "--results-dir", tmp_path / "one"],
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    assert "estimate: " in one.stdout and "run 2 of 2: persistence-s0 | elapsed" in one.stdout
    two = subprocess.run([sys.executable, "-m", "vpbench.cli", "run", *common, "--jobs", "2", "--results-dir",
                          tmp_path / "two"], capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-2000:]
    out = two.stdout
    assert "launcher local: 2 runs, 2 at a time" in out and "estimate: " in out
    assert "progress: 1 of 2 done" in out and "sweep: 2 jobs in" in out
    assert out.index("estimate: ") < out.index("started on CPU slot")
    ours, theirs = metrics_by_model(tmp_path / "one"), metrics_by_model(tmp_path / "two")
    assert set(ours) == set(theirs) == {"convgru", "persistence"}
    for model in ours:  # one thread or two: the same training, to rounding
        assert theirs[model]["mse"] == pytest.approx(ours[model]["mse"], rel=1e-3)
    records = json.loads((tmp_path / "two" / ".launcher" / "jobs.json").read_text())["jobs"]
    assert {r["launcher"] for r in records} == {"local"} and {r["threads"] for r in records} == {1}
    assert {r["state"] for r in records} == {"done"}


def test_local_jobs_train_the_preset_the_sweep_chose_for_this_machine():
    """Without --preset and --device, a CPU machine's sweep is quick: its jobs must be told so, not pick the full
    scale as jobs sent to GPUs do (a `make demo` with --jobs once trained every model at the paper's scale)."""
    args = build_parser().parse_args(["run", "--models", "convgru,persistence", "--dataset", "mmnist", "--jobs", "2"])
    sweep = plan_jobs(args, run_parser(), device_kind="cpu")
    assert sweep.preset == "quick" and {job.preset for job in sweep.jobs} == {"quick"}
    for job in sweep.jobs:
        assert job.command[job.command.index("--preset") + 1] == "quick"
    assert plan_jobs(args, run_parser()).preset == "paper"  # the gpus and slurm launchers' jobs train on GPUs


def test_samples_go_to_the_stochastic_models_jobs_only():
    """``--samples K`` is the sweep's: a deterministic model's job must not get it (each job alone would refuse it),
    and a sweep with no stochastic model fails before any job is launched."""
    def plan(models: str):
        args = build_parser().parse_args(["run", "--models", models, "--dataset", "mmnist", "--preset", "tiny",
                                          "--samples", "3", "--jobs", "2"])
        return plan_jobs(args, run_parser(), device_kind="cpu")

    commands = {job.model: job.command for job in plan("mcvd,persistence").jobs}
    assert commands["mcvd"][commands["mcvd"].index("--samples") + 1] == "3"
    assert "--samples" not in commands["persistence"]
    with pytest.raises(UserError, match="deterministic"):
        plan("convgru,persistence")


def test_jobs_option_errors():
    parser = build_parser()
    for bad in ("0", "two", "-1"):
        with pytest.raises(SystemExit):
            parser.parse_args(["run", "--models", "convgru", "--dataset", "mmnist", "--jobs", bad])
    args = parser.parse_args(["run", "--models", "convgru", "--dataset", "mmnist", "--jobs", "2", "--launcher",
                              "gpus"])
    with pytest.raises(UserError, match="--jobs is an option of --launcher local"):
        check_options(args)


def test_auto_picks_a_process_per_core_on_a_cpu_at_small_scales(monkeypatch):
    monkeypatch.setattr(local, "cores", lambda: 2)
    assert local.auto_jobs(9, "quick", "cpu") == 2
    assert local.auto_jobs(1, "quick", "cpu") == 1
    assert local.auto_jobs(9, "full", "cpu") == 1
    assert local.auto_jobs(9, "quick", "cuda") == 1
    assert local.thread_env(1) == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


def test_the_estimate_and_the_remaining_time():
    assert makespan([5, 3, 3, 1], 2) == 6  # 5 | 3 + 3, then 1 on the first slot free: 5 + 1
    assert makespan([], 2) == 0
    progress = Progress(total=3, slots=1, estimates={"a": 10.0, "b": 20.0, "c": 30.0}, started=0.0)
    assert progress.remaining(0.0) == 60.0
    progress.done["a"] = 20.0  # twice as long as estimated: the rest is rescaled by (20 + 60) / (10 + 60)
    progress.running["b"] = 20.0
    ratio = (20 + PRIOR_SECONDS) / (10 + PRIOR_SECONDS)
    assert progress.remaining(30.0) == pytest.approx((20 * ratio - 10) + 30 * ratio)
    assert "1 of 3 done, 1 running | elapsed 30s" in progress.line(30.0)
    # on two slots the longest run bounds the time left, and a job of seconds that took seven times its estimate
    # (mostly the process's start) hardly moves a long one's
    sweep = Progress(total=2, slots=2, estimates={"persistence": 1.0, "mcvd": 2400.0}, started=0.0)
    assert sweep.remaining(0.0) == 2400.0
    sweep.done["persistence"], sweep.running["mcvd"] = 7.0, 0.0
    assert 2400 < sweep.remaining(7.0) < 2400 * 1.1
    # a long job's measurement counts in full: 40 minutes estimated, 60 taken
    sweep = Progress(total=2, slots=1, estimates={"a": 2400.0, "b": 2400.0}, started=0.0)
    sweep.done["a"] = 3600.0
    assert sweep.remaining(3600.0) == pytest.approx(2400 * 1.49, rel=0.01)
    assert [duration(s) for s in (None, 42, 185, 3725)] == ["?", "42s", "3m05s", "1h02m"]


def test_a_gpu_listed_twice_runs_two_jobs_at_once():
    assert gpus.gpu_slots("0,0,1,1", 1) == ["0", "0", "1", "1"]
    assert gpus.gpu_slots("0,1,0,1", 2) == ["0,1", "0,1"]
    with pytest.raises(UserError, match="a job's GPUs must be distinct"):
        gpus.gpu_slots("0,0", 2)
    with pytest.raises(UserError, match="expected GPU indices"):
        gpus.gpu_slots("a,b", 1)
