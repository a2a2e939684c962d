"""Launchers of ``bench run``: one process per GPU (CPU processes stand in for GPUs here) and Slurm through
submitit (its local cluster runs the jobs here; a fake ``sbatch`` shows the script a real cluster gets)."""
from __future__ import annotations

import _thread
import os
import signal
import stat
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from helpers.signals import ctrl_c_raises

from vpbench import launch
from vpbench.cli import build_parser, run_parser
from vpbench.errors import UserError
from vpbench.launch import gpus, jobs, plan, slurm
from vpbench.store import RunDir, iter_runs

pytest.importorskip("submitit")

# A plug-in model for the tests: a 1x1 conv + sigmoid. GATE (a folder) makes the jobs meet: each writes
# <GATE>/<CUDA_VISIBLE_DEVICES>.start when its model is built and waits for the others, so a job can only
# get past building its model if the other jobs run at the same time. BLOCK (a file) makes training stop
# in its second epoch for as long as the file exists.
PLUGIN = textwrap.dedent('''
    import os, time
    import torch
    from torch import nn
    from vpbench.models import register_model

    GATE, BLOCK, JOBS = os.environ.get("GATE"), os.environ.get("BLOCK"), int(os.environ.get("GATE_JOBS", "2"))
    UNBLOCKED_AT = time.time() + 300  # the block ends by then, whatever the test does

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)
            self.train_calls = 0

        def forward(self, frames, horizon):
            if self.training:
                self.train_calls += 1
                while BLOCK and self.train_calls > 4 and os.path.exists(BLOCK) and time.time() < UNBLOCKED_AT:
                    time.sleep(0.05)
            last = frames[:, -1]
            return torch.sigmoid(self.conv(last)).unsqueeze(1).expand(-1, horizon, -1, -1, -1)

    def _meet():
        if not GATE:
            return
        me = os.environ.get("CUDA_VISIBLE_DEVICES", "none")
        with open(os.path.join(GATE, me + ".start"), "w") as f:
            f.write(f"{os.getpid()} {time.time()}")
        deadline = time.time() + 120
        while len([n for n in os.listdir(GATE) if n.endswith(".start")]) < JOBS:
            if time.time() > deadline:
                raise RuntimeError("the other job never started: the jobs did not run at the same time")
            time.sleep(0.05)

    @register_model("gated", label="Gated", tags=("test",))
    def gated():
        _meet()
        return Net()

    @register_model("gated2", label="Gated 2", tags=("test",))
    def gated2():
        _meet()
        return Net()
''')


