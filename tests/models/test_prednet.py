"""PredNet: contract, extrapolation, its training loss, recipes and options. Its fidelity to OpenSTL v0.3.0's code is
in tests/parity/test_parity_prednet.py."""
from __future__ import annotations

import pytest
import torch
from helpers.contract import assert_contract

from vpbench.errors import UserError
from vpbench.losses import LossContext, get_loss
from vpbench.models import create, expand, get_entry
from vpbench.models.prednet import hard_sigmoid

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(**overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return create("prednet", preset="tiny", in_channels=1, img_size=(16, 16), **overrides)


def test_registered_as_an_openstl_method_with_its_published_rows():
    entry = get_entry("prednet")
    assert (entry.label, entry.tags) == ("PredNet", {"openstl"})
    assert "prednet" in expand("all", protocol="openstl") and "prednet" not in expand("all")
    assert entry.references["openstl-mmnist-200"]["mse"] == 161.38
    assert entry.references["openstl-mmnist-2000"]["ssim"] == 0.9273


@pytest.mark.parametrize("preset", ["tiny", "openstl-tiny"])
@pytest.mark.parametrize("dataset", ["mmnist", "human36m"])  # Human3.6M's 100 x 100 frames are padded to 102
def test_predictions_have_the_contract_shape_and_range(preset, dataset):
    assert_contract("prednet", preset, dataset)


def test_any_horizon_extrapolates_from_the_models_own_predictions():
    model = tiny().eval()
    frames = torch.rand(2, 3, 1, 16, 16)
    with torch.no_grad():
        long = model(frames, 6)
        assert torch.equal(model(frames, 2), long[:, :2])  # step k never reads later frames
        # Given the true future, the first prediction is the same (made before any future frame is read), the
        # later ones differ: they read the true frames, not the model's predictions.
        read, _ = model.train()(frames, 6, targets=torch.rand(2, 6, 1, 16, 16))
    assert torch.allclose(read[:, 0], long[:, 0], atol=1e-6) and not torch.allclose(read[:, 1:], long[:, 1:])


def test_hard_sigmoid_is_keras_not_torch():
    x = torch.tensor([-3.0, -2.5, 0.0, 1.0, 2.5, 3.0])
    assert torch.allclose(hard_sigmoid(x), torch.tensor([0.0, 0.0, 0.5, 0.7, 1.0, 1.0]))


def test_training_loss_is_the_mean_error_of_every_step_but_the_first_and_falls_with_training():
    model = tiny().train()
    frames, targets = torch.rand(2, 3, 1, 16, 16), torch.rand(2, 3, 1, 16, 16)
    _, errors = model(frames, 3, targets=targets)
    assert errors.shape == (2, 6, 2)  # two layers
    loss, pred = get_loss("prednet")(model, frames, targets, LossContext())
    assert torch.allclose(loss, errors[:, 1:, 0].mean())  # OpenSTL's L_0: the frame's layer only
    assert pred.shape == targets.shape and not pred.requires_grad
    every = tiny(upper_layer_weight=0.1).train()
    expected = (errors[:, 1:, 0] + 0.1 * errors[:, 1:, 1]).mean()
    assert torch.allclose(get_loss("prednet")(every, frames, targets)[0], expected)
    # A moving wave (dense: on sparse frames predicting black is already near the best L1): Adam lowers the loss.
    columns = torch.arange(16.0)
    x = torch.stack([0.5 + 0.4 * torch.sin(columns / 2 + t) for t in range(6)]).expand(2, 1, 16, 6, 16)
    x = x.permute(0, 3, 1, 2, 4).contiguous()  # [2, 6, 1, 16, 16], rows alike
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        optimizer.zero_grad()
        loss, _ = get_loss("prednet")(model, x[:, :3], x[:, 3:])
        loss.backward()
        optimizer.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.7 * first


def test_evaluation_loss_is_the_mse_of_the_extrapolated_frames():
    model = tiny().eval()
    frames, targets = torch.rand(2, 3, 1, 16, 16), torch.rand(2, 2, 1, 16, 16)
    with torch.no_grad():
        loss, pred = get_loss("prednet")(model, frames, targets)
        assert torch.equal(pred, model(frames, 2))
    assert torch.allclose(loss, (pred - targets).square().mean())


def test_extrapolation_loss_is_the_authors_fine_tuning_mae_of_every_prediction_but_the_first():
    model = tiny().train()
    frames, targets = torch.rand(2, 3, 1, 16, 16), torch.rand(2, 2, 1, 16, 16)
    every = model(frames, 2, every_step=True)
    assert every.shape == (2, 4, 1, 16, 16)  # frames 1 .. 4 of 0 .. 4
    with torch.no_grad():
        assert torch.allclose(every[:, 0], model(frames[:, :1], 1)[:, 0])  # next-frame predictions of the inputs,
        assert torch.allclose(every[:, 2:], model(frames, 2))  # then the extrapolated targets, not teacher-forced
    loss, pred = get_loss("prednet_extrap")(model, frames, targets, LossContext())
    truth = torch.cat([frames[:, 1:], targets], dim=1)
    assert torch.allclose(loss, 0.5 * (every - truth).abs().mean())
    assert torch.equal(pred, every[:, 2:].detach()) and not pred.requires_grad
    with torch.no_grad():  # evaluation: the MSE of the extrapolated frames, as the prednet loss
        assert torch.allclose(get_loss("prednet_extrap")(model.eval(), frames, targets)[0],
                              get_loss("prednet")(model, frames, targets)[0])


def test_recipes_are_openstls_under_both_protocols():
    entry = get_entry("prednet")
    full = entry.recipe_for("openstl")
    assert (full["loss"], full["optimizer"], full["scheduler"], full["lr"]) == ("prednet", "adam", "onecycle", 1e-4)
    assert entry.recipe_for("paper") == {**full, "batch_size": 16}
    assert entry.recipe_for("tiny")["loss"] == entry.recipe_for("openstl-tiny")["loss"] == "prednet"
    # the short runs: the authors' extrapolation fine-tuning (the next-frame loss leaves a black extrapolation)
    assert entry.recipe_for("quick")["loss"] == entry.recipe_for("openstl-quick")["loss"] == "prednet_extrap"
    assert entry.kwargs_for("openstl") == {"widths": [32, 64, 128, 256], "kernel_size": 3, "upper_layer_weight": 0.0}


@pytest.mark.parametrize("options, message", [({"kernel_size": 4}, "odd"), ({"widths": [0]}, "positive"),
                                              ({"upper_layer_weight": -1}, "L_0")])
def test_bad_options_are_one_line_errors(options, message):
    with pytest.raises(UserError, match=message):
        tiny(**options)
    with pytest.raises(UserError, match="horizon"):
        tiny()(torch.rand(1, 2, 1, 16, 16), 0)
