"""Metrics: what is measured of a prediction (per sequence and frame) and of a model (its cost).

Owns the frame-metric kernels (MSE, MAE, PSNR, SSIM on 8-bit frames), the perceptual metrics (LPIPS, FVD)
from weight files the user gives, and the cost of a model (params, FLOPs, latency, memory, with the one timer
every timing in vpbench uses). A frame metric is one file calling :func:`register_metric` (the registry in
:mod:`vpbench.metrics.registry` imports every module of this package once, so nothing lists them; plug-ins join
as models do). May import models, datasets and the foundation modules (errors, parallel, environment, plugins);
never config, the harness, the report or anything above them.
"""
from vpbench.metrics.registry import MetricContext, metric_names, register_metric, select

__all__ = ["MetricContext", "metric_names", "register_metric", "select"]