@pytest.fixture
def plugin_env(tmp_path, monkeypatch):
    """VPBENCH_PLUGINS with the gated models, for this process and the jobs it starts."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "gatedmodels.py").write_text(PLUGIN)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("VPBENCH_PLUGINS", "gatedmodels")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    from vpbench.models import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry.entries()))
    if "gated" not in registry._REGISTRY:
        import importlib

        sys.modules.pop("gatedmodels", None)
        importlib.import_module("gatedmodels")
    return tmp_path


def parse(*argv: str):
    """``bench run ARGV`` parsed."""
    return build_parser().parse_args(["run", *argv])


def plan_jobs(args):
    return plan.plan_jobs(args, run_parser())


def launch_sweep(args) -> None:
    """What ``bench run`` does with a launcher other than local."""
    launch.get_launcher(args.launcher).launch(args, run_parser())


def runs_of(results: Path) -> dict[tuple[str, int], RunDir]:
    found = {}
    for run in iter_runs(results):
        config = run.read_yaml("config.yaml")
        found[(config["model"]["name"], config["seed"])] = run
    return found


# -- planning ---------------------------------------------------------------------------------------------

def test_jobs_are_model_x_seed_pairs_with_the_options_passed_on(tmp_path):
    args = parse("--models", "persistence,convgru", "--dataset", "mmnist", "--preset", "tiny", "--set",
                 "train.lr=0.002", "--epochs", "2", "--results-dir", str(tmp_path / "r"), "--launcher", "gpus",
                 "--gpus", "0,1", "--device", "cpu", "--compile", "--seeds", "0,3")
    sweep = plan_jobs(args)
    assert [(j.model, j.seed) for j in sweep.jobs] == [("persistence", 0), ("persistence", 3), ("convgru", 0),
                                                      ("convgru", 3)]
    assert plan.seeds_of(parse("--models", "convgru", "--dataset", "mmnist", "--seeds", "2-4")) == [2, 3, 4]
    command = sweep.jobs[3].command
    assert command[:4] == [sys.executable, "-m", "vpbench.cli", "run"]
    text = " ".join(command)
    for part in ("--models convgru", "--seed 3", "--preset tiny", "--set train.lr=0.002", "--epochs 2",
                 f"--results-dir {tmp_path / 'r'}", "--device cpu", "--compile"):
        assert part in text
    for launcher_only in ("--gpus ", "--slurm", "--seeds", "--dry-run", "--launcher gpus"):
        assert launcher_only not in text
    assert command[-2:] == ["--launcher", "local"]
    # the preset a job gets is explicit, so that the record and the job agree whatever the machine
    default = plan_jobs(parse("--models", "persistence", "--dataset", "mmnist", "--launcher", "slurm",
                                     "--results-dir", str(tmp_path / "r"), "--dry-run"))
    assert default.preset == "paper" and "--preset paper" in " ".join(default.jobs[0].command)


def test_bad_options_fail_before_anything_is_launched(tmp_path):
    with pytest.raises(UserError, match="train.nosuch"):
        plan_jobs(parse("--models", "convgru", "--dataset", "mmnist", "--preset", "tiny", "--set",
                               "train.nosuch=1", "--launcher", "slurm", "--results-dir", str(tmp_path)))
    with pytest.raises(UserError, match="cannot be split over 3 processes"):
        plan_jobs(parse("--models", "convgru", "--dataset", "mmnist", "--preset", "tiny", "--launcher",
                               "slurm", "--gpus-per-job", "3", "--results-dir", str(tmp_path)))
    with pytest.raises(UserError, match="--slurm-time"):
        slurm.slurm_minutes("tomorrow")
    times = ("90", "1:30:00", "2-00:00:00", "1-12", "0.5")
    assert [slurm.slurm_minutes(t) for t in times] == [90, 90, 2880, 2160, 0.5]
    with pytest.raises(UserError, match="--slurm-partition is an option of --launcher slurm; add --launcher slurm"):
        launch.check_options(parse("--models", "convgru", "--dataset", "mmnist", "--slurm-partition", "gpu"))
    launch.check_options(parse("--models", "convgru", "--dataset", "mmnist"))
    with pytest.raises(UserError, match="--gpus-per-job 2 needs at least 2"):
        gpus.gpu_slots("0", 2)
    assert gpus.gpu_slots("0,1,2,3", 2) == ["0,1", "2,3"]


# -- --launcher slurm: the script a real cluster gets ---------------------------------------------------

def fake_slurm(bin_dir: Path) -> None:
    """sbatch, srun, sacct of a cluster that accepts everything: sbatch keeps the script and answers job 4242."""
    bin_dir.mkdir(exist_ok=True)
    scripts = {
        "sbatch": f'cp "$1" {bin_dir}/submitted.sh\necho "Submitted batch job 4242"\n',
        "srun": "exit 0\n",
        "sacct": 'printf "4242_0|RUNNING\\n4242_[1]|PENDING\\n"\n',
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_slurm_script_has_partition_time_gpus_and_resumes_on_requeue(tmp_path, monkeypatch, capsys):
    fake_slurm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    results = tmp_path / "results"
    args = parse("--models", "persistence,convgru", "--dataset", "mmnist", "--preset", "tiny", "--launcher", "slurm",
                 "--slurm-partition", "gpu-long", "--slurm-time", "2-00:00:00", "--gpus-per-job", "2",
                 "--slurm-extra", "account=vision", "--slurm-extra", "cpus-per-task=16", "--results-dir", str(results),
                 "--device", "cuda")
    launch_sweep(args)
    script = (tmp_path / "bin" / "submitted.sh").read_text()
    for line in ("#SBATCH --partition=gpu-long", "#SBATCH --time=2880", "#SBATCH --gpus-per-node=2",
                 "#SBATCH --array=0-1%2", "#SBATCH --account=vision", "#SBATCH --cpus-per-task=16",
                 "#SBATCH --signal=USR2@120", "-m submitit.core._submit"):
        assert line in script
    assert script.count("--cpus-per-task") == 1
    requeue = [ln for ln in script.splitlines() if "(requeue)" in ln]
    assert len(requeue) == 2 and all(ln.rstrip().endswith("--resume") for ln in requeue)
    assert all("torch.distributed.run --standalone --nproc_per_node 2 -m vpbench.cli run" in ln for ln in requeue)
    # what the array tasks really run: submitit's pickles of the jobs
    from submitit.core.utils import DelayedSubmission

    pickles = sorted(results.glob(".launcher/submitit/4242_*/4242_*_submitted.pkl"))
    assert len(pickles) == 2
    job = DelayedSubmission.load(pickles[1]).function
    assert "--resume" not in job.command and "convgru" in job.command
    requeued = job.checkpoint()  # what submitit calls on Slurm's warning signal before the time limit
    assert requeued.function.command == job.command + ["--resume"]
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # requeued by Slurm without the warning (a preemption)
    assert job.argv()[-1] == "--resume"
    # the record bench status reads
    records = jobs.read_jobs(results)
    assert [(r["model"], r["job_id"], r["launcher"]) for r in records] == [("persistence", "4242_0", "slurm"),
                                                                           ("convgru", "4242_1", "slurm")]
    from vpbench.launch.status import status_rows

    rows = status_rows(results)
    assert [(r["model"], r["state"], r["job_id"], r["job_state"]) for r in rows] == [
        ("convgru", "queued", "4242_1", "PENDING"), ("persistence", "running", "4242_0", "RUNNING")]
    out = capsys.readouterr().out
    assert "persistence-s0: job 4242_0" in out and "bench status" in out


def test_slurm_dry_run_prints_the_script_without_a_cluster(tmp_path, capsys):
    launch_sweep(parse("--models", "convgru", "--dataset", "mmnist", "--preset", "tiny", "--launcher", "slurm",
                         "--slurm-partition", "a100", "--slurm-time", "90", "--results-dir", str(tmp_path / "r"),
                         "--dry-run"))
    out = capsys.readouterr().out
    assert "#SBATCH --partition=a100" in out and "#SBATCH --time=90" in out and "#SBATCH --gpus-per-node=1" in out
    assert "nothing submitted" in out and not (tmp_path / "r").exists()


# -- --launcher slurm through submitit's local cluster -----------------------------------------------------

@pytest.mark.timeout(900)  # end-to-end training in child processes: minutes on a loaded machine
@pytest.mark.slow
def test_slurm_local_cluster_runs_a_two_model_sweep(tmp_path, capsys):
    results = tmp_path / "results"
    launch_sweep(parse("--models", "persistence,convgru", "--dataset", "mmnist", "--preset", "tiny", "--device",
                         "cpu", "--launcher", "slurm", "--slurm-cluster", "local", "--slurm-time", "10",
                         "--results-dir", str(results)))
    runs = runs_of(results)
    assert set(runs) == {("persistence", 0), ("convgru", 0)}
    for run in runs.values():
        assert run.status()["status"] == "finished" and run.exists("metrics.json")
    records = jobs.read_jobs(results)
    assert sorted(r["state"] for r in records) == ["done", "done"]
    out = capsys.readouterr().out
    assert "| persistence | 0 |" in out and "| convgru | 0 |" in out and "| finished | exit 0 |" in out


@pytest.mark.timeout(900)  # end-to-end training in child processes: minutes on a loaded machine
@pytest.mark.slow
def test_slurm_job_requeued_at_its_time_limit_resumes_its_run(plugin_env, monkeypatch):
    """Slurm's warning signal (USR2) mid-training: the run stops (interrupted), submitit requeues the job with
    --resume, and the same run folder continues from checkpoints/last.pt to the end."""
    results = plugin_env / "results"
    block = plugin_env / "block"
    block.write_text("")
    monkeypatch.setenv("BLOCK", str(block))
    args = parse("--models", "gated", "--dataset", "mmnist", "--preset", "tiny", "--epochs", "2", "--device", "cpu",
                 "--launcher", "slurm", "--slurm-cluster", "local", "--slurm-time", "10", "--results-dir", str(results))
    errors = []
    waiter = threading.Thread(target=lambda: _capture(errors, launch_sweep, args), daemon=True)
    waiter.start()
    run = _wait_for(lambda: next(iter(runs_of(results).values()), None), "the run folder")
    _wait_for(lambda: run.exists("checkpoints/last.pt"), "the first epoch")
    submit = _wait_for(lambda: _process_running("submitit.core._submit"), "submitit's job process")
    os.kill(submit, signal.SIGUSR2)  # what Slurm sends signal_delay_s before the time limit
    _wait_for(lambda: run.status()["status"] == "interrupted", "the run to stop")
    block.unlink()
    waiter.join(timeout=240)
    assert not waiter.is_alive() and not errors, errors
    assert list(runs_of(results).values()) == [run]  # the same run folder, continued
    assert run.status()["status"] == "finished" and run.read_json("metrics.json")["epochs"] == 2
    assert "resuming after epoch 1" in run.file("log.txt").read_text()


def _capture(errors: list, fn, *args) -> None:
    try:
        fn(*args)
    except BaseException as err:  # noqa: BLE001
        errors.append(err)


def _wait_for(condition, what: str, timeout: float = 180.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _process_running(marker: str) -> int | None:
    """The pid of this user's process whose command line holds ``marker`` (a child of this test)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline and str(os.getpid()) in _ancestors(int(proc.name)):
            return int(proc.name)
    return None


