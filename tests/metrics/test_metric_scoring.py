"""Scoring through the registry: the built-in metrics give the kernel's values in one kernel pass per batch, data
of physical values get MSE and MAE in their units, a plug-in's bad output costs its own column only."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vpbench.errors import UserError
from vpbench.metrics import frames, registry
from vpbench.metrics.registry import MetricContext
from vpbench.metrics.scoring import MetricScorer


def _frames(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """8-bit predictions and targets [2, 3, 1, 8, 8], the predictions near the targets."""
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 256, (2, 3, 1, 8, 8)).astype(np.uint8)
    pred = np.clip(target.astype(int) + rng.integers(-30, 31, target.shape), 0, 255).astype(np.uint8)
    return pred, target


def test_the_built_in_metrics_are_the_kernels_values_in_one_pass_per_batch(monkeypatch):
    pred, target = _frames()
    expected = frames.frame_metrics(torch.from_numpy(pred), torch.from_numpy(target)).numpy()
    calls = []
    kernel = frames.frame_metrics
    monkeypatch.setattr(frames, "frame_metrics", lambda p, t: calls.append(1) or kernel(p, t))
    scorer = MetricScorer(None, MetricContext("mmnist"))
    assert scorer.columns[:5] == frames.METRICS
    for batch in range(2):
        scored = scorer.score(pred.astype(np.float32) / 255, target.astype(np.float32) / 255)
        np.testing.assert_array_equal(scored[..., :5], expected)
        assert len(calls) == batch + 1
    assert scorer.warnings == []


def test_data_of_physical_values_have_mse_and_mae_in_their_units():
    pred, target = (a.astype(np.float32) / 255 for a in _frames(1))
    context = MetricContext("weather", units="K", eight_bit=False, offset=200.0, scale=100.0)
    scored = MetricScorer("mse,mae,ssim", context).score(pred, target)
    error = 100.0 * (pred.astype(np.float64) - target)
    np.testing.assert_allclose(scored[..., 0], (error**2).mean(axis=(2, 3, 4)), rtol=1e-6)
    np.testing.assert_allclose(scored[..., 1], np.abs(error).mean(axis=(2, 3, 4)), rtol=1e-6)
    eight_bit = frames.frame_metrics(torch.from_numpy(frames.quantised(pred)), torch.from_numpy(frames.quantised(target)))
    np.testing.assert_array_equal(scored[..., 2], eight_bit[..., 3].numpy())


def test_a_plugin_with_a_wrong_shape_is_recorded_and_the_others_go_on(monkeypatch):
    registry.metric_names()  # the built-in metrics register into the registry kept after the test
    monkeypatch.setattr(registry, "_METRICS", dict(registry._METRICS))
    registry.register_metric("flat", lambda p, t, c: np.zeros(p.shape[0]), higher_is_better=False)
    pred, target = (a.astype(np.float32) / 255 for a in _frames(2))
    scorer = MetricScorer(["flat", "mae"], MetricContext("mmnist"))
    scored = scorer.score(pred, target)
    assert np.isnan(scored[..., 0]).all() and np.isfinite(scored[..., 1]).all()
    assert scorer.warnings == [f"metric 'flat' ({__name__}:test_a_plugin_with_a_wrong_shape_is_recorded_and_the_"
                               "others_go_on.<locals>.<lambda>) failed: ValueError: returned shape (2,), expected one "
                               "value per sequence and predicted frame (2, 3); its values are NaN"]
    per_frame = np.ones((2, 3, 2))
    scorer.blank_failed(per_frame)
    assert np.isnan(per_frame[..., 0]).all() and (per_frame[..., 1] == 1).all()


def test_metrics_cannot_change_what_the_next_one_reads():
    pred, target = (a.astype(np.float32) / 255 for a in _frames(3))

    def mutating(p: np.ndarray, t: np.ndarray, context: MetricContext) -> np.ndarray:
        p[:] = t
        return np.zeros(p.shape[:2])

    scorer = MetricScorer(["mse"], MetricContext("mmnist"))
    scorer.entries.insert(0, registry.MetricEntry("mutating", mutating, False, "mutating", {"kind": "external"}))
    scored = scorer.score(pred, target)
    assert "ValueError: assignment destination is read-only" in scorer.warnings[0]
    assert (scored[..., 1] > 0).all()


@pytest.mark.parametrize("spec, message", [
    ("mse,nope", "unknown metric 'nope'; the metrics are: mse, mae, psnr, ssim, ssim_openstl"),
    (" , ", "--metrics is empty; the metrics are: mse, mae"),
    ("vpbench_no_such_module:fn", "metric spec 'vpbench_no_such_module:fn': no module named"),
])
def test_a_bad_selection_is_one_line_naming_the_metrics(spec, message):
    with pytest.raises(UserError, match="^" + message.replace("(", r"\(")) as caught:
        registry.select(spec)
    assert "\n" not in str(caught.value)
