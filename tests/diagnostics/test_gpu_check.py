"""``bench gpu-check --dry-run``: the GPU check's code path on the CPU, with far fewer steps."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from vpbench.cli import main
from vpbench.diagnostics import gpu_check
from vpbench.models import register_model, registry


def test_dry_run_passes_on_the_cpu(capsys):
    code = main(["gpu-check", "--dry-run", "--parts", "models,srvp", "--models", "persistence,convgru"])
    out = capsys.readouterr().out
    assert code == 0, out
    table = out[out.index("| Check |"):]
    for check in ("model persistence", "model convgru", "srvp (tiny config)"):
        for precision in ("bf16", "fp32"):
            assert f"| {check} | {precision} | ok |" in table
    assert "all 6 checks passed" in out


@pytest.mark.slow
def test_dry_run_ddp_under_torchrun_and_compile(capsys):
    code = main(["gpu-check", "--dry-run", "--parts", "ddp,compile"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "| ddp torchrun x1 | fp32 | ok |" in out and "gloo group of 1" in out and "under torchrun finished" in out
    assert "| srvp --compile (tiny config) | fp32 | ok |" in out and "backend aot_eager" in out


class _NaNNet(nn.Module):
    """Trains to non-finite weights: its loss is NaN from the first step."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, frames, horizon):
        out = torch.sigmoid(frames[:, -1:].expand(-1, horizon, -1, -1, -1) * self.w)
        return out * (self.w * float("nan")).sigmoid() if self.training else out


@pytest.fixture
def broken_models(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry.entries()))

    @register_model("raises-on-build", tags=("test",))
    def raises():
        raise RuntimeError("this model cannot be built")

    register_model("diverges", tags=("test",))(_NaNNet)


def test_a_failing_model_fails_the_check(broken_models, capsys):
    code = main(["gpu-check", "--dry-run", "--parts", "models", "--models", "persistence,raises-on-build,diverges"])
    captured = capsys.readouterr()
    assert code == 2
    assert "| model persistence | fp32 | ok |" in captured.out
    for precision in ("bf16", "fp32"):
        assert f"| model raises-on-build | {precision} | FAIL |" in captured.out
        assert f"| model diverges | {precision} | FAIL |" in captured.out
    assert "RuntimeError: this model cannot be built" in captured.out
    assert "FloatingPointError: non-finite prediction in a training step" in captured.out
    last = captured.err.strip().splitlines()[-1]  # after the evaluation's progress bars
    assert last.startswith("bench gpu-check: error: 4 of 6 checks failed: model raises-on-build bf16")


def test_every_registered_model_is_checked_by_default(broken_models, monkeypatch):
    seen = []
    def fake_check(name, precision, *args):
        seen.append((name, precision))
        return gpu_check.Row("", precision, True)

    monkeypatch.setattr(gpu_check, "check_model_precision", fake_check)
    monkeypatch.setattr(gpu_check, "_tiny_source", lambda: None)
    rows = gpu_check.run_checks(torch.device("cpu"), parts=["models"], echo=lambda row: None)
    names = registry.model_names()
    assert "raises-on-build" in names and len(rows) == 2 * len(names)
    assert seen == [(n, p) for n in names for p in ("bf16", "fp32")]


def test_bad_parts_and_missing_cuda_are_one_line_errors(capsys):
    assert main(["gpu-check", "--dry-run", "--parts", "nosuch"]) == 2
    assert "--parts 'nosuch'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["gpu-check"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err
