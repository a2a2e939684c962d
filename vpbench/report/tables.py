"""Markdown tables of one group: results (paper layouts), per-step SSIM, paired comparison, cost."""
from __future__ import annotations

from typing import Any, Sequence

from vpbench.metrics.registry import higher_is_better, label_of
from vpbench.report.collect import Group, Run
from vpbench.report.conventions import CONVENTIONS, SHOWN, column, scale
from vpbench.report.paper import PaperTable
from vpbench.report.stats import Estimate, Paired, estimate, seed_values

DECIMALS = {"mse": 2, "mae": 2, "psnr": 2, "fvd": 1}  # any other metric: 4
EXTERNAL_MARK = "†"
# The stored metrics the results table shows in one convention or another (SSIM: ssim or ssim_openstl), and LPIPS.
SHOWN_COLUMNS = frozenset({column(c, m) for c in CONVENTIONS for m in SHOWN} | {"lpips"})


def heading(metric: str) -> str:
    """``MSE ↓``: the metric's label and which way is better (no arrow for a metric not registered here)."""
    better = higher_is_better(metric)
    return label_of(metric) + ("" if better is None else " ↑" if better else " ↓")


def other_metrics(runs: Sequence[Run]) -> list[str]:
    """The metrics ``runs`` stored beyond those of the results table (registered plug-ins, a dataset's own), in
    the order they were stored."""
    found = [m for r in runs for m in r.metrics if m not in SHOWN_COLUMNS and r.values(m) is not None]
    return list(dict.fromkeys(found))


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """Lines of a markdown table; ``align`` has one character per column: ``l`` or ``r``."""
    rule = ["---" if a == "l" else "---:" for a in align]
    return [f"| {' | '.join(cells)} |" for cells in (header, rule, *rows)]


def number(value: float | None, metric: str) -> str:
    return "-" if value is None else f"{value:.{DECIMALS.get(metric, 4)}f}"


def measured(est: Estimate | None, metric: str) -> str:
    """``mean`` for one seed, ``mean ± std`` for several."""
    if est is None:
        return "-"
    text = number(est.mean, metric)
    return text if est.std is None else f"{text} ± {number(est.std, metric)}"


def relative(est: Estimate | None, paper: float | None) -> str:
    """Relative difference to the paper's value, in percent."""
    return "-" if est is None or paper is None else f"{(est.mean - paper) / paper * 100:+.1f}%"


def _best(estimates: Sequence[Estimate | None], metric: str) -> str | None:
    """The best mean as printed (lower MSE/MAE, higher PSNR/SSIM; none for a metric of unknown direction)."""
    means = [e.mean for e in estimates if e is not None]
    if not means or higher_is_better(metric) is None:
        return None
    return number(max(means) if higher_is_better(metric) else min(means), metric)


def _bolded(estimates: Sequence[Estimate | None], metric: str) -> list[str]:
    best = _best(estimates, metric)
    cells = [measured(e, metric) for e in estimates]
    return [f"**{c}**" if e is not None and number(e.mean, metric) == best else c for c, e in zip(cells, estimates)]


def row_label(group: Group, model: str) -> str:
    """The model's label, with † for a plug-in model, what an imported run's weights are (``bench import``:
    "OpenSTL's released weights, 200 epochs") and a note for diverged runs."""
    runs = group.runs_of(model)
    label = group.label(model) + (f" {EXTERNAL_MARK}" if runs[0].external else "")
    label += f" ({runs[0].imported['description']})" if runs[0].imported else ""
    diverged = [str(r.seed) for r in runs if r.status == "diverged"]
    return label + (f" (diverged: seed {', '.join(diverged)})" if diverged else "")


def _epochs(group: Group, model: str) -> str:
    return "/".join(str(e) for e in sorted({r.epochs for r in group.runs_of(model)}))


def _n(estimates: Sequence[Estimate | None]) -> str:
    return str(max((e.n for e in estimates if e is not None), default=0))


def measured_estimates(group: Group, models: Sequence[str], metric: str, convention: str,
                       step: int | None = None) -> list[Estimate | None]:
    """Each model's mean (± std over seeds) of a shown ``metric`` in ``convention``, over predicted frames
    or at predicted frame ``step``."""
    factor = scale(convention, metric, group.shape)
    stored = column(convention, metric)
    return [_scaled(estimate(seed_values(group.runs_of(m), stored, step)), factor) for m in models]


