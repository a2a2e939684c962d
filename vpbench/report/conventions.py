"""Metric conventions: how MSE and MAE are scaled for the reader.

* ``paper``: per-pixel means on the 0-255 scale, as the SRVP paper (and its code) reports them;
* ``openstl``: per-frame sums over the C x H x W pixels on the [0, 1] scale, as PredRNN and
  OpenSTL publish them: MSE_openstl = MSE_paper / 255^2 x CHW and MAE_openstl = MAE_paper / 255 x CHW.

PSNR and SSIM are the same in both. The paper's reference values are converted the same way.
"""
from __future__ import annotations

CONVENTIONS = {
    "paper": "MSE and MAE per pixel on the 0-255 scale (the paper's convention)",
    "openstl": "MSE and MAE summed over the pixels of a frame on the [0, 1] scale (PredRNN/OpenSTL convention)",
}


def scale(convention: str, metric: str, shape: tuple[int, int, int]) -> float:
    """Factor turning a paper-convention value of ``metric`` into ``convention`` for frames of ``shape`` (C, H, W)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}")
    if convention == "paper" or metric not in ("mse", "mae"):
        return 1.0
    c, h, w = shape
    return c * h * w / (255.0**2 if metric == "mse" else 255.0)
