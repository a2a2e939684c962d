"""Parity of PhyDNet, MAU and SwinLSTM-D with OpenSTL's code, in float64 (golden files:
tools/golden/phydnet_mau_swinlstm.py).

* ``phydnet.pt``, ``phydnet_gn16.pt`` (at the reference's own GroupNorm(16): width 16, weights drawn from a
  seed, gradients as sketches): OpenSTL's PhyDNet_Model rebuilt small (width 1, ConvLSTM (3, 2), PhyCell 7x7
  with 49 filters,
  GroupNorm of 1 group where the reference hard-codes 16; 2 sequences of 3 + 2 frames, 1 x 16 x 12, patch 4):
  the per-step outputs of training forwards with teacher forcing off and on, the authors' loss (per-step MSEs
  plus the moment loss of the reference's K2M) and its gradients, and ``inference``'s predictions.
* ``mau.pt`` (normal cells and model, patch 1, sr_size 4, tau 2) and ``mau_recall.pt`` (residual cells, recall
  model, patch 2, sr_size 2, tau 3): every output of a training forward with a scheduled-sampling mask that mixes
  true frames and predictions, the reference's MSE over all of them and its gradients.
* ``swinlstm.pt``: SwinLSTM_D_Model (embed 4, depths down (3, 1), up (2, 1), heads (1, 2), window 4, 16 x 16,
  patch 2): eval-mode outputs; training-mode outputs (stochastic depth 0.1 drawn from the same seed), loss and
  gradients.

Each test loads the reference's weights through the package's name mappings (:mod:`vpbench.reference.mappings`
``phydnet``, ``mau``, ``swinlstm``, which ``bench import openstl`` uses), runs the same inputs and compares
outputs, losses and gradients to 1e-10. Parameters that OpenSTL defines and its forward never uses (MAU's
``merge`` and ``conv_last_sr``; SwinLSTM's up-sampling ``patch_embed`` and the fusing Linear ``red`` of its odd
blocks) are not in vpbench: their reference gradients are zero. The fvcore FLOPs of vpbench's forward equal the
reference's at the same configuration (less, for PhyDNet, the moments of its moment loss: OpenSTL traces its
training forward; the two decodings it makes for display only are dead code that the trace drops), and the
parameters at OpenSTL's Moving MNIST configuration equal the reference's less the unused ones.
"""
from __future__ import annotations

from typing import Callable, Mapping

import pytest
import torch
import torch.nn.functional as F
from helpers.parity import assert_close, assert_grads, by_reference, grads_of, load_golden, seeded_weights, sketch

from vpbench.datasets import DataSpec
from vpbench.losses import LossContext, drawing_from, get_loss
from vpbench.metrics.cost import count_flops, count_params
from vpbench.models import create
from vpbench.reference.mappings import mapping_for
from vpbench.reference.mappings.links import WeightMap

pytestmark = pytest.mark.usefixtures("one_thread")


def load_model(golden: Mapping, name: str) -> tuple[torch.nn.Module, WeightMap]:
    """vpbench's model at the golden file's configuration, in float64, holding the reference's weights (the golden
    files hold the reference's parameters: vpbench's buffers keep their own values)."""
    config = golden["config"]
    model = create(name, in_channels=config["shape"][0], img_size=config["shape"][1:], **config["vpbench"]).double()
    weights = mapping_for("openstl", name)(golden["state_dict"], model.state_dict(), config["vpbench"])
    buffers = {n: b for n, b in model.state_dict().items() if n not in dict(model.named_parameters())}
    model.load_state_dict({**buffers, **weights.to_vpbench(golden["state_dict"])}, strict=True)
    return model, weights


def check_grads(model: torch.nn.Module, grads: Mapping[str, torch.Tensor], weights: WeightMap,
                state: Mapping[str, torch.Tensor]) -> None:
    """Every reference gradient (zeros for the parameters OpenSTL never uses) equals vpbench's, mapped back."""
    for name in weights.unused:
        assert not grads[name].any(), f"the reference's {name} is unused, yet has a gradient"
    assert len(grads) - len(weights.unused) == len(dict(model.named_parameters())), \
        "vpbench has parameters the reference has not"
    assert_grads(grads_of(model), grads, by_reference(weights, state))


# -- PhyDNet ---------------------------------------------------------------------------------------------------

TEACHER_FORCING = {"free": {}, "forced": {"sampling": "linear", "sampling_stop_iter": 1, "sampling_changing_rate": 0.0}}


def phydnet_golden(file: str) -> dict:
    """``phydnet.pt`` (GroupNorm(1) where the reference has 16), or ``phydnet_gn16.pt`` (the reference's GroupNorm(16))
    with its seeded weights drawn into ``state_dict``."""
    golden = load_golden(file)
    if "weight_seed" in golden:
        golden["state_dict"] = seeded_weights(golden["parameter_shapes"], golden["weight_seed"])
    return golden