def published(paper: PaperTable, label: str, key: str | int, metric: str, convention: str,
              shape: tuple[int, int, int]) -> float | None:
    """A published value in ``convention`` (the table's own values are in the table's convention)."""
    value = paper.value(label, key)
    if value is None:
        return None
    return value / scale(paper.convention, metric, shape) * scale(convention, metric, shape)


def perceptual_shown(group: Group, models: Sequence[str]) -> tuple[str, ...]:
    """The perceptual metrics some run of ``models`` has: ``lpips`` (per frame), ``fvd`` (per run)."""
    runs = [r for m in models for r in group.runs_of(m)]
    lpips = any(seed_values([r], "lpips") for r in runs)
    return ("lpips",) * lpips + ("fvd",) * any(r.fvd is not None for r in runs)


def results_table(group: Group, models: Sequence[str], paper: PaperTable | None, convention: str) -> list[str]:
    """Means over test sequences and predicted frames of every metric, with the published value and
    the relative difference beside each metric the published table reports; LPIPS and FVD when computed."""
    with_paper = paper.columns if paper else ()
    header, align = ["Model", "n", "Epochs"], "lrr"
    extra = perceptual_shown(group, models)
    for metric in (*SHOWN, *extra):
        header.append(heading(metric))
        header += ["paper" if paper.protocol == "srvp" else "published", "Δ"] if metric in with_paper else []
        align += "rrr" if metric in with_paper else "r"
    columns = {metric: measured_estimates(group, models, metric, convention) for metric in SHOWN}
    if "lpips" in extra:
        columns["lpips"] = measured_estimates(group, models, "lpips", convention)
    if "fvd" in extra:
        columns["fvd"] = [estimate([r.fvd for r in group.runs_of(m) if r.fvd is not None]) for m in models]
    cells = {metric: _bolded(columns[metric], metric) for metric in columns}
    rows = []
    for i, model in enumerate(models):
        row = [row_label(group, model), _n([columns[m][i] for m in SHOWN]), _epochs(group, model)]
        for metric in columns:
            row.append(cells[metric][i])
            if metric in with_paper:
                value = published(paper, group.label(model), metric, metric, convention, group.shape)
                row += [number(value, metric), relative(columns[metric][i], value)]
        rows.append(row)
    return markdown_table(header, rows, align)


def other_metrics_table(group: Group, models: Sequence[str], metrics: Sequence[str], convention: str) -> list[str]:
    """Means over test sequences and predicted frames of ``metrics`` (see :func:`other_metrics`), one column each."""
    columns = {metric: measured_estimates(group, models, metric, convention) for metric in metrics}
    cells = {metric: _bolded(columns[metric], metric) for metric in metrics}
    rows = [[row_label(group, model), _n([columns[m][i] for m in metrics]), *[cells[m][i] for m in metrics]]
            for i, model in enumerate(models)]
    return markdown_table(["Model", "n", *map(heading, metrics)], rows, "lr" + "r" * len(metrics))


def published_table(group: Group, models: Sequence[str], paper: PaperTable, convention: str) -> list[str]:
    """A published table's values for the group's models, in ``convention``."""
    header = ["Model", *[heading(m) for m in paper.columns]]
    rows = [[row_label(group, model), *[number(published(paper, group.label(model), m, m, convention, group.shape), m)
                                        for m in paper.columns]] for model in models]
    return markdown_table(header, rows, "l" + "r" * len(paper.columns))


def generalisation_tables(group: Group, pairs: Sequence[tuple[Run, Any]], convention: str) -> list[str]:
    """Evaluations of the group's runs on other data: each run's means (of every stored metric), then its MSE
    per predicted frame (one row per frame, one column per run)."""
    labels = [f"{row_label(group, run.model)} (seed {run.seed})" for run, _ in pairs]
    shown = [*SHOWN, *other_metrics([e for _, e in pairs])]
    means = []
    for label, (run, evaluation) in zip(labels, pairs):
        row = [label]
        for metric in shown:
            values = evaluation.values(column(convention, metric))
            row.append(number(None if values is None else float(values.mean()) * scale(convention, metric,
                                                                                      group.shape), metric))
        means.append(row)
    factor = scale(convention, "mse", group.shape)
    frames = pairs[0][1].per_frame.shape[1]
    mse = [e.values("mse") for _, e in pairs]
    per_frame = [[str(t + 1), *[number(None if v is None else float(v[:, t].mean()) * factor, "mse") for v in mse]]
                 for t in range(frames)]
    return [*markdown_table(["Model", *map(heading, shown)], means, "l" + "r" * len(shown)), "",
            "MSE per predicted frame:", "", *markdown_table(["Frame", *labels], per_frame, "r" * (len(labels) + 1))]


