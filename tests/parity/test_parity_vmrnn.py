"""Parity of VMRNN-D with its authors' code (golden file: tools/golden/vmrnn.py), in float32.

``vmrnn.pt``: the authors' VMRNN_D_Model (embed 4, depths down (2, 1), up (1, 2), d_state 3, 16 x 16, patch 2) with
its SS2D scanning by mamba-ssm's pure-PyTorch ``selective_scan_ref`` (its fused CUDA kernel cannot run here),
layer norms at random: eval-mode predictions; training-mode predictions (stochastic depth 0.1 drawn from the same
seed), the MSE over them and its gradients. vpbench's model loads the weights through the package's mapping
(:mod:`vpbench.reference.mappings.vmrnn`) and must agree to float32 precision (the reference's SS2D computes in
float32 whatever the model's dtype). The up-sampling patch embedding and the fusing layers of every block but a
cell's first, which the authors' forward never uses, are not in vpbench: their reference gradients are zero. The
parameters at the authors' Moving MNIST configuration equal theirs less those.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers.parity import assert_close, assert_grads, by_reference, grads_of, load_golden, load_mapped

from vpbench.metrics.cost import count_params
from vpbench.models import create
from vpbench.reference.mappings import mapping_for

pytestmark = pytest.mark.usefixtures("one_thread")
FLOAT32 = 2e-5


def test_outputs_in_eval_and_training_loss_and_gradients_equal_the_authors():
    golden = load_golden("vmrnn")
    config = golden["config"]
    model = create("vmrnn", in_channels=config["shape"][0], img_size=config["shape"][1:], **config["vpbench"])
    weights = mapping_for("vmrnn", "vmrnn")(golden["state_dict"], model.state_dict(), {})
    load_mapped(model, weights, golden["state_dict"])
    inputs, targets = golden["inputs"], golden["targets"]
    with torch.no_grad():
        out = model.eval()(inputs, targets.shape[1], all_frames=True)
    assert_close(out, golden["eval_output"], "eval outputs", FLOAT32)
    torch.manual_seed(config["seed"])  # the reference's drop-path masks, drawn in the same order
    out = model.train()(inputs, targets.shape[1], targets=targets, all_frames=True)
    assert_close(out, golden["output"], "training outputs", FLOAT32)
    loss = F.mse_loss(out, torch.cat([inputs, targets], dim=1)[:, 1:])
    assert_close(loss, golden["loss"], "loss", FLOAT32)
    loss.backward()
    for name in weights.unused:
        assert not golden["grads"][name].any(), f"the reference's {name} is unused, yet has a gradient"
    assert_grads(grads_of(model), golden["grads"], by_reference(weights, golden["state_dict"]), FLOAT32)


def test_parameters_at_the_authors_moving_mnist_configuration_equal_theirs_less_the_unused():
    full = load_golden("vmrnn")["full"]
    with torch.device("meta"):
        model = create("vmrnn", preset="paper", in_channels=1, img_size=(64, 64))
    assert count_params(model) == full["params"] - full["params_unused"] == 8_852_865
