"""Parity of Earthformer with its authors' code, in float64 (golden file: tools/golden/earthformer.py).

``earthformer.pt`` holds two tiny networks built by the authors' ``CuboidTransformerModel`` from their own
configuration files: the Moving MNIST / N-body MNIST network (one-stage conv stem, t+hw positions, depths 2, 2) and
the SEVIR network (two-stage stack stem, t+h+w positions, global vectors), 4 -> 3 frames, no dropout, weights drawn
from a seed. vpbench's model loads those weights through the package's mapping
(:mod:`vpbench.reference.mappings.earthformer`) and must give, on the same inputs, the same raw output, the same
MSE and the same gradients (as seeded sketches) to 1e-10, and its clamped predictions must equal the reference's
output clamped. fvcore's FLOPs at the tiny Moving MNIST network and the parameters at the authors' three
configurations equal theirs.
"""
from __future__ import annotations

from typing import Mapping

import pytest
import torch
import torch.nn.functional as F
from helpers.parity import assert_close, by_reference, grads_of, load_golden, load_mapped, seeded_weights, sketch

from vpbench.datasets import DataSpec
from vpbench.metrics.cost import count_flops, count_params
from vpbench.models import create
from vpbench.reference.mappings import mapping_for
from vpbench.reference.mappings.links import WeightMap

pytestmark = pytest.mark.usefixtures("one_thread")
NETWORKS = ("mmnist", "sevir")


def load_network(golden: Mapping, network: str) -> tuple[torch.nn.Module, dict, WeightMap, dict]:
    """vpbench's model with the network's reference weights mapped in, its golden entry, the mapping and the
    reference weights."""
    entry = golden["networks"][network]
    state = seeded_weights(entry["parameter_shapes"], golden["weight_seed"])
    model = create("earthformer", **entry["vpbench"]).double()
    weights = mapping_for("earthformer", "earthformer")(state, model.state_dict(), {})
    return load_mapped(model, weights, state), entry, weights, state


def sequences(golden: Mapping, entry: Mapping) -> tuple[torch.Tensor, torch.Tensor]:
    """The golden inputs [2, T_in, C, H, W] and targets [2, T_out, C, H, W], drawn again from its seed."""
    generator = torch.Generator().manual_seed(golden["data_seed"])
    (t, h, w, c), (t_out, *_) = entry["reference"]["input_shape"], entry["reference"]["target_shape"]
    return (torch.rand(2, t, c, h, w, generator=generator, dtype=torch.float64),
            torch.rand(2, t_out, c, h, w, generator=generator, dtype=torch.float64))


@pytest.mark.parametrize("network", NETWORKS)
def test_output_loss_and_gradients_equal_the_authors(network):
    golden = load_golden("earthformer")
    model, entry, weights, state = load_network(golden, network)
    inputs, targets = sequences(golden, entry)
    output = model.train().raw(inputs)
    assert_close(output.permute(0, 1, 3, 4, 2), entry["output"], "raw output")
    loss = F.mse_loss(output, targets)
    assert_close(loss, entry["loss"], "loss")
    loss.backward()
    theirs = by_reference(weights, state)(grads_of(model))
    ours = sketch({name: theirs[name] for name in entry["parameter_shapes"]}, golden["sketch_seed"])
    for name, expected in entry["grad_sketch"].items():
        assert_close(ours[name], expected, f"gradient sketch of {name}")
    assert sorted(n for n, g in theirs.items() if not g.any()) == entry["unreached"]


@pytest.mark.parametrize("network", NETWORKS)
def test_predictions_are_the_authors_output_clamped(network):
    golden = load_golden("earthformer")
    model, entry, _, _ = load_network(golden, network)
    inputs, _ = sequences(golden, entry)
    with torch.no_grad():
        pred = model.eval()(inputs, entry["output"].shape[1])
    assert 0 < ((entry["output"] > 0) & (entry["output"] < 1)).double().mean() < 1  # the clamp acts
    assert_close(pred, entry["output"].permute(0, 1, 4, 2, 3).clamp(0, 1), "predictions")


def test_fvcore_flops_equal_the_authors():
    golden = load_golden("earthformer")
    config = golden["networks"]["mmnist"]["vpbench"]
    spec = DataSpec("golden", config["input_frames"], config["output_frames"], config["in_channels"],
                    *config["img_size"])
    assert count_flops(create("earthformer", **config), spec) == golden["flops"]["total"]


@pytest.mark.parametrize("config", ["mmnist", "nbody", "sevir"])
def test_parameters_at_the_authors_configurations_equal_theirs(config):
    full = load_golden("earthformer")["full"][config]
    (t, h, w, c), t_out = full["input_shape"], full["target_shape"][0]
    with torch.device("meta"):
        model = create("earthformer", preset="paper", config=config, in_channels=c, input_frames=t,
                       output_frames=t_out, img_size=(h, w))
    assert count_params(model) == full["params"]
    assert full["params"] == {"mmnist": 6_702_109, "nbody": 6_702_109, "sevir": 8_659_677}[config]
