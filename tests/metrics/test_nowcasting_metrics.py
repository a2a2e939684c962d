"""The CSI family (Earthformer's SEVIR scores) against contingency tables counted by hand on a 16 x 16 frame."""
from __future__ import annotations

import numpy as np
import pytest

from vpbench.metrics.nowcasting import THRESHOLDS, max_pool
from vpbench.metrics.registry import MetricContext, get_metric

SEVIR = MetricContext("sevir", channels=("vil",), units="VIL (0-255)", eight_bit=False, offset=0.0, scale=255.0,
                      extra={"nowcasting": "vil"})


def vil_frames(event_pixels) -> np.ndarray:
    """A 16 x 16 VIL frame of 0 with VIL 100 at the given flat indices of its top-left 4 x 4 block -> frames
    [1, 1, 1, 16, 16] in [0, 1]."""
    frame = np.zeros((16, 16))
    for i in event_pixels:
        frame[i // 4, i % 4] = 100
    return (frame / 255.0)[None, None, None]


# observed events at pixels 0, 1, 2; forecast at 1, 2, 3, 4: H = 2, M = 1, F = 2, N = 256 - 5 = 251
PRED, TARGET = vil_frames([1, 2, 3, 4]), vil_frames([0, 1, 2])


def score(name, pred=PRED, target=TARGET, context=SEVIR) -> float:
    values = get_metric(name).fn(pred, target, context)
    assert values.shape == (1, 1)
    return float(values[0, 0])


@pytest.mark.parametrize("threshold", [16, 74])
def test_scores_at_a_threshold_both_fields_cross(threshold):
    assert score(f"csi_{threshold}") == pytest.approx(2 / 5, abs=1e-4)
    assert score(f"pod_{threshold}") == pytest.approx(2 / 3, abs=1e-4)
    assert score(f"far_{threshold}") == pytest.approx(2 / 4, abs=1e-4)
    assert score(f"bias_{threshold}") == pytest.approx(4 / 3, abs=1e-4)
    # HSS = 2 (H N - M F) / ((H + M)(M + N) + (H + F)(F + N)) = 2 (502 - 2) / (3 x 252 + 4 x 253)
    assert score(f"hss_{threshold}") == pytest.approx(1000 / 1768)


def test_thresholds_no_field_reaches_score_zero():
    for threshold in (133, 160, 181, 219):
        assert score(f"csi_{threshold}") == 0 and score(f"pod_{threshold}") == 0 and score(f"hss_{threshold}") == 0


def test_mean_and_pooled_csi():
    # CSI-M: (0.4 + 0.4 + 0 + 0 + 0 + 0) / 6; pooled over 4 x 4 or 16 x 16 blocks both maxima are 100, a hit
    # at 16 and 74 and nothing else: CSI 1 there, (1 + 1) / 6
    assert score("csi_m") == pytest.approx(0.8 / 6, abs=1e-4)
    assert score("csi_m_pool4") == pytest.approx(2 / 6, abs=1e-4)
    assert score("csi_m_pool16") == pytest.approx(2 / 6, abs=1e-4)
    assert score("csi_m", PRED, PRED) == pytest.approx(2 / 6, abs=1e-4)  # perfect, but no event above 74
    np.testing.assert_array_equal(max_pool(np.arange(16.0).reshape(4, 4), 2), [[5, 7], [13, 15]])


def test_a_value_at_the_threshold_is_an_event_and_other_data_get_nan():
    at = np.full((1, 1, 1, 2, 2), 74 / 255.0)
    assert score("csi_74", at, at) == pytest.approx(1, abs=1e-3)
    assert score("csi_133", at, at) == 0
    assert np.isnan(score("csi_16", context=MetricContext("mmnist")))
    assert len(THRESHOLDS) == 6


def test_by_default_each_dataset_gets_the_metrics_that_apply_to_its_data():
    from vpbench.metrics.scoring import MetricScorer

    weather = MetricContext("weatherbench", eight_bit=False, lat_weights=np.ones(2),
                            extra={"climatology": np.zeros((1, 2, 2))})
    columns = {name: set(MetricScorer(None, ctx).columns) for name, ctx in
               (("mmnist", MetricContext("mmnist")), ("sevir", SEVIR), ("weatherbench", weather))}
    domain = {"rmse", "wrmse", "acc", "csi_m", "csi_16", "hss_219", "csi_m_pool16"}
    assert not columns["mmnist"] & domain and {"mse", "ssim"} <= columns["mmnist"]
    assert {"rmse", "csi_m", "csi_16", "hss_219", "csi_m_pool16"} <= columns["sevir"]
    assert not {"wrmse", "acc"} & columns["sevir"]
    assert {"rmse", "wrmse", "acc", "mse", "mae"} <= columns["weatherbench"] and "csi_m" not in columns["weatherbench"]
    assert "csi_16" in MetricScorer("mse,csi_16", MetricContext("mmnist")).columns  # asked for: computed anyway
