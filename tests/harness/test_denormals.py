"""Denormal floats: vpbench flushes them to zero on every torch CPU thread, in training and elsewhere.

On CPUs that compute slowly on denormals (Intel with AVX-512/AMX: ~100x), recurrent models whose
states, gradients or optimiser buffers sink into them slowed from 0.7 s to 16 s per step within 8
steps. Each test runs in a fresh process, as the float mode is per thread and per process.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.backends.cpu.get_cpu_capability() or
                                not hasattr(torch, "set_flush_denormal"), reason="no CPU float mode to set")


def run_python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_training_leaves_no_denormal_in_parameters_gradients_or_optimiser_state(tmp_path):
    """ST-LSTM at the earlier quick settings (M=32, L=2, kernel 3, patch 4, batch 8, RMSProp at 1e-3): its
    gradients hold hundreds of denormals after 6 steps unless they are flushed."""
    out = run_python(f"""
        import torch
        torch.set_num_threads(2)
        (torch.rand(1 << 20) * 2).sum()  # torch's thread pool exists before vpbench runs, as in a user's script
        from pathlib import Path
        from vpbench import config as cfg
        from vpbench.models import build_model
        from vpbench.harness.trainer import Runtime, fit
        from vpbench.datasets import build_dataset
        from vpbench.store import RunDir

        config = cfg.resolve("quick", "stlstm", "mmnist", sets={{"dataset": {{"train_sequences": 48,
                             "val_sequences": 8, "test_sequences": 8}}, "train": {{"epochs": 1, "batch_size": 8, "lr": 1e-3,
                             "optimizer": "rmsprop", "momentum": 0.9, "weight_decay": 1e-4, "scheduler": "cosine"}},
                             "model": {{"patch_size": 4}}}})
        torch.manual_seed(0)
        model = build_model(config)
        source = build_dataset("mmnist", config["dataset"], None, 0)
        run = RunDir(Path({str(tmp_path)!r}))
        fit(model, source, config["train"], run, runtime=Runtime(torch.device("cpu")), seed=0, log=print,
            name="stlstm", identity={{}})
        optimizer = run.load_torch("checkpoints/last.pt")["optimizer"]["state"]
        tiny = torch.finfo(torch.float32).tiny
        def denormal(t):
            return int(((t != 0) & (t.abs() < tiny)).sum())
        print("params", sum(denormal(p) for p in model.parameters()))
        print("grads", sum(denormal(p.grad) for p in model.parameters() if p.grad is not None))
        print("state", sum(denormal(v) for s in optimizer.values() for v in s.values() if v.is_floating_point()))
        print("steps", len(optimizer) and next(iter(optimizer.values()))["step"].item())
    """)
    counts = dict(line.split() for line in out.splitlines() if line.split()[0] in ("params", "grads", "state", "steps"))
    assert float(counts["steps"]) == 6
    assert counts["params"] == counts["grads"] == counts["state"] == "0", out


def test_every_torch_thread_flushes_even_when_the_pool_started_first():
    out = run_python("""
        import torch
        torch.set_num_threads(2)
        (torch.rand(1 << 20) * 2).sum()
        tiniest = torch.ones(1 << 20, dtype=torch.int32).view(torch.float32)  # the smallest denormal, 1.4e-45
        print("before", int(tiniest.mul(1.5).count_nonzero()))
        from vpbench.environment import flush_denormals
        print("supported", flush_denormals())
        print("after", int(tiniest.mul(1.5).count_nonzero()))
    """)
    counts = dict(line.split() for line in out.splitlines())
    assert int(counts["before"]) > 0
    if counts["supported"] == "True":
        assert counts["after"] == "0"
