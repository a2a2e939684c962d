"""The section of a group's stochastic models (``bench run --samples K``): best of K beside mean of K, the spread
across the futures, and FVD over every future."""
from __future__ import annotations

from typing import Any

from vpbench.report.collect import Group, Run
from vpbench.report.conventions import CONVENTIONS, column, scale
from vpbench.report.tables import heading, markdown_table, number


def _value(summary: dict[str, Any], metric: str, convention: str, group: Group) -> str:
    """One summary value of ``metric`` (stored in the paper's convention) shown in ``convention``."""
    value = summary.get(column(convention, metric))
    return number(None if value is None else value * scale(convention, metric, group.shape), metric)


def _row(run: Run, group: Group, convention: str) -> list[str]:
    stochastic = run.stochastic or {}
    best = {m: run.values(column(convention, m)) for m in ("mse", "ssim")}
    best_summary = {column(convention, m): None if v is None else float(v.mean()) for m, v in best.items()}
    mean_of_k = stochastic.get("mean_of_k", {})
    return [run.label.split(" (best of")[0], str(run.seed), str(stochastic.get("samples", "-")),
            _value(best_summary, "mse", convention, group), _value(mean_of_k, "mse", convention, group),
            _value(best_summary, "ssim", convention, group), _value(mean_of_k, "ssim", convention, group),
            number(stochastic.get("spread"), "spread"), number(run.fvd, "fvd")]


def stochastic_section(group: Group, convention: str) -> list[str]:
    """Markdown lines of the group's stochastic runs (none: no lines)."""
    runs = [r for r in group.runs if r.stochastic and r.per_frame is not None]
    if not runs:
        return []
    header = ["Model", "Seed", "K", f"{heading('mse')} best of K", f"{heading('mse')} mean of K",
              f"{heading('ssim')} best of K", f"{heading('ssim')} mean of K", "Spread", "FVD (all K)"]
    return ["### Stochastic models", "",
            *markdown_table(header, [_row(r, group, convention) for r in runs], "llrrrrrrr"), "",
            "Each test sequence predicted K times (`--samples K`, seeded by the run's seed). Best of K: per sequence, "
            "the future of least MSE over its predicted frames (the values of the results tables above); mean of K: "
            "each metric averaged over the K futures; spread: the per-pixel standard deviation across the K futures "
            "on [0, 1], averaged over pixels, frames and sequences; FVD (when I3D weights were given) over every "
            f"future against the real clips. {CONVENTIONS[convention]}.", ""]
