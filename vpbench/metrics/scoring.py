"""Scoring batches with the registered metrics an evaluation selected: one column per metric.

The evaluation hands every metric the same read-only arrays of a batch (so that metrics sharing a kernel, as
the built-in ones do, run it once). A plug-in metric that raises, or returns anything but one value per
sequence and predicted frame, is recorded: its column is NaN for the whole evaluation, a one-line warning
says why, and the other metrics go on. A built-in metric that raises stops the evaluation (a bug of vpbench's).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from vpbench.datasets import SequenceSource
from vpbench.metrics.registry import MetricContext, get_metric, select
from vpbench.plugins import first_line


def context_of(source: SequenceSource) -> MetricContext:
    """What a dataset tells its metrics (:meth:`SequenceSource.metric_context`), with its name."""
    return MetricContext(dataset=source.spec.name, **source.metric_context())


def read_only(frames: np.ndarray) -> np.ndarray:
    """A read-only view of ``frames`` (a metric cannot change what the next one reads)."""
    view = np.asarray(frames).view()
    view.flags.writeable = False
    return view


class MetricScorer:
    """The metrics ``spec`` selects (``--metrics``: names and ``module:function`` specs, comma-separated, or
    None for every registered metric that applies to the data of ``context``; see
    :func:`vpbench.metrics.registry.select`) for one evaluation.

    ``columns``: their names, in order; ``failed``: plug-in metrics that failed -> their one-line warning."""

    def __init__(self, spec: str | Sequence[str] | None, context: MetricContext):
        self.entries = [get_metric(name) for name in select(spec)]
        if spec is None:
            self.entries = [entry for entry in self.entries if entry.applies_to(context)]
        self.context = context
        self.failed: dict[str, str] = {}

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(entry.name for entry in self.entries)

    @property
    def warnings(self) -> list[str]:
        return list(self.failed.values())

    def score(self, pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        """pred, target: float [N, T, C, H, W] in [0, 1] -> [N, T, len(columns)] (float64; NaN for a failed
        plug-in metric)."""
        pred, target = read_only(pred), read_only(target)
        n, t = pred.shape[:2]
        out = np.full((n, t, len(self.entries)), np.nan)
        for k, entry in enumerate(self.entries):
            if entry.name in self.failed:
                continue
            try:
                values = np.asarray(entry.fn(pred, target, self.context), dtype=np.float64)
                if values.shape != (n, t):
                    raise ValueError(f"returned shape {values.shape}, expected one value per sequence and predicted "
                                     f"frame {(n, t)}")
            except Exception as err:  # noqa: BLE001  a plug-in's failure costs its own column only
                if entry.origin.get("kind") == "builtin":
                    raise
                self.failed[entry.name] = (f"metric {entry.name!r} ({entry.origin.get('source')}) failed: "
                                           f"{first_line(err)}; its values are NaN")
                continue
            out[..., k] = values
        return out

    def blank_failed(self, per_frame: np.ndarray) -> None:
        """Set the columns of the metrics that failed (in any batch) to NaN in ``per_frame`` [N, T, >= columns]."""
        for k, entry in enumerate(self.entries):
            if entry.name in self.failed:
                per_frame[..., k] = np.nan
