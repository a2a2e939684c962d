"""``bench speed --parts sweep``: the whole quick sweep of ``make demo`` against the way it ran before.

Two sweeps of every model of ``bench run --models all --dataset mmnist`` at the quick scale, one after the other
in one command, each from a fresh results folder:

* **before**: the configurations ``make demo`` trained before the five-minute demo (the model, train and dataset
  sections stored in ``quick_sweep_before.yaml``), in this process, one model after another, with every core;
* **now**: ``bench run --models all --dataset mmnist --preset quick --jobs auto`` in a child process, as
  ``make demo`` runs it, then ``bench report`` on its results.

The table gives each run's seconds (training and test, from its ``metrics.json``), its test MSE and SSIM and the
collapse check (pixel standard deviation of the stored predicted frames over the ground truth's), and the wall
time of each sweep.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vpbench import config as cfg
from vpbench.environment import cpu_name
from vpbench.report.quality import std_ratio
from vpbench.store import iter_runs

BEFORE = "quick_sweep_before.yaml"


def before_configs() -> list[dict[str, Any]]:
    """The runs of the quick sweep as it was: today's resolved configuration of each model with the stored model,
    train and dataset sections."""
    stored = yaml.safe_load(resources.files("vpbench.diagnostics").joinpath(BEFORE).read_text())
    configs = []
    for name, sections in stored.items():
        config = cfg.resolve("quick", name, "mmnist", seed=0)
        config.update({k: sections[k] for k in ("model", "train", "dataset")})
        configs.append(config)
    return configs


def runs_of(results: Path) -> dict[str, dict[str, Any]]:
    """model -> seconds, MSE, SSIM and std ratio of each run under ``results``."""
    out = {}
    for run in iter_runs(results):
        if not run.exists("metrics.json"):
            continue
        m = run.read_json("metrics.json")
        out[m["model"]] = {"seconds": (m.get("train_seconds") or 0) + (m.get("eval_seconds") or 0),
                           "mse": m.get("mse"), "ssim": m.get("ssim"), "std_ratio": std_ratio(run.path),
                           "label": m.get("label", m["model"])}
    return out


def sweep_before(results: Path) -> float:
    """Wall seconds of the sweep as it ran before, in this process."""
    import torch

    from vpbench.harness.runner import run_sweep
    from vpbench.harness.trainer import Runtime
    from vpbench.metrics.cost import call_seconds

    return call_seconds(lambda: run_sweep(before_configs(), data_dir=None, results_dir=results,
                                          runtime=Runtime(device=torch.device("cpu"))))[0]


def sweep_now(results: Path, reports: Path) -> tuple[float, float]:
    """Wall seconds of today's ``make demo``: the sweep and the report, each a child process."""
    from vpbench.metrics.cost import call_seconds

    bench = [sys.executable, "-m", "vpbench.cli"]
    sweep = [*bench, "run", "--models", "all", "--dataset", "mmnist", "--preset", "quick", "--jobs", "auto",
             "--results-dir", str(results)]
    report = [*bench, "report", "--results-dir", str(results), "--out", str(reports)]

    def seconds(command: list[str]) -> float:
        return call_seconds(lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL))[0]

    return seconds(sweep), seconds(report)


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(folder: str | Path | None = None) -> list[str]:
    """Both sweeps, then the table (the README's)."""
    with tempfile.TemporaryDirectory(prefix="vpbench-sweep-") as tmp:
        root = Path(folder) if folder else Path(tmp)
        now_s, report_s = sweep_now(root / "now", root / "reports")
        before_s = sweep_before(root / "before")
        before, now = runs_of(root / "before"), runs_of(root / "now")
    lines = [f"## The quick sweep of `make demo` ({cpu_name()})", "",
             "| Model | Before: s | MSE | SSIM | std ratio | Now: s | MSE | SSIM | std ratio |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for model in dict.fromkeys([*before, *now]):
        b, n = before.get(model, {}), now.get(model, {})
        lines.append(f"| {n.get('label') or b.get('label')} | {_number(b.get('seconds'), 0)} | "
                     f"{_number(b.get('mse'), 1)} | {_number(b.get('ssim'), 3)} | {_number(b.get('std_ratio'), 2)} | "
                     f"{_number(n.get('seconds'), 0)} | {_number(n.get('mse'), 1)} | {_number(n.get('ssim'), 3)} | "
                     f"{_number(n.get('std_ratio'), 2)} |")
    lines += ["", f"Wall time: before {before_s:.0f} s (one process, one model after another); now {now_s:.0f} s "
              f"(`bench run --jobs auto`) + {report_s:.0f} s of `bench report` = {now_s + report_s:.0f} s.", ""]
    return lines
