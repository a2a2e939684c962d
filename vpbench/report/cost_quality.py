"""Cost against quality: each model's test MSE and SSIM against its GFLOPs and its training time per epoch,
± std over seeds, with the Pareto front (the models no other model beats on both cost and quality)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from vpbench.report.collect import Group
from vpbench.report.figures import MARKERS, save_figure
from vpbench.report.stats import estimate
from vpbench.report.tables import measured_estimates

COSTS = (("gflops", "GFLOPs (one test sequence)"), ("epoch_seconds", "Training time per epoch (s)"))


def cost_points(group: Group, convention: str) -> pd.DataFrame:
    """One row per model of ``group``: label, gflops, epoch_seconds (± _std over seeds), mse and ssim (± _std over
    seeds, in ``convention``; SSIM is OpenSTL's under its convention). NaN where a value was not measured."""
    models = group.models
    quality = {m: measured_estimates(group, models, m, convention) for m in ("mse", "ssim")}
    rows = []
    for i, model in enumerate(models):
        runs = group.runs_of(model)
        flops = next((r.flops for r in runs if r.flops is not None), None)
        seconds = estimate([r.epoch_seconds for r in runs if r.epoch_seconds is not None])
        row = {"label": group.label(model), "gflops": np.nan if flops is None else flops / 1e9,
               "epoch_seconds": np.nan if seconds is None else seconds.mean,
               "epoch_seconds_std": np.nan if seconds is None or seconds.std is None else seconds.std}
        for metric, estimates in quality.items():
            est = estimates[i]
            row[metric] = np.nan if est is None else est.mean
            row[f"{metric}_std"] = np.nan if est is None or est.std is None else est.std
        rows.append(row)
    return pd.DataFrame(rows)


def pareto_front(costs: Sequence[float], errors: Sequence[float]) -> list[int]:
    """Indices of the points that no other point dominates (a cost and an error at most as large, one of them
    smaller), by increasing cost; points with a missing value are left out. Lower is better on both axes."""
    points = [(c, e, i) for i, (c, e) in enumerate(zip(costs, errors)) if np.isfinite(c) and np.isfinite(e)]
    front, best = [], np.inf
    for cost, error, index in sorted(points):
        if error < best:
            front.append(index)
            best = error
    return front


def cost_quality_figure(points: pd.DataFrame, path: Path, title: str, mse_label: str, ssim_label: str,
                        formats: Sequence[str] = ("png",)) -> bool:
    """MSE (top) and SSIM (bottom) against GFLOPs (left) and training time per epoch (right): one marker per
    model with ± std bars, the Pareto front as a dashed staircase through ringed markers. ``points``: from
    :func:`cost_points`. False (nothing written) when no model has a
    cost and a quality."""
    if not any(points[c].notna().any() for c, _ in COSTS) or points["mse"].isna().all():
        return False
    colours = sns.color_palette("colorblind", len(points))
    with sns.axes_style("whitegrid"), sns.plotting_context("paper", font_scale=1.1):
        fig = Figure(figsize=(10.5, 8), layout="constrained")
        axes = fig.subplots(2, 2, squeeze=False)
        for row, (metric, ylabel, sign) in enumerate((("mse", mse_label, 1), ("ssim", ssim_label, -1))):
            for col, (cost, xlabel) in enumerate(COSTS):
                _panel(axes[row][col], points, cost, metric, sign, colours)
                axes[row][col].set(xlabel=xlabel, ylabel=ylabel)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 6), frameon=False)
        fig.suptitle(title)
        save_figure(fig, path, formats)
    return True


def _panel(ax, points: pd.DataFrame, cost: str, metric: str, sign: int, colours) -> None:
    """One panel; ``sign``: 1 when lower ``metric`` is better, -1 when higher is."""
    for i, point in points.iterrows():
        ax.errorbar(point[cost], point[metric], xerr=_bar(point.get(f"{cost}_std")), yerr=_bar(point[f"{metric}_std"]),
                    fmt=MARKERS[i % len(MARKERS)], color=colours[i], markersize=8, capsize=3, label=point["label"])
    front = pareto_front(points[cost].to_numpy(float), sign * points[metric].to_numpy(float))
    if front:  # a staircase through the front, its models ringed (a front of one model is a ring alone)
        ax.step(points[cost].iloc[front], points[metric].iloc[front], where="post", linestyle="--", color="0.35",
                linewidth=1.2, marker="o", markersize=15, markerfacecolor="none", markeredgecolor="0.35",
                label="Pareto front", zorder=0)
    shown = points[cost][points[cost].notna()]
    if len(shown) and (shown > 0).all() and shown.max() / shown.min() > 20:
        ax.set_xscale("log")


def _bar(std: float | None) -> float | None:
    """An error bar's half-length; None (no bar) for one seed or a value not measured."""
    return None if std is None or not np.isfinite(std) else float(std)
