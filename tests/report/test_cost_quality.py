"""The cost-quality figure: its points are the runs' costs and metrics (mean ± std over seeds), its front is the
Pareto front, and it is written in every format asked for and shown on the pages."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from vpbench.report.collect import collect
from vpbench.report.cost_quality import cost_points, pareto_front


@pytest.mark.parametrize("costs, errors, front", [
    ([1, 2, 3], [3, 2, 1], [0, 1, 2]),          # each cheaper one is worse: all on the front
    ([1, 2, 3], [1, 2, 3], [0]),                # the cheapest is also the best
    ([3, 1, 2, 2], [1, 5, 4, 3], [1, 3, 0]),    # (2, 4) is beaten by (2, 3) at the same cost
    ([1, np.nan, 2], [2, 0, 1], [0, 2]),        # a point without a cost is left out
    ([1, 1], [2, 2], [0]),                      # a tie: the first
])
def test_pareto_front(costs, errors, front):
    assert pareto_front(costs, errors) == front


def test_points_are_seed_means_and_stds_of_the_runs(sweep):
    (group,) = collect(sweep).groups
    points = cost_points(group, "paper").set_index("label")
    runs = sorted((sweep / "mmnist" / "convgru").iterdir())
    mse = [np.load(r / "per_sequence.npz")["per_frame"][..., 0].mean() for r in runs]
    seconds = [pd.read_csv(r / "train_log.csv")["seconds"].mean() for r in runs]
    convgru = points.loc[group.label("convgru")]
    assert convgru["mse"] == pytest.approx(np.mean(mse)) and convgru["mse_std"] == pytest.approx(np.std(mse, ddof=1))
    assert convgru["epoch_seconds"] == pytest.approx(np.mean(seconds))
    assert convgru["epoch_seconds_std"] == pytest.approx(np.std(seconds, ddof=1))
    assert convgru["gflops"] == pytest.approx(json.loads((runs[0] / "metrics.json").read_text())["flops"] / 1e9)
    persistence = points.loc[group.label("persistence")]
    assert np.isnan(persistence["epoch_seconds"]) and np.isnan(persistence["mse_std"])  # no training, one seed


def test_the_figure_is_written_in_each_format_and_shown(page_report):
    found = sorted(p.name for p in page_report.glob("*-cost-quality.*"))
    assert [name.rsplit(".", 1)[1] for name in found] == ["pdf", "png", "svg"]
    stem = found[0].rsplit(".", 1)[0]
    assert "Pareto front" in (page_report / f"{stem}.svg").read_text()
    assert f"![Cost against quality]({stem}.png)" in (page_report / "mmnist.md").read_text()
    assert f'src="{stem}.png"' in (page_report / "index.html").read_text()
