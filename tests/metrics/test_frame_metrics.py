"""Frame-wise metrics: hand values and agreement with scikit-image."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from vpbench.harness.evaluate import framewise_table, summarize
from vpbench.metrics.frames import METRICS, frame_metrics, quantised, ssim, to_uint8


def structured_pair(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames with structure (blobs) and a noisy, shifted copy: SSIM far from 0 and 1."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :64]
    frames = []
    for _ in range(n):
        cy, cx, r = rng.uniform(10, 54), rng.uniform(10, 54), rng.uniform(4, 14)
        frames.append(255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)))
    target = np.stack(frames).round().astype(np.uint8)
    pred = np.clip(np.roll(target, 2, axis=-1) + rng.normal(0, 20, target.shape), 0, 255).round().astype(np.uint8)
    return torch.from_numpy(pred), torch.from_numpy(target)


def test_ssim_agrees_with_skimage_frame_by_frame():
    pred, target = structured_pair(40)
    ours = ssim(pred, target).numpy()
    reference = [structural_similarity(t.numpy(), p.numpy(), data_range=255) for p, t in zip(pred, target)]
    assert np.abs(ours - reference).max() < 1e-6
    assert 0.05 < ours.mean() < 0.95


def test_rgb_ssim_is_the_mean_over_channels_as_skimage():
    pred, target = structured_pair(6)
    p = pred.reshape(2, 3, 64, 64)[None]  # [B=1, T=2, C=3, H, W]
    t = target.reshape(2, 3, 64, 64)[None]
    ours = frame_metrics(p, t)[0, :, 3].numpy()
    reference = [
        structural_similarity(t[0, i].permute(1, 2, 0).numpy(), p[0, i].permute(1, 2, 0).numpy(), data_range=255,
                              channel_axis=-1)
        for i in range(2)
    ]
    assert np.abs(ours - reference).max() < 1e-6


def test_mse_mae_psnr_hand_values():
    target = torch.zeros(1, 2, 1, 8, 8, dtype=torch.uint8)
    pred = target.clone()
    pred[0, 0] = 10  # frame 1: every pixel off by 10
    pred[0, 1, 0, :4] = 20  # frame 2: half the pixels off by 20
    m = frame_metrics(pred, target)[0]
    assert m[0, 0] == 100 and m[0, 1] == 10
    assert m[1, 0] == 200 and m[1, 1] == 10
    assert m[0, 2].item() == pytest.approx(10 * math.log10(255**2 / 100))
    assert m[1, 2].item() == pytest.approx(10 * math.log10(255**2 / 200))


def test_exact_prediction_has_capped_psnr_and_ssim_one():
    frames = torch.randint(0, 256, (1, 1, 1, 16, 16), dtype=torch.uint8)
    m = frame_metrics(frames, frames)[0, 0]
    assert m[0] == 0 and m[3].item() == pytest.approx(1.0)
    assert m[2].item() == pytest.approx(10 * math.log10(255**2 / 1e-10))


def test_mse_and_mae_agree_with_numpy_on_random_frames_of_odd_size():
    rng = np.random.default_rng(3)
    pred, target = (torch.from_numpy(rng.integers(0, 256, (2, 3, 3, 9, 13), dtype=np.uint8)) for _ in range(2))
    diff = pred.numpy().astype(float) - target.numpy()
    m = frame_metrics(pred, target)
    assert np.abs(m[..., 0].numpy() - (diff**2).mean(axis=(2, 3, 4))).max() < 1e-9
    assert np.abs(m[..., 1].numpy() - np.abs(diff).mean(axis=(2, 3, 4))).max() < 1e-9
    reference = [[structural_similarity(target[b, t].permute(1, 2, 0).numpy(), pred[b, t].permute(1, 2, 0).numpy(),
                                        data_range=255, channel_axis=-1) for t in range(3)] for b in range(2)]
    assert np.abs(m[..., 3].numpy() - reference).max() < 1e-6


def test_metrics_refuse_float_frames_and_mismatched_shapes():
    frames = torch.zeros(1, 2, 1, 8, 8, dtype=torch.uint8)
    with pytest.raises(TypeError, match="to_uint8"):
        frame_metrics(frames.float(), frames)
    with pytest.raises(ValueError, match="differ in shape"):
        frame_metrics(frames, frames[:, :1])
    with pytest.raises(ValueError, match="at least 7x7"):
        frame_metrics(frames[..., :6], frames[..., :6])


def test_quantisation_rounds_like_saved_images():
    x = torch.tensor([0.0, 0.4 / 255, 0.6 / 255, 1.0, 1.2, -0.1])
    assert to_uint8(x).tolist() == [0, 0, 1, 255, 255, 0]
    assert quantised(x.numpy()).tolist() == [0, 0, 1, 255, 255, 0]


def test_summary_and_framewise_table_derive_from_the_per_sequence_array():
    per_frame = np.arange(2 * 3 * 5, dtype=float).reshape(2, 3, 5)
    assert summarize(per_frame, METRICS)["mse"] == per_frame[..., 0].mean()
    table = framewise_table(per_frame, METRICS)
    assert table["frame"].tolist() == [1, 2, 3]
    assert table["ssim"].tolist() == per_frame[..., 3].mean(axis=0).tolist()
