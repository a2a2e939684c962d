"""Parity of IAM4VP with its authors' code, in float64 (golden file: tools/golden/iam4vp.py).

``iam4vp.pt``: the authors' IAM4VP at Moving MNIST's shapes (which their code fixes: 10 frames of 1 x 64 x 64) with
hid_S 2, N_S 4, N_T 2 and its 64-channel step embedding, merge and attention narrowed to 8 and 4 channels; norms,
layer scales and mask tokens at random, its output inside (0, 1) (where vpbench's clamp is the identity). vpbench's
model loads its weights through the package's mapping (:mod:`vpbench.reference.mappings.iam4vp`) and must give, on
the same 2 sequences, the same 10 frames as the authors' training loop (compared by sketch), the same per-frame
MSEs and their mean (vpbench's loss), and the mean of the authors' per-frame gradients, to 1e-10. The translator
block the authors build but never run is not in vpbench: its reference gradient is zero. The fvcore FLOPs of the
10-step rollout equal the reference's less its 9 repeated encodings of the input frames, and the parameters at the authors' configuration equal theirs less that
block.
"""
from __future__ import annotations

from typing import Mapping

import pytest
import torch
import torch.nn.functional as F
from helpers.parity import (
    assert_close,
    assert_grads,
    by_reference,
    grads_of,
    load_golden,
    load_mapped,
    seeded_sequences,
    sketch,
)

from vpbench.datasets import DataSpec
from vpbench.losses import get_loss
from vpbench.metrics.cost import count_flops, count_params
from vpbench.models import create
from vpbench.reference.mappings import mapping_for

pytestmark = pytest.mark.usefixtures("one_thread")


def build(golden: Mapping) -> torch.nn.Module:
    return create("iam4vp", **golden["config"]["vpbench"])


def test_output_losses_and_gradients_equal_the_authors():
    golden = load_golden("iam4vp")
    model = build(golden).double()
    weights = mapping_for("iam4vp", "iam4vp")(golden["state_dict"], model.state_dict(), {})
    load_mapped(model, weights, golden["state_dict"])
    inputs, targets = seeded_sequences(golden)
    loss, pred = get_loss("mse")(model.train(), inputs, targets)
    frames = {f"frame {s}": pred[:, s] for s in range(pred.shape[1])}
    for name, value in sketch(frames, golden["config"]["seed"]).items():
        assert_close(value, golden["output_sketch"][name], f"{name} (sketch)")
    step_losses = torch.stack([F.mse_loss(pred[:, s], targets[:, s]) for s in range(pred.shape[1])])
    assert_close(step_losses, golden["step_losses"], "per-frame MSE")
    assert_close(loss, golden["loss"], "loss")
    loss.backward()
    for name in weights.unused:
        assert not golden["grads"][name].any(), f"the reference's {name} is unused, yet has a gradient"
    assert_grads(grads_of(model), golden["grads"], by_reference(weights, golden["state_dict"]))


def test_fvcore_flops_of_the_rollout_equal_the_authors_less_their_repeated_encodings():
    """The authors' forward encodes the T input frames at every step; vpbench's once per T steps."""
    golden = load_golden("iam4vp")
    t, c, h, w = golden["config"]["reference"]["in_shape"]
    flops = golden["flops"]
    assert count_flops(build(golden), DataSpec("golden", t, t, c, h, w)) == flops["total"] - (t - 1) * flops["encoder"]


def test_parameters_at_the_authors_configuration_equal_theirs_less_the_unused_block():
    full = load_golden("iam4vp")["full"]
    t, c, h, w = full["config"]["in_shape"]
    with torch.device("meta"):
        model = create("iam4vp", preset="paper", in_channels=c, input_frames=t, img_size=(h, w))
    assert count_params(model) == full["params"] - full["params_unused"] == 31_569_409
