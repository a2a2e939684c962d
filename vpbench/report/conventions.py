"""Metric conventions: how the metrics are reported.

* ``paper``: MSE and MAE per pixel on the 0-255 scale, SSIM with data_range 255 (scikit-image's
  default for 8-bit frames), as the SRVP paper (and its code) reports them;
* ``openstl``: MSE and MAE as per-frame sums over the C x H x W pixels on the [0, 1] scale, as
  PredRNN and OpenSTL publish them (MSE_openstl = MSE_paper / 255^2 x CHW and MAE_openstl =
  MAE_paper / 255 x CHW), and SSIM as OpenSTL computes it (scikit-image <= 0.19 on float frames, whose
  data range it takes as 2: the column ``ssim_openstl``; it reads higher than the paper's SSIM).

PSNR is the same in both. Published reference values are shown in the convention of the table.
The default is each run's protocol's: ``paper`` for the SRVP protocol, ``openstl`` for OpenSTL's.
"""
from __future__ import annotations

CONVENTIONS = {
    "paper": "MSE and MAE per pixel on the 0-255 scale, SSIM with data_range 255 (the SRVP paper's convention)",
    "openstl": "MSE and MAE summed over the pixels of a frame on the [0, 1] scale, SSIM as OpenSTL computes it "
               "(data_range 2 on [0, 1] frames) (PredRNN/OpenSTL convention)",
}
PROTOCOL_CONVENTIONS = {"srvp": "paper", "openstl": "openstl"}
SHOWN = ("mse", "mae", "psnr", "ssim")  # the metrics of a results table, by their names in the paper's convention
STORED_COLUMN = {"openstl": {"ssim": "ssim_openstl"}}  # a shown metric whose value comes from another column


def column(convention: str, metric: str) -> str:
    """The stored metric (``METRICS`` name) that ``metric`` shows in ``convention``."""
    return STORED_COLUMN.get(convention, {}).get(metric, metric)


def scale(convention: str, metric: str, shape: tuple[int, int, int]) -> float:
    """Factor turning a paper-convention value of ``metric`` into ``convention`` for frames of ``shape`` (C, H, W)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}")
    if convention == "paper" or metric not in ("mse", "mae"):
        return 1.0
    c, h, w = shape
    return c * h * w / (255.0**2 if metric == "mse" else 255.0)
