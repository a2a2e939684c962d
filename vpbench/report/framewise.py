"""Frame-wise metrics in long form: one row per (run, predicted frame, metric), for CSV and plots."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from vpbench.report.collect import Group
from vpbench.report.conventions import scale

COLUMNS = ["model", "seed", "frame", "metric", "value", "label", "preset", "test_set", "convention"]


def framewise_long(group: Group, convention: str, models: Sequence[str] | None = None) -> pd.DataFrame:
    """Each evaluated run's metrics (every one it stored) per predicted frame (1-based), averaged over test
    sequences, MSE and MAE in ``convention``."""
    rows = []
    for run in group.runs:
        if run.per_frame is None or (models is not None and run.model not in models):
            continue
        means = run.per_frame.mean(axis=0)  # [T_out, metrics]
        for k, metric in enumerate(run.metrics):
            factor = scale(convention, metric, group.shape)
            rows += [(run.model, run.seed, t + 1, metric, float(v) * factor, run.label, group.preset,
                      group.test_sha256[:8], convention) for t, v in enumerate(means[:, k]) if not np.isnan(v)]
    return pd.DataFrame(rows, columns=COLUMNS)
