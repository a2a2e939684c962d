"""CrevNet: contract, its invertible autoencoder, the prediction's windows, its training loss, recipes and options.
Its fidelity to OpenSTL v0.3.0's code is in tests/parity/test_parity_crevnet.py."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vpbench import config as cfg
from vpbench.errors import UserError
from vpbench.losses import LossContext, get_loss
from vpbench.models import build_model, create, expand, get_entry
from vpbench.models.layers.reversible_blocks import ReversibleAutoencoder, depth_to_space, space_to_depth
from vpbench.report.paper import tables_for
from vpbench.report.tables import published

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return create("crevnet", preset="tiny", **{"in_channels": 1, **overrides})


def test_registered_as_an_openstl_method_with_its_published_row():
    entry = get_entry("crevnet")
    assert (entry.label, entry.tags) == ("CrevNet", {"openstl"})
    assert "crevnet" in expand("all", protocol="openstl")
    assert entry.references["openstl-mmnist-200"]["mse"] == 30.15


def test_its_published_row_has_no_psnr_and_the_report_shows_it_empty():
    table = next(t for t in tables_for("mmnist", (10, 10), "main", "openstl") if t.id == "openstl-mmnist-200")
    assert table.value("CrevNet", "mse") == 30.15 and table.value("CrevNet", "psnr") is None
    assert published(table, "CrevNet", "psnr", "psnr", "openstl", (1, 64, 64)) is None


def test_space_to_depth_orders_channels_by_offset_then_channel():
    x = torch.arange(2 * 1 * 4 * 4.0).view(1, 2, 1, 4, 4)
    y = space_to_depth(x, 2)
    assert y.shape == (1, 8, 1, 2, 2)
    assert y[0, :, 0, 0, 0].tolist() == [0, 16, 1, 17, 4, 20, 5, 21]  # (row, column) offsets (0,0), (0,1), (1,0), (1,1)
    assert torch.equal(depth_to_space(y, 2), x)


def test_the_autoencoder_is_invertible_in_evaluation():
    torch.manual_seed(0)
    autoencoder = ReversibleAutoencoder(2, blocks=(1, 2, 1)).double().eval()
    x = torch.rand(2, 2, 3, 16, 24, dtype=torch.float64)
    pair = autoencoder.encode(x)
    assert pair[0].shape == pair[1].shape == (2, 64, 3, 2, 3)  # 32 C channels per half at 1/8 of the size
    assert torch.allclose(autoencoder.decode(pair), x, atol=1e-12)


@pytest.mark.parametrize("preset", ["tiny", "openstl-tiny"])
@pytest.mark.parametrize("dataset, shape", [("mmnist", (1, 64, 64)), ("human36m", (3, 100, 100))])  # 100 -> 104
def test_predictions_have_the_contract_shape_and_range(preset, dataset, shape):
    torch.manual_seed(0)
    config = cfg.resolve(preset, "crevnet", dataset)
    model = build_model(config).eval()
    t_in, t_out = config["dataset"]["input_frames"], config["dataset"]["output_frames"]
    if preset == "openstl-tiny" and dataset == "human36m":
        shape = (3, 256, 256)  # OpenSTL's resolution
    with torch.no_grad():
        out = model(torch.rand(1, t_in, *shape), t_out)
    assert out.shape == (1, t_out, *shape)
    assert out.min() >= 0 and out.max() <= 1


def test_prediction_reads_the_last_three_frames_and_any_horizon_extends_it():
    model = tiny().eval()
    frames = torch.rand(2, 5, 1, 16, 16)
    with torch.no_grad():
        long = model(frames, 5)
        assert torch.equal(model(frames, 2), long[:, :2])
        changed = frames.clone()
        changed[:, :2] = torch.rand(2, 2, 1, 16, 16)  # frames before the last three are not read
        assert torch.equal(model(changed, 5), long)
        changed[:, 2] += 0.5
        assert not torch.allclose(model(changed, 1), long[:, :1])


def test_training_loss_sums_the_mse_of_every_next_window():
    model = tiny().train()
    frames, targets = torch.rand(2, 4, 1, 16, 16), torch.rand(2, 3, 1, 16, 16)
    torch.manual_seed(1)
    decoded = model(frames, 3, targets=targets)
    assert decoded.shape == (2, 4, 1, 3, 16, 16)  # windows 1..4 of the 7 frames
    sequence = torch.cat([frames, targets], dim=1)
    expected = sum(F.mse_loss(decoded[:, s], sequence[:, s + 1:s + 4].transpose(1, 2)) for s in range(4))
    model = tiny().train()  # the same weights and BatchNorm statistics
    loss, pred = get_loss("crevnet")(model, frames, targets, LossContext())
    assert torch.allclose(loss, expected)
    assert torch.allclose(pred, decoded[:, -3:, :, -1].clamp(0, 1).detach())


def test_recipes_are_openstls_under_both_protocols():
    entry = get_entry("crevnet")
    full = entry.recipe_for("openstl")
    assert (full["loss"], full["optimizer"], full["scheduler"], full["lr"]) == ("crevnet", "adam", "onecycle", 5e-3)
    assert entry.recipe_for("paper") == {**full, "batch_size": 16}
    assert entry.kwargs_for("openstl") == {"layers": 8, "blocks": [4, 5, 3]}
    # the quick scale trains 4 epochs (after the preset's 3 its predictions faded to near-uniform frames)
    assert entry.recipe_for("quick")["epochs"] == entry.recipe_for("openstl-quick")["epochs"] == 4
    assert "epochs" not in entry.recipe_for("openstl-tiny")


def test_bad_options_and_inputs_are_one_line_errors():
    with pytest.raises(UserError, match="three positive"):
        tiny(blocks=[1, 1])
    with pytest.raises(UserError, match="at least 3 input frames"):
        tiny()(torch.rand(1, 2, 1, 16, 16), 1)
    with pytest.raises(UserError, match="horizon"):
        tiny()(torch.rand(1, 3, 1, 16, 16), 0)
