"""Nowcasting skill scores on radar VIL, per sequence and lead time: the CSI family of Earthformer's SEVIR
benchmark.

For a threshold tau on VIL's 0-255 pixel scale, a pixel is an event where its value is >= tau (Earthformer's
``_threshold`` in ``metrics/skill_scores.py``); over one frame, with hits H (event forecast and observed),
misses M (observed only), false alarms F (forecast only) and correct negatives N, and eps = 1e-4 as
Earthformer's ``SEVIRSkillScore``:

* ``csi_<tau>`` = H / (H + M + F + eps), ``pod_<tau>`` = H / (H + M + eps), ``far_<tau>`` = F / (H + F + eps)
  (1 - Earthformer's success ratio), ``bias_<tau>`` = (H + F) / (H + M + eps) (``_bias``, the frequency bias;
  1 is unbiased);
* ``hss_<tau>`` = 2 (H N - M F) / ((H + M)(M + N) + (H + F)(F + N)), the Heidke skill score as the HKO-7
  benchmark (Shi et al. 2017) computes it;
* ``csi_m``: the mean CSI over the thresholds 16, 74, 133, 160, 181 and 219 (Earthformer's CSI-M);
  ``csi_m_pool4`` and ``csi_m_pool16``: CSI-M of both fields max-pooled over 4 x 4 and 16 x 16 blocks
  (Earthformer's paper, after Ravuri et al. 2021), which rewards forecasts that are right nearby.

Scores are per frame, averaged over sequences by the harness; Earthformer sums H, M and F over the whole
test set before dividing, so its values and these agree only when events are spread evenly. They apply to
datasets whose metric context sets ``extra["nowcasting"] = "vil"`` (SEVIR): computed there by default, NaN
elsewhere when asked for.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from vpbench.metrics.registry import MetricContext, MetricFn, register_metric

THRESHOLDS = (16, 74, 133, 160, 181, 219)
POOLS = (4, 16)
EPS = 1e-4  # Earthformer's SEVIRSkillScore
Counts = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def max_pool(frames: np.ndarray, size: int) -> np.ndarray:
    """[..., H, W] -> [..., H/size, W/size]: maxima of size x size blocks (a partial last block is dropped)."""
    *lead, h, w = frames.shape
    h, w = h // size * size, w // size * size
    return frames[..., :h, :w].reshape(*lead, h // size, size, w // size, size).max(axis=(-3, -1))


def contingency(pred: np.ndarray, target: np.ndarray, threshold: float) -> Counts:
    """Hits, misses, false alarms and correct negatives [N, T] of VIL fields [N, T, ...] at ``threshold``."""
    axes = tuple(range(2, pred.ndim))
    forecast, observed = pred >= threshold, target >= threshold
    hits = np.sum(forecast & observed, axis=axes, dtype=np.float64)
    misses = np.sum(~forecast & observed, axis=axes, dtype=np.float64)
    false_alarms = np.sum(forecast & ~observed, axis=axes, dtype=np.float64)
    return hits, misses, false_alarms, observed[0, 0].size - hits - misses - false_alarms


def csi(h: np.ndarray, m: np.ndarray, f: np.ndarray, n: np.ndarray) -> np.ndarray:
    return h / (h + m + f + EPS)


def pod(h: np.ndarray, m: np.ndarray, f: np.ndarray, n: np.ndarray) -> np.ndarray:
    return h / (h + m + EPS)


def far(h: np.ndarray, m: np.ndarray, f: np.ndarray, n: np.ndarray) -> np.ndarray:
    return f / (h + f + EPS)


def bias(h: np.ndarray, m: np.ndarray, f: np.ndarray, n: np.ndarray) -> np.ndarray:
    return (h + f) / (h + m + EPS)


def hss(h: np.ndarray, m: np.ndarray, f: np.ndarray, n: np.ndarray) -> np.ndarray:
    denominator = (h + m) * (m + n) + (h + f) * (f + n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * (h * n - m * f) / np.where(denominator > 0, denominator, 1), 0.0)


SCORES: dict[str, tuple[Callable[..., np.ndarray], bool, str]] = {  # name -> (score, higher is better, label)
    "csi": (csi, True, "CSI"), "pod": (pod, True, "POD"), "far": (far, False, "FAR"),
    "bias": (bias, False, "frequency bias (1 is unbiased)"), "hss": (hss, True, "HSS"),
}


def is_vil(context: MetricContext) -> bool:
    """Whether the data are radar VIL (the dataset's context says ``extra["nowcasting"] = "vil"``)."""
    return context.extra.get("nowcasting") == "vil"


def vil(frames: np.ndarray, context: MetricContext) -> np.ndarray | None:
    """Frames [N, T, 1, H, W] in [0, 1] -> VIL [N, T, H, W] on 0-255; None for data that are not radar VIL."""
    if not is_vil(context):
        return None
    return context.physical(frames)[:, :, 0]


def threshold_metric(score: Callable[..., np.ndarray], threshold: int) -> MetricFn:
    """The metric ``score`` at ``threshold``: fn(pred, target, context) -> [N, T]."""

    def metric(pred: np.ndarray, target: np.ndarray, context: MetricContext) -> np.ndarray:
        forecast, observed = vil(pred, context), vil(target, context)
        if forecast is None:
            return np.full(pred.shape[:2], np.nan)
        return score(*contingency(forecast, observed, threshold))

    return metric


def mean_csi(pool: int = 1) -> MetricFn:
    """CSI-M, of fields max-pooled over ``pool`` x ``pool`` blocks when ``pool`` > 1."""

    def metric(pred: np.ndarray, target: np.ndarray, context: MetricContext) -> np.ndarray:
        forecast, observed = vil(pred, context), vil(target, context)
        if forecast is None:
            return np.full(pred.shape[:2], np.nan)
        if pool > 1:
            forecast, observed = max_pool(forecast, pool), max_pool(observed, pool)
        return np.mean([csi(*contingency(forecast, observed, t)) for t in THRESHOLDS], axis=0)

    return metric


for _name, (_score, _higher, _label) in SCORES.items():
    for _threshold in THRESHOLDS:
        register_metric(f"{_name}_{_threshold}", threshold_metric(_score, _threshold), higher_is_better=_higher,
                        label=f"{_label} at VIL {_threshold}", applies=is_vil)
register_metric("csi_m", mean_csi(), higher_is_better=True, label="CSI-M", applies=is_vil)
for _pool in POOLS:
    register_metric(f"csi_m_pool{_pool}", mean_csi(_pool), higher_is_better=True, label=f"CSI-M (pool {_pool})",
                    applies=is_vil)
