"""A first markdown table of the runs found: one line per (dataset, model, preset, seed)."""
from __future__ import annotations

import pandas as pd


def latest_per_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """Keep the newest run of each (dataset, model, preset, provenance, seed)."""
    keys = ["dataset", "model", "preset", "provenance", "seed"]
    return runs.drop_duplicates(subset=keys, keep="last")


def runs_markdown(runs: pd.DataFrame) -> str:
    if runs.empty:
        return "No finished runs found. Run `bench run --models all --dataset mmnist` first.\n"
    lines = []
    for (dataset, preset, provenance), group in latest_per_seed(runs).groupby(["dataset", "preset", "provenance"], sort=False):
        lines += [f"## {dataset} ({preset} preset)", "", f"Data: {provenance}", "",
                  "| Model | Seed | Epochs | MSE | MAE | PSNR | SSIM | Params | Status |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in group.itertuples():
            cells = [f"{r.mse:.2f}" if pd.notna(r.mse) else "-", f"{r.mae:.2f}" if pd.notna(r.mae) else "-",
                     f"{r.psnr:.2f}" if pd.notna(r.psnr) else "-", f"{r.ssim:.4f}" if pd.notna(r.ssim) else "-"]
            lines.append(f"| {r.label} | {r.seed} | {r.epochs} | {' | '.join(cells)} | {r.params:,} | {r.status} |")
        lines.append("")
    return "\n".join(lines)
