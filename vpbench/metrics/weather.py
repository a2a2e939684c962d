"""Weather metrics in physical units, per sequence and lead time: ``rmse``, ``wrmse`` and ``acc``.

Frames in [0, 1] become physical values through the dataset's :class:`MetricContext` (``offset + scale x
frame`` per channel; WeatherBench's fields in K, %, m/s or 0-1). For one forecast (a sequence at one lead time)
with error e = forecast - truth over the C x H x W grid values:

* ``rmse``: sqrt(mean e^2), the root of OpenSTL's per-pixel MSE (``openstl/core/metrics.py``, ``RMSE``);
* ``wrmse``: WeatherBench's latitude-weighted RMSE (Rasp et al. 2020, eq. 1; ``compute_weighted_rmse`` in
  WeatherBench's ``score.py``): sqrt(mean L(j) e^2) with L(j) = cos(lat_j) / mean cos(lat), the
  ``lat_weights`` of the context;
* ``acc``: WeatherBench's anomaly correlation coefficient (eq. 3): with anomalies f' = forecast - C and t' =
  truth - C against the climatology C (the training set's time mean per grid point, ``extra["climatology"]``),
  sum L f' t' / sqrt(sum L f'^2 x sum L t'^2).

As in the paper's equations, a score is computed per forecast and the scores are averaged over forecasts
(the harness averages over sequences); WeatherBench's code pools the sums over all forecasts at once instead.
Multi-channel data (uv10, mv) are scored over all channels together. By default they are computed for data of
physical values (``rmse``), with latitude weights (``wrmse``) or a climatology (``acc``); asked for elsewhere
(``--metrics``), ``wrmse`` and ``acc`` are NaN.
"""
from __future__ import annotations

import numpy as np

from vpbench.metrics.registry import MetricContext, register_metric

GRID_AXES = (2, 3, 4)  # C, H, W of [N, T, C, H, W]


def _not_applicable(pred: np.ndarray) -> np.ndarray:
    return np.full(pred.shape[:2], np.nan)


def _row_weights(context: MetricContext, pred: np.ndarray) -> np.ndarray:
    """The latitude weights broadcast over [N, T, C, H, W]."""
    return np.asarray(context.lat_weights, np.float64).reshape(1, 1, 1, -1, 1) * np.ones(pred.shape[-1])


def rmse(pred: np.ndarray, target: np.ndarray, context: MetricContext) -> np.ndarray:
    """[N, T]: sqrt of the mean squared error over the grid, in physical units."""
    error = context.physical(pred) - context.physical(target)
    return np.sqrt(np.mean(error**2, axis=GRID_AXES))


def wrmse(pred: np.ndarray, target: np.ndarray, context: MetricContext) -> np.ndarray:
    """[N, T]: WeatherBench's latitude-weighted RMSE (eq. 1), physical units; NaN without latitude weights."""
    if context.lat_weights is None:
        return _not_applicable(pred)
    error = context.physical(pred) - context.physical(target)
    return np.sqrt(np.mean(_row_weights(context, pred) * error**2, axis=GRID_AXES))


def acc(pred: np.ndarray, target: np.ndarray, context: MetricContext) -> np.ndarray:
    """[N, T]: WeatherBench's latitude-weighted ACC (eq. 3) against ``extra["climatology"]`` [C, H, W]; NaN
    without a climatology or for a constant anomaly field."""
    climatology = context.extra.get("climatology")
    if climatology is None:
        return _not_applicable(pred)
    weights = np.ones(pred.shape[-2:]) if context.lat_weights is None else _row_weights(context, pred)
    forecast = context.physical(pred) - climatology
    truth = context.physical(target) - climatology
    numerator = np.sum(weights * forecast * truth, axis=GRID_AXES)
    denominator = np.sqrt(np.sum(weights * forecast**2, axis=GRID_AXES) * np.sum(weights * truth**2, axis=GRID_AXES))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


register_metric("rmse", rmse, higher_is_better=False, label="RMSE", applies=lambda c: not c.eight_bit)
register_metric("wrmse", wrmse, higher_is_better=False, label="RMSE (latitude-weighted)",
                applies=lambda c: c.lat_weights is not None)
register_metric("acc", acc, higher_is_better=True, label="ACC", applies=lambda c: "climatology" in c.extra)
