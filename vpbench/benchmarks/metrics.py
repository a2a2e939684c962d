"""Frame-wise metrics on the 0-255 scale of the paper, batched in torch.

Predictions are quantised to 8-bit frames first (round(255 x), as saved images and as the official
SRVP evaluation does). For every predicted frame of every sequence: MSE and MAE (per-pixel means),
PSNR (10 log10(255^2 / MSE)) and SSIM with scikit-image's defaults (7x7 uniform window, sample
covariance, K1=0.01, K2=0.03, data_range=255; averaged over channels for RGB).

On 8-bit frames every window sum is an integer below 2^31, so the sums are computed exactly in
int32 and only the final SSIM formula runs in float64: SSIM agrees with
``skimage.metrics.structural_similarity(data_range=255)`` frame by frame to 1e-12.
"""
from __future__ import annotations

import torch
from torch import Tensor

METRICS = ("mse", "mae", "psnr", "ssim")
HIGHER_IS_BETTER = {"mse": False, "mae": False, "psnr": True, "ssim": True}
DATA_RANGE = 255.0
SSIM_WIN = 7
MIN_MSE = 1e-10  # PSNR of an exact prediction is capped at 10 log10(255^2 / 1e-10) = 148 dB
CHUNK = 32  # frames per SSIM pass: the working set stays in cache


def to_uint8(frames: Tensor) -> Tensor:
    """Frames in [0, 1] -> 8-bit frames (round half to even, as numpy)."""
    return (frames.detach() * 255).round_().clamp_(0, 255).to(torch.uint8)


def _window_sum(x: Tensor) -> Tensor:
    """Sum over every 7x7 window fully inside the frame: [..., H, W] -> [..., H-6, W-6].

    Separable, each direction as 7 = 4 + 2 + 1 from pairwise sums (4 additions instead of 6).
    """
    h, w = x.shape[-2:]
    s2 = x[..., :-1, :] + x[..., 1:, :]
    s4 = s2[..., :-2, :] + s2[..., 2:, :]
    x = s4[..., : h - 6, :] + s2[..., 4 : h - 2, :] + x[..., 6:, :]
    s2 = x[..., :-1] + x[..., 1:]
    s4 = s2[..., :-2] + s2[..., 2:]
    return s4[..., : w - 6] + s2[..., 4 : w - 2] + x[..., 6:]


def _ssim_maps(xi: Tensor, yi: Tensor) -> Tensor:
    """SSIM of int32 frames [N, H, W] (values 0-255) -> [N] (float64)."""
    n = SSIM_WIN * SSIM_WIN
    # Four maps suffice: sum_x, sum_y, sum(x^2 + y^2), sum(xy).
    sx, sy, sq, sxy = _window_sum(torch.stack([xi, yi, xi * xi + yi * yi, xi * yi])).unbind(0)
    # With S the window sums: var_x + var_y = (n*S(x^2+y^2) - Sx^2 - Sy^2) / (n (n-1)), and alike.
    var_sum = (n * sq - sx * sx - sy * sy).double()
    cov = (n * sxy - sx * sy).double()
    sx, sy = sx.double(), sy.double()
    c1 = (0.01 * DATA_RANGE) ** 2 * n * n  # constants scaled to the integer numerators
    c2 = (0.03 * DATA_RANGE) ** 2 * n * (n - 1)
    s = ((2 * sx * sy + c1) * (2 * cov + c2)) / ((sx * sx + sy * sy + c1) * (var_sum + c2))
    return s.mean(dim=(-2, -1))


def _chunk_metrics(pred: Tensor, target: Tensor) -> Tensor:
    """MSE, MAE and SSIM of 8-bit frames [N, C, H, W] -> [N, 3] (float64); SSIM is the channel mean."""
    xi, yi = pred.to(torch.int32), target.to(torch.int32)
    diff = xi - yi
    pixels = diff[0].numel()
    mse = diff.square().sum(dim=(1, 2, 3), dtype=torch.int64).double() / pixels  # exact integer sums
    mae = diff.abs().sum(dim=(1, 2, 3), dtype=torch.int64).double() / pixels
    n, c, h, w = xi.shape
    s = _ssim_maps(xi.reshape(n * c, h, w), yi.reshape(n * c, h, w)).view(n, c).mean(dim=1)
    return torch.stack([mse, mae, s], dim=1)


def _per_frame(pred: Tensor, target: Tensor) -> Tensor:
    """:func:`_chunk_metrics` over frames [N, C, H, W], a chunk at a time: the working set stays in cache."""
    if min(pred.shape[-2:]) < SSIM_WIN:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WIN}x{SSIM_WIN}, got {tuple(pred.shape[-2:])}")
    step = max(1, CHUNK // pred.shape[1])
    return torch.cat([_chunk_metrics(pred[i : i + step], target[i : i + step]) for i in range(0, len(pred), step)])


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """SSIM of each 2-D 8-bit frame: [N, H, W] x2 (uint8) -> [N] (float64)."""
    return _per_frame(pred.unsqueeze(1), target.unsqueeze(1))[:, 2]


def frame_metrics(pred: Tensor, target: Tensor) -> Tensor:
    """Metrics per sequence and frame.

    pred, target: uint8 [B, T, C, H, W] -> [B, T, 4] float64 (columns: ``METRICS``).
    """
    b, t = pred.shape[:2]
    mse, mae, s = _per_frame(pred.flatten(0, 1), target.flatten(0, 1)).view(b, t, 3).unbind(-1)
    psnr = 10 * torch.log10(DATA_RANGE**2 / mse.clamp_min(MIN_MSE))
    return torch.stack([mse, mae, psnr, s], dim=-1)