@pytest.mark.parametrize("file", ["phydnet", "phydnet_gn16"])
@pytest.mark.parametrize("run", ["free", "forced"])
def test_phydnet_training_forward_loss_and_gradients_equal_the_references(run, file):
    golden = phydnet_golden(file)
    model, weights = load_model(golden, "phydnet")
    groups = {m.num_groups for name, m in model.named_modules() if isinstance(m, torch.nn.GroupNorm)
              and "phycell" not in name}
    assert groups == {golden["config"]["vpbench"]["norm_groups"]}
    model.train()
    inputs, targets, expected = golden["inputs"], golden["targets"], golden["runs"][run]
    out = model(inputs, targets.shape[1], targets=targets, teacher_forcing=run == "forced", all_frames=True)
    assert_close(out, expected["output"], "per-step outputs")
    assert_close(model.phycell.moment_loss(), expected["moment_loss"], "moment loss")
    loss, pred = get_loss("phydnet")(model, inputs, targets, LossContext(0, TEACHER_FORCING[run]))
    assert_close(pred, expected["output"][:, -targets.shape[1]:], "predictions")
    assert_close(loss, expected["loss"], "loss")
    loss.backward()
    if "sketch_seed" not in golden:
        check_grads(model, expected["grads"], weights, golden["state_dict"])
        return
    mapped = weights.to_reference(grads_of(model), golden["state_dict"])
    shapes = golden["parameter_shapes"]
    ours = sketch({n: mapped[n] if n in mapped else torch.zeros(shapes[n], dtype=torch.float64) for n in shapes},
                  golden["sketch_seed"])
    for name, theirs in expected["grads"].items():
        assert_close(ours[name], theirs, f"gradient sketch of {name}")


@pytest.mark.parametrize("file", ["phydnet", "phydnet_gn16"])
def test_phydnet_predictions_equal_the_references_inference(file):
    golden = phydnet_golden(file)
    model = load_model(golden, "phydnet")[0].eval()
    with torch.no_grad():
        assert_close(model(golden["inputs"], golden["targets"].shape[1]), golden["predictions"], "predictions")


# -- MAU -------------------------------------------------------------------------------------------------------

def golden_coins(use_true: torch.Tensor) -> Callable[[tuple[int, ...]], torch.Tensor]:
    """The golden's scheduled-sampling mask (use_true [B, steps past the input window]) as the coins MAU draws
    (``vpbench.losses.draw_uniform``, one call of [B] per step past the input window): 0 where it read the true
    frame, the largest float below 1 where it read its prediction, so that any probability in (0, 1) picks the same."""
    columns = iter(use_true.bool().unbind(1))
    return lambda shape: torch.where(next(columns), 0.0, 1 - 2.0**-53).double()


@pytest.mark.parametrize("file", ["mau", "mau_recall"])
def test_mau_outputs_loss_and_gradients_equal_the_references(file):
    golden = load_golden(file)
    model, weights = load_model(golden, "mau")
    model.train()
    inputs, targets, p = golden["inputs"], golden["targets"], golden["config"]["p_true"]
    use_true = golden["use_true"]
    assert use_true.shape == (inputs.shape[0], targets.shape[1] - 1) and 0 < use_true.sum() < use_true.numel()
    with drawing_from(golden_coins(use_true)):
        out = model(inputs, targets.shape[1], targets=targets, sampling=(1.0, p), all_frames=True)
    assert_close(out, golden["output"], "outputs")
    loss = F.mse_loss(out, torch.cat([inputs, targets], dim=1)[:, 1:])
    assert_close(loss, golden["loss"], "loss")
    loss.backward()
    check_grads(model, golden["grads"], weights, golden["state_dict"])
    # The same through OpenSTL's training loss: p_true = 1 - 0.5 (step + 1) at step 0.
    schedule = {"sampling": "linear", "sampling_stop_iter": 10, "sampling_changing_rate": 1 - p}
    with drawing_from(golden_coins(use_true)):
        loss, _ = get_loss("mse_all_frames")(model, inputs, targets, LossContext(0, schedule))
    assert_close(loss, golden["loss"], "mse_all_frames loss")


# -- SwinLSTM --------------------------------------------------------------------------------------------------

def test_swinlstm_outputs_in_eval_and_training_and_gradients_equal_the_references():
    golden = load_golden("swinlstm")
    model, weights = load_model(golden, "swinlstm")
    inputs, targets = golden["inputs"], golden["targets"]
    with torch.no_grad():
        assert_close(model.eval()(inputs, targets.shape[1], all_frames=True), golden["eval_output"], "eval outputs")
    torch.manual_seed(golden["config"]["seed"])  # the reference's drop-path masks, drawn in the same order
    out = model.train()(inputs, targets.shape[1], targets=targets, all_frames=True)
    assert_close(out, golden["output"], "training outputs")
    loss = F.mse_loss(out, torch.cat([inputs, targets], dim=1)[:, 1:])
    assert_close(loss, golden["loss"], "loss")
    loss.backward()
    check_grads(model, golden["grads"], weights, golden["state_dict"])


# -- Parameters and FLOPs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, file", [("phydnet", "phydnet"), ("mau", "mau"), ("mau", "mau_recall"),
                                        ("swinlstm", "swinlstm")])
def test_fvcore_flops_equal_the_references_at_the_golden_configuration(name, file):
    golden = load_golden(file)
    config = golden["config"]
    model = create(name, in_channels=config["shape"][0], img_size=config["shape"][1:], **config["vpbench"])
    flops = count_flops(model, DataSpec("golden", *config["frames"], *config["shape"]))
    expected = golden["flops"]["total"]
    if name == "phydnet":  # the reference's trace is of its training forward, with the moments (K2M)
        expected -= golden["flops"]["k2m"]
    assert flops == expected


@pytest.mark.parametrize("name, file, published", [("phydnet", "phydnet", 3.1e6), ("mau", "mau", 4.5e6),
                                                   ("swinlstm", "swinlstm", None)])
def test_parameters_at_openstls_configuration_equal_the_references_less_the_unused(name, file, published):
    full = load_golden(file)["full"]
    with torch.device("meta"):
        model = create(name, preset="openstl")
    assert count_params(model) == full["params"] - sum(full.get("params_unused", {}).values())
    if published:
        assert round(full["params"] / 1e5) == round(published / 1e5)
