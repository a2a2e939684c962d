"""Read result folders into one table of runs."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from vpbench.store import iter_runs

RUN_COLUMNS = ["dataset", "model", "label", "preset", "seed", "run_id", "status", "epochs", "mse", "mae",
               "psnr", "ssim", "params", "flops", "provenance", "path"]


def collect_runs(results_dir: str | Path) -> pd.DataFrame:
    """One row per finished (or diverged) run with a metrics.json, newest last."""
    rows = []
    for run in iter_runs(results_dir):
        if not run.exists("metrics.json"):
            continue
        metrics = run.read_json("metrics.json")
        config = run.read_yaml("config.yaml")
        rows.append({
            **{k: metrics.get(k) for k in RUN_COLUMNS},
            "epochs": config["train"]["epochs"] if metrics.get("epochs") is None else metrics["epochs"],
            "provenance": metrics.get("provenance", {}).get("label", "unknown"),
            "path": str(run.path),
        })
    return pd.DataFrame(rows, columns=RUN_COLUMNS).sort_values("run_id", kind="stable").reset_index(drop=True)
