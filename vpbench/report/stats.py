"""Statistics of the report: means over seeds, and the paired bootstrap comparison of two models."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from vpbench.report.collect import Run

RESAMPLES = 10_000
LEVEL = 0.95
BOOTSTRAP_SEED = 0
_CHUNK = 2**22  # indices drawn at a time: a 10,000 x 10,000 bootstrap stays within ~32 MB


@dataclass(frozen=True)
class Estimate:
    """Mean over seeds; ``std`` is the sample standard deviation (None for one seed)."""

    mean: float
    std: float | None
    n: int


def estimate(values: Sequence[float]) -> Estimate | None:
    """Mean, sample std (ddof=1) and count of per-seed values; None when there are none."""
    if not len(values):
        return None
    a = np.asarray(values, dtype=np.float64)
    return Estimate(float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else None, len(a))


def seed_values(runs: Sequence[Run], metric: str, step: int | None = None) -> list[float]:
    """Each evaluated run's mean of ``metric`` over test sequences and predicted frames, or over test
    sequences at predicted frame ``step`` (1-based)."""
    values = []
    for run in runs:
        stored = run.values(metric)
        if stored is not None:  # None: a metric the run did not store
            values.append(float((stored if step is None else stored[:, step - 1]).mean()))
    return values


def bootstrap_ci(values: np.ndarray, *, resamples: int = RESAMPLES, level: float = LEVEL,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` [N]: ``resamples`` resamplings of N
    values with replacement, drawn from ``numpy.random.default_rng(seed)`` one resampling after another."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    rows = max(1, _CHUNK // n)
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def sequence_means(runs: Sequence[Run], metric: str = "mse") -> np.ndarray:
    """Per-sequence ``metric`` [N] (mean over predicted frames), averaged over the runs' seeds."""
    return np.mean([run.values(metric).mean(axis=1) for run in runs if run.values(metric) is not None], axis=0)


@dataclass(frozen=True)
class Paired:
    """Mean of per-sequence metric(reference) - metric(other) over the shared test sequences, with its CI."""

    other: str
    metric: str
    sequences: int
    seeds: tuple[int, int]  # (reference, other)
    mean: float
    low: float
    high: float

    def verdict(self, reference: str) -> str:
        """In plain words, whether the interval excludes 0."""
        if self.low <= 0 <= self.high:
            return "no clear difference (the CI includes 0)"
        return f"{reference} {'lower' if self.high < 0 else 'higher'}: a real difference (the CI excludes 0)"


def paired(reference: Sequence[Run], other: Sequence[Run], other_name: str, *, metric: str = "mse",
           factor: float = 1.0) -> Paired | None:
    """Paired comparison on the seed-mean per-sequence ``metric``; ``factor`` converts its scale.
    None when either model has no run evaluated with that metric."""
    ref_runs = [r for r in reference if r.per_frame is not None and seed_values([r], metric)]
    other_runs = [r for r in other if r.per_frame is not None and seed_values([r], metric)]
    if not ref_runs or not other_runs:
        return None
    diff = (sequence_means(ref_runs, metric) - sequence_means(other_runs, metric)) * factor
    low, high = bootstrap_ci(diff)
    return Paired(other_name, metric, len(diff), (len(ref_runs), len(other_runs)), float(diff.mean()), low, high)
