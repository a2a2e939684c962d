"""Frame-wise metrics on the 0-255 scale of the paper, in one compiled pass per frame.

Predictions are quantised to 8-bit frames first (round(255 x), as saved images and as the official
SRVP evaluation does). For every predicted frame of every sequence: MSE and MAE (per-pixel means),
PSNR (10 log10(255^2 / MSE)) and SSIM with scikit-image's defaults (7x7 uniform window, sample
covariance, K1=0.01, K2=0.03, data_range=255; averaged over channels for RGB). ``ssim_openstl`` is
SSIM as OpenSTL computes it: scikit-image (<= 0.19) on float frames in [0, 1] without a data range
takes the float type's range, 2, so its constants are those of data_range=510 on the 0-255 scale; it
reads higher than SSIM and is what OpenSTL's published SSIM values are to be compared with.

On 8-bit frames every window sum is an integer below 2^31, so the sums are exact integers and only
the final SSIM formula runs in float64: SSIM agrees with
``skimage.metrics.structural_similarity(data_range=255)`` frame by frame to 1e-12 (skimage's own
rounding dominates the difference, most on nearly flat frames). The kernel
(numba, parallel over frames) slides the 7x7 window down the frame, keeping running column sums, so
every pixel is read twice (entering and leaving the window) and no frame-sized temporary is made.

The five metrics register with :func:`vpbench.metrics.registry.register_metric` as any metric does, and share the
kernel: the first of them asked for a batch runs it and the others read its columns (:func:`_kernel_columns`).
For data of physical values (``context.eight_bit`` False) MSE and MAE are in the context's physical units on the
unquantised predictions; PSNR and the SSIMs stay those of the 8-bit frames.
"""
from __future__ import annotations

import numba
import numpy as np
import torch
from torch import Tensor

from vpbench import parallel
from vpbench.metrics.registry import MetricContext, register_metric

METRICS = ("mse", "mae", "psnr", "ssim", "ssim_openstl")  # the metrics of this file, in registration order
DATA_RANGE = 255.0
OPENSTL_DATA_RANGE = 2 * DATA_RANGE  # the range of a float type in scikit-image <= 0.19, on the 0-255 scale
SSIM_WIN = 7
MIN_MSE = 1e-10  # PSNR of an exact prediction is capped at 10 log10(255^2 / 1e-10) = 148 dB
_N = SSIM_WIN * SSIM_WIN
# With S the window sums: var_x + var_y = (n S(x^2 + y^2) - Sx^2 - Sy^2) / (n (n-1)), cov likewise,
# and the means are S/n; the constants below are C1 and C2 scaled to those integer numerators.
_C1, _C2 = (0.01 * DATA_RANGE) ** 2 * _N * _N, (0.03 * DATA_RANGE) ** 2 * _N * (_N - 1)
_C1_OPENSTL = (0.01 * OPENSTL_DATA_RANGE) ** 2 * _N * _N
_C2_OPENSTL = (0.03 * OPENSTL_DATA_RANGE) ** 2 * _N * (_N - 1)


def to_uint8(frames: Tensor) -> Tensor:
    """Frames in [0, 1] -> 8-bit frames (round half to even, as numpy)."""
    return (frames.detach() * 255).round_().clamp_(0, 255).to(torch.uint8)