def _ancestors(pid: int) -> list[str]:
    out = []
    while pid > 1:
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
        out.append(str(pid))
    return out


# -- --launcher gpus ---------------------------------------------------------------------------------------

@pytest.mark.timeout(900)  # end-to-end training in child processes: minutes on a loaded machine
@pytest.mark.slow
def test_gpus_launcher_runs_one_job_per_gpu_at_once(plugin_env, monkeypatch, capsys):
    gate = plugin_env / "gate"
    gate.mkdir()
    monkeypatch.setenv("GATE", str(gate))
    results = plugin_env / "results"
    launch_sweep(parse("--models", "gated,gated2", "--dataset", "mmnist", "--preset", "tiny", "--device", "cpu",
                         "--launcher", "gpus", "--gpus", "0,1", "--results-dir", str(results)))
    # each job saw its own CUDA_VISIBLE_DEVICES, and neither got past building its model before both had started
    assert sorted(p.name for p in gate.iterdir()) == ["0.start", "1.start"]
    pids = {p.read_text().split()[0] for p in gate.iterdir()}
    assert len(pids) == 2
    runs = runs_of(results)
    assert {k: r.status()["status"] for k, r in runs.items()} == {("gated", 0): "finished", ("gated2", 0): "finished"}
    records = jobs.read_jobs(results)
    assert sorted(r["gpu"] for r in records) == ["0", "1"] and {r["state"] for r in records} == {"done"}
    first, second = sorted(records, key=lambda r: r["started"])
    assert second["started"] < first["ended"]  # they overlapped
    for record in records:
        log = Path(record["log"]).read_text()
        assert f"CUDA_VISIBLE_DEVICES={record['gpu']}" in log and "run folder" in log
    out = capsys.readouterr().out
    assert "| gated | 0 |" in out and "| gated2 | 0 |" in out


