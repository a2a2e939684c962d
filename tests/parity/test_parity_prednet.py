"""Parity of PredNet with OpenSTL v0.3.0's code, in float64 (golden file: tools/golden/prednet.py).

``prednet.pt``: OpenSTL's PredNet_Model at three layers (2, 3, 4 channels), 2 sequences of 3 + 3 frames of
2 x 8 x 12, random biases. vpbench's model loads its weights through the package's mapping
(:mod:`vpbench.reference.mappings.prednet`, which ``bench import openstl`` uses: four gate convolutions fused into
one) and must give the same per-step predictions and errors of the training forward, the same loss of OpenSTL's
``TrainLossCalculator`` (weight modes ``L_0`` and ``L_all``) and its gradients, and the same extrapolated
predictions and their gradients, to 1e-10. Its fvcore FLOPs are the reference's per step times the steps it runs
(less what the last step leaves unread), and its parameters at OpenSTL's Moving MNIST configuration are the
reference's (12.5M, as OpenSTL publishes).
"""
from __future__ import annotations

from typing import Mapping

import pytest
import torch
from helpers.parity import assert_close, assert_grads, by_reference, grads_of, load_golden

from vpbench.datasets import DataSpec
from vpbench.losses import LossContext, get_loss
from vpbench.metrics.cost import count_flops, count_params
from vpbench.models import create, get_entry
from vpbench.reference.mappings import mapping_for
from vpbench.reference.mappings.links import WeightMap

pytestmark = pytest.mark.usefixtures("one_thread")


def load_model(golden: Mapping, **options) -> tuple[torch.nn.Module, WeightMap]:
    """vpbench's PredNet at the golden file's configuration, in float64, holding the reference's weights."""
    config = golden["config"]
    model = create("prednet", in_channels=config["shape"][0], img_size=config["shape"][1:], **config["vpbench"],
                   **options).double()
    weights = mapping_for("openstl", "prednet")(golden["state_dict"], model.state_dict(), config["vpbench"])
    model.load_state_dict(weights.to_vpbench(golden["state_dict"]), strict=True)
    return model, weights


def test_training_forward_errors_loss_and_gradients_equal_the_references():
    golden = load_golden("prednet")
    model, weights = load_model(golden)
    inputs, targets, expected = golden["inputs"], golden["targets"], golden["train"]
    pred, errors = model.train()(inputs, targets.shape[1], targets=targets)
    assert_close(errors, expected["errors"], "per-step errors of every layer")
    assert_close(pred, expected["predictions"][:, inputs.shape[1]:], "next-frame predictions of the targets")
    loss, returned = get_loss("prednet")(model, inputs, targets, LossContext())
    assert_close(returned, expected["predictions"][:, inputs.shape[1]:], "the loss's predictions")
    assert_close(loss, expected["loss"], "loss (L_0)")
    loss.backward()
    assert_grads(grads_of(model), expected["grads"], by_reference(weights, golden["state_dict"]))
    every_layer = load_model(golden, upper_layer_weight=0.1)[0].train()
    assert_close(get_loss("prednet")(every_layer, inputs, targets)[0], expected["loss_all"], "loss (L_all)")


def test_extrapolated_predictions_and_their_gradients_equal_the_references():
    golden = load_golden("prednet")
    model, weights = load_model(golden)
    expected = golden["extrapolate"]
    pred = model.eval()(golden["inputs"], golden["targets"].shape[1])
    assert_close(pred, expected["predictions"], "extrapolated predictions")
    (pred * expected["loss_weights"]).mean().backward()
    assert_grads(grads_of(model), expected["grads"], by_reference(weights, golden["state_dict"]))
    loss, _ = get_loss("prednet")(model, golden["inputs"], golden["targets"])  # evaluation: MSE of the extrapolation
    assert_close(loss, (expected["predictions"] - golden["targets"]).square().mean(), "evaluation loss")


def test_fvcore_flops_are_the_references_per_step_times_the_steps_less_the_last_steps_unread_layers():
    """vpbench runs T_in + T_out steps; of the last, only the frame's prediction Ahat_0 is read: the trace drops
    the upper layers' predictions (Ahat_l, l > 0) and targets (A_l) of that step."""
    golden = load_golden("prednet")
    config, per_step = golden["config"], golden["flops"]
    model = create("prednet", in_channels=config["shape"][0], img_size=config["shape"][1:], **config["vpbench"])
    frames = config["frames"]
    unread = per_step["by_module"]["A"] + per_step["by_module"]["Ahat"] - per_step["by_module"]["Ahat.0"]
    flops = count_flops(model, DataSpec("golden", *frames, *config["shape"]))
    assert flops == sum(frames) * per_step["total"] - unread


def test_parameters_at_openstls_configuration_equal_the_references_and_the_published_count():
    full = load_golden("prednet")["full"]
    with torch.device("meta"):
        model = create("prednet", preset="openstl", in_channels=1, img_size=(64, 64))
    assert count_params(model) == full["params"] == 12_510_842
    assert round(full["params"] / 1e5) == round(get_entry("prednet").references["openstl-mmnist-200"]["params"] / 1e5)