@numba.njit(parallel=True, cache=True, fastmath={"reassoc"})
def _plane_sums(x: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Per 2-D plane of uint8 [N, H, W] x2: sum of squared and absolute errors, SSIM and OpenSTL's SSIM
    -> out [N, 4]."""
    n, h, w = x.shape
    oh, ow = h - SSIM_WIN + 1, w - SSIM_WIN + 1
    for f in numba.prange(n):
        xf, yf = x[f], y[f]
        sq_err, abs_err, total, total_openstl = 0, 0, 0.0, 0.0
        # col[:, j]: sums of x, y, x^2 + y^2 and xy over the window's rows in column j.
        col = np.zeros((4, w), np.int32)
        for r in range(h):
            for j in range(w):  # row r enters the window (and the error sums)
                a, b = np.int32(xf[r, j]), np.int32(yf[r, j])
                sq_err += (a - b) * (a - b)
                abs_err += abs(a - b)
                col[0, j] += a
                col[1, j] += b
                col[2, j] += a * a + b * b
                col[3, j] += a * b
            if r >= SSIM_WIN:  # row r - 7 leaves it
                for j in range(w):
                    a, b = np.int32(xf[r - SSIM_WIN, j]), np.int32(yf[r - SSIM_WIN, j])
                    col[0, j] -= a
                    col[1, j] -= b
                    col[2, j] -= a * a + b * b
                    col[3, j] -= a * b
            if r < SSIM_WIN - 1:
                continue
            for j in range(ow):  # the windows of rows r-6..r
                sx, sy, sq, sxy = 0, 0, 0, 0
                for k in range(SSIM_WIN):
                    sx += col[0, j + k]
                    sy += col[1, j + k]
                    sq += col[2, j + k]
                    sxy += col[3, j + k]
                var_sum = np.float64(_N * sq - sx * sx - sy * sy)
                cov = np.float64(_N * sxy - sx * sy)
                fx, fy = np.float64(sx), np.float64(sy)
                mean_term, square_term = 2 * fx * fy, fx * fx + fy * fy
                total += ((mean_term + _C1) * (2 * cov + _C2)) / ((square_term + _C1) * (var_sum + _C2))
                total_openstl += (((mean_term + _C1_OPENSTL) * (2 * cov + _C2_OPENSTL))
                                  / ((square_term + _C1_OPENSTL) * (var_sum + _C2_OPENSTL)))
        out[f, 0] = sq_err
        out[f, 1] = abs_err
        out[f, 2] = total / (oh * ow)
        out[f, 3] = total_openstl / (oh * ow)


def _per_frame(pred: Tensor, target: Tensor) -> Tensor:
    """MSE, MAE, SSIM and OpenSTL's SSIM of 8-bit frames [N, C, H, W] -> [N, 4] (float64); the SSIMs are
    channel means."""
    if pred.dtype != torch.uint8 or target.dtype != torch.uint8:
        raise TypeError(f"metrics take 8-bit frames, got {pred.dtype} and {target.dtype}; quantise with to_uint8")
    if pred.shape != target.shape:
        raise ValueError(f"predictions {tuple(pred.shape)} and targets {tuple(target.shape)} differ in shape")
    n, c, h, w = pred.shape
    if min(h, w) < SSIM_WIN:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WIN}x{SSIM_WIN}, got {(h, w)}")
    planes = np.empty((n * c, 4))
    x = np.ascontiguousarray(pred.cpu().numpy()).reshape(n * c, h, w)
    y = np.ascontiguousarray(target.cpu().numpy()).reshape(n * c, h, w)
    parallel.run(_plane_sums, x, y, planes)
    planes = planes.reshape(n, c, 4)
    errors = planes[..., :2].sum(axis=1) / (c * h * w)
    return torch.from_numpy(np.concatenate([errors, planes[..., 2:].mean(axis=1)], axis=1))


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """SSIM of each 2-D 8-bit frame: [N, H, W] x2 (uint8) -> [N] (float64)."""
    return _per_frame(pred.unsqueeze(1), target.unsqueeze(1))[:, 2]


def frame_metrics(pred: Tensor, target: Tensor) -> Tensor:
    """Metrics per sequence and frame.

    pred, target: uint8 [B, T, C, H, W] -> [B, T, 5] float64 (columns: ``METRICS``), on the CPU.
    """
    b, t = pred.shape[:2]
    mse, mae, s, s_openstl = _per_frame(pred.flatten(0, 1), target.flatten(0, 1)).view(b, t, 4).unbind(-1)
    psnr = 10 * torch.log10(DATA_RANGE**2 / mse.clamp_min(MIN_MSE))
    return torch.stack([mse, mae, psnr, s, s_openstl], dim=-1)


def quantised(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] -> 8-bit frames, as :func:`to_uint8` (round half to even, then clipped)."""
    with np.errstate(invalid="ignore"):  # NaN predictions become 0, as torch's cast makes them
        return np.clip(np.rint(np.asarray(frames, np.float32) * np.float32(DATA_RANGE)), 0, DATA_RANGE).astype(np.uint8)


_last_batch: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (pred, target, their kernel columns)


def _kernel_columns(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """:func:`frame_metrics` of the 8-bit frames of float [N, T, C, H, W] x2 -> [N, T, 5] (columns ``METRICS``).

    The kernel runs once per batch: the columns of the last read-only (pred, target) pair are kept, and a call
    with the very same arrays (what the evaluation hands every metric of a batch; read-only, so unchanged) reads
    them."""
    global _last_batch
    if _last_batch is not None and _last_batch[0] is pred and _last_batch[1] is target:
        return _last_batch[2]
    columns = frame_metrics(torch.from_numpy(quantised(pred)), torch.from_numpy(quantised(target))).numpy()
    cacheable = not (np.asarray(pred).flags.writeable or np.asarray(target).flags.writeable)
    _last_batch = (pred, target, columns) if cacheable else None
    return columns


def _physical_error(pred: np.ndarray, target: np.ndarray, context: MetricContext, power: int) -> np.ndarray:
    """Mean |error|^power per frame in the context's physical units: [N, T, C, H, W] x2 -> [N, T]."""
    error = np.abs(context.physical(pred) - context.physical(target)) ** power
    return error.mean(axis=(-3, -2, -1))


def mse(pred: np.ndarray, target: np.ndarray, context: MetricContext) -> np.ndarray:
    """Per-pixel mean squared error of each frame, on the 0-255 scale (8-bit data) or in physical units."""
    if not context.eight_bit:
        return _physical_error(pred, target, context, 2)
    return _kernel_columns(pred, target)[..., 0]


def mae(pred: np.ndarray, target: np.ndarray, context: MetricContext) -> np.ndarray:
    """Per-pixel mean absolute error of each frame, on the 0-255 scale (8-bit data) or in physical units."""
    if not context.eight_bit:
        return _physical_error(pred, target, context, 1)
    return _kernel_columns(pred, target)[..., 1]


def psnr(pred: np.ndarray, target: np.ndarray, context: MetricContext) -> np.ndarray:
    """10 log10(255^2 / MSE) of each 8-bit frame, in dB (MSE floored at ``MIN_MSE``)."""
    return _kernel_columns(pred, target)[..., 2]


def ssim_paper(pred: np.ndarray, target: np.ndarray, context: MetricContext) -> np.ndarray:
    """SSIM of each 8-bit frame (data_range 255, channel mean), as the SRVP paper."""
    return _kernel_columns(pred, target)[..., 3]


def ssim_openstl(pred: np.ndarray, target: np.ndarray, context: MetricContext) -> np.ndarray:
    """SSIM of each frame as OpenSTL computes it (data_range 2 on [0, 1] frames)."""
    return _kernel_columns(pred, target)[..., 4]


register_metric("mse", mse, higher_is_better=False, label="MSE")
register_metric("mae", mae, higher_is_better=False, label="MAE")
register_metric("psnr", psnr, higher_is_better=True, label="PSNR")
register_metric("ssim", ssim_paper, higher_is_better=True, label="SSIM")
register_metric("ssim_openstl", ssim_openstl, higher_is_better=True, label="SSIM (OpenSTL's)")
