"""A metric of your own in one file: the largest absolute error of each predicted frame.

Use it without packaging (the folder holding this file on PYTHONPATH):

    VPBENCH_PLUGINS=max_error bench run --models convgru,persistence --dataset mmnist --preset tiny

or, installed in a package of yours, through the entry point ``[project.entry-points."vpbench.metrics"]
maxerr = "max_error:max_abs_error"``, or for one command: ``--metrics mse,max_error:max_abs_error``. A built-in
metric is the same file under ``vpbench/metrics/``.
"""
import numpy as np

from vpbench.metrics import MetricContext, register_metric


def max_abs_error(pred: np.ndarray, target: np.ndarray, context: MetricContext) -> np.ndarray:
    """pred, target: float [N, T, C, H, W] in [0, 1] -> [N, T]: max |pred - target| over each frame's pixels,
    in the data's units (0-255 for 8-bit frames; ``context.physical`` maps frames to them)."""
    return np.abs(context.physical(pred) - context.physical(target)).max(axis=(-3, -2, -1))


register_metric("maxerr", max_abs_error, higher_is_better=False, label="Max error")