@pytest.mark.timeout(900)  # end-to-end training in child processes: minutes on a loaded machine
@pytest.mark.slow
def test_gpus_launcher_ctrl_c_stops_the_children(plugin_env, monkeypatch):
    block = plugin_env / "block"
    block.write_text("")
    monkeypatch.setenv("BLOCK", str(block))
    results = plugin_env / "results"
    args = parse("--models", "gated,gated2", "--dataset", "mmnist", "--preset", "tiny", "--epochs", "3", "--device",
                 "cpu", "--launcher", "gpus", "--gpus", "0,1", "--results-dir", str(results))

    stopped = threading.Event()

    def interrupt_when_both_train() -> None:
        try:
            _wait_for(lambda: len([r for r in runs_of(results).values() if r.exists("checkpoints/last.pt")]) == 2,
                      "both jobs to finish an epoch")
        finally:
            _thread.interrupt_main()  # Ctrl-C
        if not stopped.wait(120):  # the launcher did not stop: let the jobs end, so that the test fails, not hangs
            block.unlink(missing_ok=True)

    with ctrl_c_raises():  # as in a terminal, even when the suite was started with SIGINT ignored
        threading.Thread(target=interrupt_when_both_train, daemon=True).start()
        try:
            with pytest.raises(KeyboardInterrupt):
                launch_sweep(args)
        finally:
            stopped.set()
    runs = runs_of(results)
    assert {r.status()["status"] for r in runs.values()} == {"interrupted"}
    records = jobs.read_jobs(results)
    assert {r["state"] for r in records} == {"interrupted"}
    for record in records:
        with pytest.raises(ProcessLookupError):
            os.kill(record["pid"], 0)
