"""The weather and nowcasting part of a dataset's page: scores by lead time and by threshold, with units.

For WeatherBench runs: RMSE, latitude-weighted RMSE and ACC by lead time (tables and one figure), and OpenSTL's
published MSE, MAE and RMSE for the run's setup beside ours computed as OpenSTL does (MSE: the mean squared
error over every test value, the mean of ``rmse``^2; RMSE: its root; MAE: the mean of the physical ``mae``).
For SEVIR runs: CSI, POD, FAR, frequency bias and HSS by VIL threshold (tables), CSI-M and its pooled forms,
and CSI-M by lead time (a figure of CSI by threshold and of CSI-M by lead time), and for full-resolution runs
Earthformer's published CSI scores beside ours.

Its input is each run's stored per-frame scores, ``scores[label][metric]`` = [N, T] (sequences x lead times;
the sequences of every seed of a model), and the runs' provenance in metrics.json (``frame_minutes``,
``units``, WeatherBench's ``variable`` and ``resolution``): :func:`group_weather_section` reads both from a
report group.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from vpbench.datasets import ReferenceTable
from vpbench.datasets.sevir import EARTHFORMER_TABLE
from vpbench.datasets.weatherbench import OPENSTL_TABLES, setup_key
from vpbench.metrics.nowcasting import POOLS, SCORES, THRESHOLDS
from vpbench.models import registry
from vpbench.report.collect import Group
from vpbench.report.figures import DASHES, MARKERS, save_figure
from vpbench.report.tables import markdown_table

Scores = Mapping[str, Mapping[str, np.ndarray]]  # model label -> metric -> [N, T]
WEATHER_LEAD_METRICS = {"rmse": "RMSE", "wrmse": "latitude-weighted RMSE", "acc": "ACC"}
NOWCASTING_DATASETS = ("sevir",)
WEATHER_DATASETS = ("weatherbench",)


def lead_labels(frames: int, minutes: int) -> list[str]:
    """The lead time of each predicted frame: ``+1 h``, ``+2 h``, ... or ``+5 min``, ``+10 min``, ..."""
    leads = minutes * np.arange(1, frames + 1)
    return [f"+{m // 60} h" if minutes % 60 == 0 else f"+{m} min" for m in leads]


def by_lead(values: np.ndarray) -> np.ndarray:
    """[N, T] -> the mean over sequences per lead time [T] (NaN sequences left out)."""
    return np.nanmean(values, axis=0)


def with_units(name: str, units: str) -> str:
    return f"{name} ({units})" if units else name


def _has(scores: Scores, metric: str) -> list[str]:
    """The labels of the runs that stored ``metric`` with at least one value."""
    return [label for label, stored in scores.items() if metric in stored and not np.isnan(stored[metric]).all()]


def lead_time_table(scores: Scores, metric: str, minutes: int, units: str, decimals: int = 3) -> list[str]:
    """Lines of a markdown table: one row per run, the mean of ``metric`` at each lead time and over all."""
    labels = _has(scores, metric)
    if not labels:
        return []
    frames = scores[labels[0]][metric].shape[1]
    rows = [[label, *(f"{v:.{decimals}f}" for v in by_lead(scores[label][metric])),
             f"{np.nanmean(scores[label][metric]):.{decimals}f}"] for label in labels]
    return markdown_table(["Model", *lead_labels(frames, minutes), "mean"], rows, "l" + "r" * (frames + 1))


def threshold_table(scores: Scores, score: str, decimals: int = 4) -> list[str]:
    """Lines of a markdown table: ``score`` (csi, pod, far, bias or hss) at each VIL threshold, averaged over
    sequences and lead times; for CSI also CSI-M and CSI-M on pooled fields."""
    extra = [("csi_m", "CSI-M"), *((f"csi_m_pool{p}", f"CSI-M pool {p}") for p in POOLS)] if score == "csi" else []
    columns = [(f"{score}_{t}", str(t)) for t in THRESHOLDS] + extra
    labels = _has(scores, columns[0][0])
    if not labels:
        return []
    rows = [[label, *(f"{np.nanmean(scores[label][c]):.{decimals}f}" if c in scores[label] else "-"
                      for c, _ in columns)] for label in labels]
    return markdown_table(["Model", *(name for _, name in columns)], rows, "l" + "r" * len(columns))


def published_comparison(scores: Scores, table: ReferenceTable, labels: Mapping[str, str], units: str) -> list[str]:
    """Lines of a markdown table: ``table``'s published MSE, MAE and RMSE, each followed by ours for the same
    model, then ours for the models it does not list, computed as OpenSTL does:
    MSE the mean squared error over every test value (the mean of the stored ``rmse``^2), RMSE its root, MAE the
    mean of the stored ``mae`` (physical for WeatherBench's runs). ``labels``: model name -> row label."""
    header = ["Model", "", with_units("MSE", f"{units}²" if units else ""), with_units("MAE", units),
              with_units("RMSE", units)]
    def ours(label: str) -> list[str]:
        mse = float(np.nanmean(scores[label]["rmse"] ** 2))
        mae = f"{np.nanmean(scores[label]['mae']):.4g}" if label in _has(scores, "mae") else "-"
        return [label, "ours", f"{mse:.4g}", mae, f"{np.sqrt(mse):.4g}"]

    measured = _has(scores, "rmse")
    rows = []
    for model, values in table.rows.items():
        label = labels.get(model, model)
        rows.append([label, "published", *(f"{values[c]:.4g}" for c in table.columns)])
        if label in measured:
            rows.append(ours(label))
    published_labels = {labels.get(model, model) for model in table.rows}
    rows += [ours(label) for label in measured if label not in published_labels]
    return [f"**{table.title}**", "", *markdown_table(header, rows, "llrrr")]


def csi_comparison(scores: Scores, table: ReferenceTable) -> list[str]:
    """Lines of a markdown table: ``table``'s published CSI scores, then ours (means over sequences and lead
    times) for every run that stored them."""
    header = ["Model", "", *(c.upper().replace("_", "-") for c in table.columns)]
    rows = [[label, "published", *(f"{values[c]:.4f}" for c in table.columns)] for label, values in table.rows.items()]
    rows += [[label, "ours", *(f"{np.nanmean(scores[label][c]):.4f}" if c in scores[label] else "-"
                               for c in table.columns)] for label in _has(scores, table.columns[0])]
    return [f"**{table.title}**", "", *markdown_table(header, rows, "ll" + "r" * len(table.columns))]


def lead_time_figure(scores: Scores, panels: Sequence[tuple[str, str]], minutes: int, path: Path,
                     formats: Sequence[str] = ("png",)) -> bool:
    """One panel per ``(metric, y label with units)``: the metric by lead time, one line per run; False when
    no run stored any of them."""
    panels = [(m, y) for m, y in panels if _has(scores, m)]
    if not panels:
        return False
    fig = Figure(figsize=(5 * len(panels), 4), layout="constrained")
    for ax, (metric, ylabel) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        for i, label in enumerate(_has(scores, metric)):
            curve = by_lead(scores[label][metric])
            ax.plot(minutes * np.arange(1, len(curve) + 1) / (60 if minutes % 60 == 0 else 1), curve, label=label,
                    marker=MARKERS[i % len(MARKERS)], dashes=DASHES[i % len(DASHES)] or (None, None))
        ax.set_xlabel("lead time (h)" if minutes % 60 == 0 else "lead time (min)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize="small")
    save_figure(fig, path, formats)
    return True


def threshold_figure(scores: Scores, path: Path, formats: Sequence[str] = ("png",)) -> bool:
    """CSI by VIL threshold, one line per run; False when no run stored it."""
    labels = _has(scores, f"csi_{THRESHOLDS[0]}")
    if not labels:
        return False
    fig = Figure(figsize=(5, 4), layout="constrained")
    ax = fig.subplots()
    for i, label in enumerate(labels):
        ax.plot(THRESHOLDS, [np.nanmean(scores[label][f"csi_{t}"]) for t in THRESHOLDS], label=label,
                marker=MARKERS[i % len(MARKERS)], dashes=DASHES[i % len(DASHES)] or (None, None))
    ax.set_xlabel("VIL threshold (0-255 pixel scale)")
    ax.set_ylabel("CSI")
    ax.set_xticks(THRESHOLDS)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    save_figure(fig, path, formats)
    return True


def weather_section(dataset: str, scores: Scores, provenance: Mapping[str, object], labels: Mapping[str, str],
                    stem: Path, formats: Sequence[str] = ("png",)) -> list[str]:
    """Markdown lines of the weather or nowcasting section of a group's page (none for other datasets);
    figures are written next to ``stem`` (``<stem>-lead-times.png``, ``<stem>-thresholds.png``)."""
    minutes, units = int(provenance.get("frame_minutes", 60)), str(provenance.get("units", ""))
    lines: list[str] = []
    if dataset in WEATHER_DATASETS:
        lines += ["### By lead time", ""]
        for metric, name in WEATHER_LEAD_METRICS.items():
            table = lead_time_table(scores, metric, minutes, "" if metric == "acc" else units)
            if table:
                lines += [f"**{with_units(name, '' if metric == 'acc' else units)}**", "", *table, ""]
        panels = [(m, with_units(n, "" if m == "acc" else units)) for m, n in WEATHER_LEAD_METRICS.items()]
        if lead_time_figure(scores, panels, minutes, stem.with_name(f"{stem.name}-lead-times"), formats):
            lines += [f"![{dataset} scores by lead time]({stem.name}-lead-times.{formats[0]})", ""]
        published = OPENSTL_TABLES.get(setup_key(str(provenance.get("variable")), provenance.get("resolution", 0)))
        if published is not None and provenance.get("frame_minutes") == 60:
            lines += [*published_comparison(scores, published, labels, units), ""]
    elif dataset in NOWCASTING_DATASETS:
        lines += ["### By VIL threshold (means over sequences and lead times)", ""]
        for score, (_, _, name) in SCORES.items():
            table = threshold_table(scores, score)
            if table:
                lines += [f"**{name}**", "", *table, ""]
        if threshold_figure(scores, stem.with_name(f"{stem.name}-thresholds"), formats):
            lines += [f"![CSI by VIL threshold]({stem.name}-thresholds.{formats[0]})", ""]
        table = lead_time_table(scores, "csi_m", minutes, "")
        if table:
            lines += ["**CSI-M by lead time**", "", *table, ""]
        if lead_time_figure(scores, [("csi_m", "CSI-M")], minutes, stem.with_name(f"{stem.name}-lead-times"),
                            formats):
            lines += [f"![CSI-M by lead time]({stem.name}-lead-times.{formats[0]})", ""]
        if provenance.get("downsample") == 1 and provenance.get("frames") == list(EARTHFORMER_TABLE.frames):
            lines += [*csi_comparison(scores, EARTHFORMER_TABLE), "",
                      "Earthformer sums hits, misses and false alarms over the whole test set before dividing; ours "
                      "are means of per-frame scores, so they compare only roughly.", ""]
    return lines


def group_scores(group: Group, metrics: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """label -> metric -> [N, T]: each model's stored values of ``metrics``, the sequences of all its seeds."""
    scores: dict[str, dict[str, np.ndarray]] = {}
    for model in group.models:
        for run in group.runs_of(model):
            for metric in metrics:
                values = run.values(metric)
                if values is not None:
                    stored = scores.setdefault(group.label(model), {})
                    stored[metric] = np.concatenate([stored[metric], values]) if metric in stored else values
    return scores


def group_weather_section(group: Group, out: Path, formats: Sequence[str] = ("png",)) -> list[str]:
    """The weather or nowcasting section of a report group (none for other datasets); figures into ``out``."""
    if group.dataset not in WEATHER_DATASETS + NOWCASTING_DATASETS or not group.runs:
        return []
    metrics = [*WEATHER_LEAD_METRICS, "mae", *(f"{s}_{t}" for s in SCORES for t in THRESHOLDS), "csi_m",
               *(f"csi_m_pool{p}" for p in POOLS)]
    provenance = json.loads((group.runs[0].path / "metrics.json").read_text()).get("provenance", {})
    labels = {name: entry.label_for("openstl") for name, entry in registry.entries().items()}
    labels.update({model: group.label(model) for model in group.models})
    return weather_section(group.dataset, group_scores(group, metrics), provenance, labels, out / group.slug, formats)
