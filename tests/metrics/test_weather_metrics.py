"""rmse, wrmse and acc (WeatherBench's equations 1 and 3) against values worked out by hand on a 2 x 2 grid."""
from __future__ import annotations

import numpy as np
import pytest

from vpbench.metrics.registry import MetricContext, get_metric

OFFSET, SCALE = 200.0, 100.0  # physical = 200 + 100 x frame
WEIGHTS = np.array([0.5, 1.5])  # rows' latitude weights (mean 1)
CLIMATOLOGY = np.full((1, 2, 2), 250.0)


def frames(physical) -> np.ndarray:
    """Physical values [2, 2] -> frames [N=1, T=1, C=1, 2, 2] in [0, 1]."""
    return ((np.asarray(physical, np.float64) - OFFSET) / SCALE)[None, None, None]


def context(**fields) -> MetricContext:
    return MetricContext("weatherbench", units="K", eight_bit=False, offset=OFFSET, scale=SCALE, **fields)


def score(name, pred, target, ctx) -> float:
    values = get_metric(name).fn(frames(pred), frames(target), ctx)
    assert values.shape == (1, 1)
    return float(values[0, 0])


def test_rmse_and_latitude_weighted_rmse():
    # errors 2 on the first row, 4 on the second: RMSE = sqrt((2 x 4 + 2 x 16) / 4) = sqrt(10);
    # weighted: sqrt((0.5 x 2 x 4 + 1.5 x 2 x 16) / 4) = sqrt(13)
    pred, target = [[252, 248], [254, 246]], [[250, 250], [250, 250]]
    ctx = context(lat_weights=WEIGHTS)
    assert score("rmse", pred, target, ctx) == pytest.approx(np.sqrt(10))
    assert score("wrmse", pred, target, ctx) == pytest.approx(np.sqrt(13))
    assert np.isnan(score("wrmse", pred, target, context()))  # no latitude weights: not applicable


def test_anomaly_correlation_against_the_climatology():
    # anomalies f' = [[1, -1], [2, 0]], t' = [[1, 1], [2, -2]] against 250:
    # sum w f't' = 0.5 x 0 + 1.5 x 4 = 6, sum w f'^2 = 1 + 6 = 7, sum w t'^2 = 1 + 12 = 13 -> 6 / sqrt(91)
    pred, target = [[251, 249], [252, 250]], [[251, 251], [252, 248]]
    ctx = context(lat_weights=WEIGHTS, extra={"climatology": CLIMATOLOGY})
    assert score("acc", pred, target, ctx) == pytest.approx(6 / np.sqrt(91))
    assert score("acc", target, target, ctx) == pytest.approx(1.0)
    assert score("acc", 500 - np.asarray(target), target, ctx) == pytest.approx(-1.0)  # opposite anomalies
    # unweighted: sum f't' = 0 + 4 = 4, sum f'^2 = 6, sum t'^2 = 10
    assert score("acc", pred, target, context(extra={"climatology": CLIMATOLOGY})) == pytest.approx(4 / np.sqrt(60))
    assert np.isnan(score("acc", pred, target, context(lat_weights=WEIGHTS)))  # no climatology
    assert np.isnan(score("acc", CLIMATOLOGY[0], target, ctx))  # a forecast without anomaly


def test_scores_are_per_sequence_and_lead_time_over_all_channels():
    rng = np.random.default_rng(0)
    pred, target = rng.random((3, 2, 2, 4, 5)), rng.random((3, 2, 2, 4, 5))
    ctx = MetricContext("weatherbench", eight_bit=False, offset=(0.0, 10.0), scale=(1.0, 20.0),
                        lat_weights=np.ones(4))
    error = (pred - target) * np.array([1.0, 20.0])[:, None, None]
    expected = np.sqrt((error**2).mean(axis=(2, 3, 4)))
    np.testing.assert_allclose(get_metric("rmse").fn(pred, target, ctx), expected)
    np.testing.assert_allclose(get_metric("wrmse").fn(pred, target, ctx), expected)  # weights of 1: the RMSE
