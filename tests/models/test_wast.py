"""WaST: its Haar transforms, frequency mask, loss, drop-path schedule, recipes and options. Its contract and
horizons are tested with the other RNN-free models (tests/models/test_simvp_mimovp.py), its fidelity to OpenSTL's
code in tests/parity/test_parity_wast.py."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vpbench.errors import UserError
from vpbench.losses import LossContext, get_loss
from vpbench.models import create, expand, get_entry
from vpbench.models.layers.wavelet_blocks import haar_transform, inverse_haar_transform, make_divisible
from vpbench.models.wast import high_focal_frequency_loss, high_frequency_mask, scheduled_drop_path

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return create("wast", preset="tiny", **{"in_channels": 1, "input_frames": 4, **overrides})


def test_registered_as_an_openstl_block_method_without_published_values():
    entry = get_entry("wast")
    assert (entry.label, entry.tags, entry.references) == ("WaST", {"openstl", "rnn-free"}, {})
    assert "wast" in expand("all", protocol="openstl")


@pytest.mark.parametrize("dims, shape", [(2, (2, 3, 6, 8)), (3, (2, 3, 4, 6, 8))])
def test_haar_transform_is_orthonormal_and_inverted(dims, shape):
    x = torch.rand(shape, dtype=torch.float64)
    bands = haar_transform(x, dims)
    assert len(bands) == 2**dims and bands[0].shape == (*shape[:2], *(s // 2 for s in shape[2:]))
    assert torch.allclose(sum(b.square().sum() for b in bands), x.square().sum())  # energy kept
    assert torch.allclose(inverse_haar_transform(bands, dims), x)
    # The low band is the mean of each 2^d block times 2^(d/2); band 1 is high along the last axis only.
    pooled = F.avg_pool3d(x, 2) if dims == 3 else F.avg_pool2d(x, 2)
    assert torch.allclose(bands[0], pooled * 2 ** (dims / 2))
    last = x.unflatten(-1, (-1, 2))
    difference = (last[..., 0] - last[..., 1]) / 2**0.5
    low_rest = (F.avg_pool3d(difference, (2, 2, 1)) * 2 if dims == 3 else F.avg_pool2d(difference, (2, 1)) * 2**0.5)
    assert torch.allclose(bands[1], low_rest)


def test_odd_sides_are_padded_with_a_zero():
    x = torch.rand(1, 1, 5, 4, dtype=torch.float64)
    bands = haar_transform(x, 2)
    assert bands[0].shape == (1, 1, 3, 2)
    assert torch.allclose(inverse_haar_transform(bands, 2), F.pad(x, (0, 0, 0, 1)))


def test_high_frequency_mask_zeroes_the_corners_within_a_tenth_of_the_side():
    mask = high_frequency_mask(12, 20)  # radius 2: the corners' points within distance 2
    assert mask.sum() == 12 * 20 - 4 * 6  # six points at distance <= 2 in each quarter disc
    assert mask[0, 0] == mask[0, 2] == mask[1, 1] == mask[11, 19] == 0 and mask[1, 2] == mask[6, 10] == 1


def test_the_frequency_loss_is_zero_for_equal_frames_and_ignores_the_lowest_frequency():
    target = torch.rand(2, 2, 1, 16, 16, dtype=torch.float64)
    assert high_focal_frequency_loss(target, target) == 0
    assert high_focal_frequency_loss(target + 0.3, target) < 1e-30  # a uniform shift: the masked DC term only
    assert high_focal_frequency_loss(target.flip(-1), target) > 0


def test_the_loss_is_mse_plus_the_weighted_frequency_term():
    model = tiny().eval()
    frames, targets = torch.rand(2, 4, 1, 16, 16), torch.rand(2, 4, 1, 16, 16)
    with torch.no_grad():
        plain, pred = get_loss("wast")(model, frames, targets)
        weighted, _ = get_loss("wast")(model, frames, targets, LossContext(0, {"frequency_weight": 0.5}))
    assert torch.allclose(plain, F.mse_loss(pred, targets))
    assert torch.allclose(weighted, plain + 0.5 * high_focal_frequency_loss(pred, targets))


def test_drop_path_rises_over_the_blocks_and_follows_the_late_schedule():
    model = tiny(blocks=[1, 2, 1], drop_path=0.3)
    rates = [b.drop_path.p for stack in (model.translator, model.bottleneck, model.fuse_translator)
             for b in stack.blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3])
    train = {"drop_path_late": 0.25, "drop_path_start_step": 5}
    assert [scheduled_drop_path(s, train, 0.1) for s in (0, 1, 5, 6, 100)] == [0.1, 0.0, 0.0, 0.25, 0.25]
    get_loss("wast")(model.train(), torch.rand(1, 4, 1, 8, 8), torch.rand(1, 4, 1, 8, 8), LossContext(9, train))
    assert model.fuse_translator.blocks[0].drop_path.p == pytest.approx(0.25)


def test_timms_channel_rounding():
    assert [make_divisible(v) for v in (12, 20, 24, 33, 320)] == [16, 24, 24, 32, 320]


def test_recipe_is_openstls_wast_configuration_under_both_protocols():
    entry = get_entry("wast")
    full = entry.recipe_for("openstl")
    assert (full["loss"], full["optimizer"], full["scheduler"], full["lr"], full["batch_size"]) == \
        ("wast", "adam", "cosine", 1e-3, 16)
    assert (full["frequency_weight"], full["drop_path_late"], full["drop_path_start_step"]) == (1e-3, 0.25, 50_000)
    assert entry.recipe_for("paper") == full
    assert entry.kwargs_for("openstl") == {"hidden": 20, "blocks": [2, 8, 2], "mlp_ratio": 4.0, "drop_path": 0.1}


@pytest.mark.parametrize("options, message", [({"input_frames": 3}, "even number"), ({"blocks": [1, 1]}, "three"),
                                              ({"drop_path": 1.0}, "drop_path")])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(UserError, match=message):
        tiny(**options)
    with pytest.raises(UserError, match="reads 4 frames"):
        tiny()(torch.rand(1, 2, 1, 8, 8), 2)
