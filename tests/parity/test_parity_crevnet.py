"""Parity of CrevNet with OpenSTL v0.3.0's code, in float64 (golden file: tools/golden/crevnet.py).

``crevnet.pt``: OpenSTL's CrevNet_Model with two predictor layers and one autoencoder block per stage, on 2
sequences of 4 + 3 frames of 1 x 16 x 24, its weights drawn from a seed (``seeded_weights``) and its BatchNorms'
running statistics at random. vpbench's model loads them through the package's mapping
(:mod:`vpbench.reference.mappings.crevnet`, which ``bench import openstl`` uses: the three gate convolutions of
each memory fused into one, the autoencoder's Dropout(0) left out) and must give the same decoded window at every
teacher-forced training step, the same loss (the sum of their MSEs), the same gradients (compared as seeded
sketches: a dot product with a random tensor and the norm) and BatchNorm statistics, and the same predictions as
OpenSTL's ``_predict`` (clamped), to 1e-10. Its fvcore FLOPs are the reference's per step times its steps; its
parameters and the FLOPs of OpenSTL's trace at its Moving MNIST configuration are OpenSTL's published 5.0 M and
270.7 G.
"""
from __future__ import annotations

from typing import Mapping

import pytest
import torch
from helpers.parity import assert_close, by_reference, grads_of, load_golden, seeded_weights, sketch

from vpbench.datasets import DataSpec
from vpbench.losses import LossContext, get_loss
from vpbench.metrics.cost import count_flops, count_params
from vpbench.models import create, get_entry
from vpbench.reference.mappings import mapping_for
from vpbench.reference.mappings.links import WeightMap

pytestmark = pytest.mark.usefixtures("one_thread")


def reference_state(golden: Mapping) -> dict[str, torch.Tensor]:
    return {**seeded_weights(golden["parameter_shapes"], golden["weight_seed"]), **golden["buffers"]}


def load_model(golden: Mapping) -> tuple[torch.nn.Module, WeightMap, dict[str, torch.Tensor]]:
    """vpbench's CrevNet at the golden file's configuration, in float64, with the reference's weights."""
    config, state = golden["config"], reference_state(golden)
    model = create("crevnet", in_channels=config["shape"][0], **config["vpbench"]).double()
    weights = mapping_for("openstl", "crevnet")(state, model.state_dict(), config["vpbench"])
    model.load_state_dict(weights.to_vpbench(state), strict=True)
    return model, weights, state


def test_training_windows_loss_gradients_and_statistics_equal_the_references():
    golden = load_golden("crevnet")
    model, weights, state = load_model(golden)
    inputs, targets, expected = golden["inputs"], golden["targets"], golden["train"]
    decoded = model.train()(inputs, targets.shape[1], targets=targets)
    assert_close(decoded, expected["decoded"], "decoded windows")
    model, weights, state = load_model(golden)  # the forward above moved the BatchNorms' statistics
    loss, _ = get_loss("crevnet")(model.train(), inputs, targets, LossContext())
    assert_close(loss, expected["loss"], "loss")
    loss.backward()
    mapped = by_reference(weights, state)(grads_of(model))
    ours = sketch({name: mapped[name] for name in golden["parameter_shapes"]}, golden["sketch_seed"])
    for name, theirs in expected["grads"].items():
        assert_close(ours[name], theirs, f"gradient sketch of {name}")
    statistics = weights.to_reference(dict(model.state_dict()), state)
    for name, value in expected["running_stats"].items():
        assert_close(statistics[name], value, name)


def test_predictions_equal_the_references_clamped():
    golden = load_golden("crevnet")
    model = load_model(golden)[0].eval()
    with torch.no_grad():
        pred = model(golden["inputs"], golden["targets"].shape[1])
    assert 0 < ((golden["predictions"] > 0) & (golden["predictions"] < 1)).double().mean() < 1  # the clamp acts
    assert_close(pred, golden["predictions"].clamp(0, 1), "predictions")


def test_fvcore_flops_are_the_references_per_step_times_the_steps():
    """The reference traces its teacher-forced forward (T - 3 steps); vpbench's prediction takes T_out steps of the
    same encoder, predictor and decoder."""
    golden = load_golden("crevnet")
    config = golden["config"]
    (t_in, t_out), shape = config["frames"], config["shape"]
    model = create("crevnet", in_channels=shape[0], **config["vpbench"])
    flops = count_flops(model, DataSpec("golden", t_in, t_out, *shape))
    assert flops * (t_in + t_out - 3) == golden["flops"]["total"] * t_out


def test_parameters_and_openstls_flops_at_its_configuration_are_the_published():
    full = load_golden("crevnet")["full"]
    with torch.device("meta"):
        model = create("crevnet", preset="openstl", in_channels=1)
    published = get_entry("crevnet").references["openstl-mmnist-200"]
    assert count_params(model) == full["params"] == 4_997_444
    assert round(full["params"] / 1e5) == round(published["params"] / 1e5)
    assert round(full["flops"]["total"] / 1e8) == round(published["flops"] / 1e8)  # 270.7 G
