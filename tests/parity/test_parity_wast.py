"""Parity of WaST with OpenSTL's code (Lightning branch, timm 0.9.12), in float64 (golden file:
tools/golden/wast.py).

``wast.pt``: OpenSTL's WaST_level1 at encoder_dim 2, block_list [1, 2, 1], mlp_ratio 1.5, drop_path_rate 0.75, on 2
sequences of 2 frames of 2 x 12 x 8, BatchNorms and layer scales at random, its output inside (0, 1) (where
vpbench's clamp is the identity). vpbench's model loads its weights and BatchNorm statistics through the package's
mapping (:mod:`vpbench.reference.mappings.wast`, which ``bench import openstl`` uses) and must give the same
evaluation-mode output, the same training-mode output (drop-path masks drawn from the same seed in the same
order), the same MSE, high focal frequency loss and their sum (the ``wast`` loss) and gradients, and the same
BatchNorm statistics after it, to 1e-10. Every block's ``layer_scale_2``, which OpenSTL's forward never reads, is
not in vpbench: its reference gradient is zero. The fvcore FLOPs equal the reference's at the golden configuration,
and the parameters at OpenSTL's TaxiBJ configuration equal the reference's less the unused layer scales.
"""
from __future__ import annotations

from typing import Mapping

import pytest
import torch
import torch.nn.functional as F
from helpers.parity import assert_close, assert_grads, by_reference, grads_of, load_golden

from vpbench.datasets import DataSpec
from vpbench.losses import LossContext, get_loss
from vpbench.metrics.cost import count_flops, count_params
from vpbench.models import create
from vpbench.models.wast import high_focal_frequency_loss
from vpbench.reference.mappings import mapping_for
from vpbench.reference.mappings.links import WeightMap

pytestmark = pytest.mark.usefixtures("one_thread")


def build(golden: Mapping) -> torch.nn.Module:
    config = golden["config"]
    return create("wast", in_channels=config["shape"][0], input_frames=config["frames"][0], **config["vpbench"])


def load_model(golden: Mapping) -> tuple[torch.nn.Module, WeightMap]:
    """vpbench's WaST at the golden file's configuration, in float64, with the reference's weights and statistics."""
    model = build(golden).double()
    weights = mapping_for("openstl", "wast")(golden["state_dict"], model.state_dict(), golden["config"]["vpbench"])
    model.load_state_dict(weights.to_vpbench(golden["state_dict"]), strict=True)
    return model, weights


def test_evaluation_output_equals_the_references():
    golden = load_golden("wast")
    model = load_model(golden)[0].eval()
    with torch.no_grad():
        out = model(golden["inputs"], golden["targets"].shape[1])
    assert_close(out, golden["eval_output"], "evaluation-mode output")


def test_training_output_losses_gradients_and_statistics_equal_the_references():
    golden = load_golden("wast")
    model, weights = load_model(golden)
    inputs, targets = golden["inputs"], golden["targets"]
    train = {"frequency_weight": golden["config"]["loss_weight"]}
    torch.manual_seed(golden["config"]["seed"])  # the reference's drop-path masks, drawn in the same order
    loss, pred = get_loss("wast")(model.train(), inputs, targets, LossContext(0, train))
    assert_close(pred, golden["output"], "training-mode output")
    assert_close(F.mse_loss(pred, targets), golden["mse"], "MSE")
    weighted = golden["config"]["loss_weight"] * high_focal_frequency_loss(pred, targets)
    assert_close(weighted, golden["hffl"], "high focal frequency loss")
    assert_close(loss, golden["loss"], "loss")
    loss.backward()
    for name in weights.unused:
        assert not golden["grads"][name].any(), f"the reference's {name} is unused, yet has a gradient"
    assert_grads(grads_of(model), golden["grads"], by_reference(weights, golden["state_dict"]))
    ours = weights.to_reference(dict(model.state_dict()), golden["state_dict"])
    for name, expected in golden["running_stats"].items():
        assert_close(ours[name], expected, name)


def test_fvcore_flops_equal_the_references_at_the_golden_configuration():
    golden = load_golden("wast")
    config = golden["config"]
    flops = count_flops(build(golden), DataSpec("golden", *config["frames"], *config["shape"]))
    assert flops == golden["flops"]["total"]


def test_parameters_at_openstls_taxibj_configuration_equal_the_references_less_the_unused():
    full = load_golden("wast")["full"]
    t_in, channels = full["config"]["in_shape"][:2]
    with torch.device("meta"):
        model = create("wast", preset="openstl", in_channels=channels, input_frames=t_in)
    assert count_params(model) == full["params"] - full["params_unused"] == 5_131_222
