"""The generic encoder-forecaster with the ConvGRU cell, and the persistence baseline."""
from __future__ import annotations

import pytest
import torch

from vpbench import models
from vpbench.errors import UserError
from vpbench.models.layers.encoder_forecaster import patchify, unpatchify


def small_convgru(**kw) -> torch.nn.Module:
    return models.create("convgru", hidden=6, layers=2, kernel_size=3, patch_size=2, img_size=(16, 16), **kw)


def test_patchify_is_invertible_and_groups_neighbouring_pixels():
    x = torch.arange(2 * 3 * 2 * 8 * 8, dtype=torch.float).reshape(2, 3, 2, 8, 8)
    p = patchify(x, 4)
    assert p.shape == (2, 3, 32, 2, 2)
    assert torch.equal(unpatchify(p, 4), x)
    assert torch.equal(p[0, 0, :16, 0, 0].reshape(4, 4), x[0, 0, 0, :4, :4])


def test_forward_honours_the_contract():
    model = small_convgru()
    frames = torch.rand(2, 5, 1, 16, 16)
    for horizon in (1, 3, 7):
        out = model(frames, horizon)
        assert out.shape == (2, horizon, 1, 16, 16)
        assert out.min() >= 0 and out.max() <= 1


def test_layer_major_encoder_matches_the_step_by_step_reference():
    torch.manual_seed(0)
    model = small_convgru(dropout=0.0).eval()
    frames = torch.rand(2, 6, 1, 16, 16)
    assert model.layer_major
    fast = model(frames, 4)
    model.layer_major = False  # the plain time-major loop, one input convolution per step
    assert torch.allclose(fast, model(frames, 4), atol=1e-6)


def test_gate_dropout_path_equals_the_fused_conv_without_dropout():
    torch.manual_seed(0)
    model = small_convgru(dropout=0.0)
    cell = model.encoder[0]
    x = torch.rand(3, cell.in_channels, 8, 8)
    cell.train()
    cell.dropout = 1e-12  # takes the split path, drops (almost surely) nothing
    split = cell.input_conv(x)
    cell.eval()
    assert torch.allclose(split, cell.input_conv(x), atol=1e-6)


def test_the_forecaster_feeds_back_its_own_predictions():
    torch.manual_seed(0)
    model = small_convgru(dropout=0.0).eval()
    frames = torch.rand(1, 4, 1, 16, 16)
    long = model(frames, 5)
    assert torch.allclose(long[:, :3], model(frames, 3), atol=1e-6)  # a prefix does not see the future


def test_a_patch_that_does_not_tile_the_frame_is_a_clear_error():
    with pytest.raises(UserError, match="patch_size 3 does not divide the 64x64 frames"):
        models.create("convgru", patch_size=3)


def test_paper_config_of_convgru_has_the_expected_size():
    # 4 layers of M=128 with kernel 5: x-convs (3M), h-convs (2M + M), biases; 3x3 output conv over 4M.
    model = models.create("convgru")
    m, k = 128, 25
    layer0 = 1 * 3 * m * k + 3 * m + m * 3 * m * k + 3 * m
    deeper = m * 3 * m * k + 3 * m + m * 3 * m * k + 3 * m
    output = 4 * m * 9 + 1
    assert sum(p.numel() for p in model.parameters()) == 2 * (layer0 + 3 * deeper) + output


def test_persistence_repeats_the_last_frame():
    frames = torch.rand(2, 4, 3, 8, 8)
    out = models.create("persistence")(frames, 3)
    assert out.shape == (2, 3, 3, 8, 8)
    assert torch.equal(out[:, 2], frames[:, -1])


def test_the_quick_patch_is_the_largest_preferred_one_that_tiles_the_frames():
    """``patch_size: [8, 4]`` at the quick preset: 8x8 on 64x64 Moving MNIST, 4x4 on 100x100 Human3.6M; the run's
    configuration records the number, and an explicit --set wins."""
    from vpbench import config as cfg

    assert cfg.resolve("quick", "stlstm", "mmnist")["model"]["patch_size"] == 8
    assert cfg.resolve("quick", "srvp", "human36m")["model"]["patch_size"] == 4
    assert cfg.resolve("quick", "convgru", "mmnist")["model"]["patch_size"] == 4  # ConvGRU's own quick patch
    sets = {"model": {"patch_size": 2}}
    assert cfg.resolve("quick", "stlstm", "mmnist", sets=sets)["model"]["patch_size"] == 2