def step_table(group: Group, models: Sequence[str], paper: PaperTable, convention: str) -> list[str]:
    """The paper's per-step layout (Table 3): one metric per predicted frame, with the paper's values."""
    metric = paper.metric
    header, align = ["Model", "n"], "lr"
    for step in paper.steps:
        header += [f"{label_of(metric)} t={step}", "paper", "Δ"]
        align += "rrr"
    per_step = {s: measured_estimates(group, models, metric, convention, s) for s in paper.steps}
    cells = {s: _bolded(per_step[s], metric) for s in paper.steps}
    rows = []
    for i, model in enumerate(models):
        row = [row_label(group, model), _n([per_step[s][i] for s in paper.steps])]
        for step in paper.steps:
            value = published(paper, group.label(model), step, metric, convention, group.shape)
            row += [cells[step][i], number(value, metric), relative(per_step[step][i], value)]
        rows.append(row)
    return markdown_table(header, rows, align)


def paired_table(comparisons: Sequence[Paired], reference: str, group: Group) -> list[str]:
    name, digits = label_of(comparisons[0].metric), DECIMALS.get(comparisons[0].metric, 4)
    header = ["Model", f"Seeds ({reference} / model)", "Sequences", f"Mean {name} difference ({reference} − model)",
              "95% CI", "Verdict"]
    rows = [[group.label(p.other), f"{p.seeds[0]} / {p.seeds[1]}", str(p.sequences), f"{p.mean:+.{digits}f}",
             f"[{p.low:+.{digits}f}, {p.high:+.{digits}f}]", p.verdict(reference)] for p in comparisons]
    return markdown_table(header, rows, "lrrrrl")


def cost_table(group: Group, profiles: Sequence[dict[str, Any]], paper: PaperTable | None = None) -> list[str]:
    """Params and FLOPs of each model (``bench profile``'s, else the run's), the timings of each
    profiled device, and the published params, FLOPs and FPS of ``paper``'s rows when it gives them."""
    devices = sorted({p["device"] for p in profiles})
    published_costs = paper is not None and any(paper.costs.values())
    header, align = ["Model", "Params", "GFLOPs"], "lrr"
    if published_costs:
        header += ["Published params (M)", "Published GFLOPs", "Published FPS"]
        align += "rrr"
    for device in devices:
        header += [f"Latency ms ({device})", f"Train step ms ({device})", f"Peak memory MB ({device})"]
        align += "rrr"
    rows = []
    for model in group.models:
        found = {p["device"]: p for p in profiles if p["model"] == model}
        newest = max(group.runs_of(model), key=lambda r: r.run_id)
        first = next(iter(found.values()), {})
        params, flops = first.get("params", newest.params), first.get("flops", newest.flops)
        row = [row_label(group, model), "-" if params is None else f"{params:,}",
               "-" if flops is None else f"{flops / 1e9:.2f}"]
        if published_costs:
            cost = paper.costs.get(group.label(model), {})
            row += [optional_number(cost[key] / unit if key in cost else None, decimals)
                    for key, unit, decimals in (("params", 1e6, 1), ("flops", 1e9, 1), ("fps", 1, 0))]
        for device in devices:
            p = found.get(device, {})
            row += [optional_number(p.get(key), decimals)
                    for key, decimals in (("latency_ms", 1), ("train_step_ms", 1), ("peak_mem_mb", 0))]
        rows.append(row)
    return markdown_table(header, rows, align)


def optional_number(value: float | None, decimals: int) -> str:
    """``1,234.5`` with ``decimals`` decimals, or ``-`` for a value not measured."""
    return "-" if value is None else f"{value:,.{decimals}f}"


def _scaled(est: Estimate | None, factor: float) -> Estimate | None:
    if est is None or factor == 1.0:
        return est
    return Estimate(est.mean * factor, None if est.std is None else est.std * factor, est.n)
