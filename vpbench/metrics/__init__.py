"""Metrics: what is measured of a prediction (per sequence and frame) and of a model (its cost).

Owns the frame-metric kernels (MSE, MAE, PSNR, SSIM on 8-bit frames), the perceptual metrics (LPIPS, FVD)
from weight files the user gives, and the cost of a model (params, FLOPs, latency, memory, with the one timer
every timing in vpbench uses). May import models, datasets and the foundation modules (errors, parallel,
environment); never config, the harness, the report or anything above them.
"""
