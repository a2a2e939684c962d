"""vpbench's ``predrnnv2`` and ``e3dlstm`` against OpenSTL's code (golden files from
``tools/golden/predrnnv2_e3dlstm.py``).

Each golden file holds OpenSTL's whole model (PredRNNv2_Model from the Lightning branch, E3DLSTM_Model from
v0.3.0) run in float64 on one 20-frame input with fixed scheduled-sampling masks: the 19 next-frame predictions,
OpenSTL's loss, its parameter gradients, the test-time forward, fvcore's FLOPs, and the parameter count and
FLOPs at OpenSTL's Moving MNIST configuration. vpbench's model gets the same weights and runs the same steps,
its stack driven by sampling probabilities of 0 and 1 per region (inside the input window, past it), which
make OpenSTL's masks; outputs, losses and gradients must agree to 1e-10.

Weight layouts (the package's mappings, :mod:`vpbench.reference.mappings.recurrent`, which ``bench import openstl``
uses): OpenSTL patches a frame's channels in (py, px, C) order, vpbench in (C, py, px): the bottom layer's input
convolution and the readout are permuted accordingly. E3D-LSTM's readout, a (2, 1, 1) 3D convolution over the
window's two slices, is vpbench's 1x1 convolution of the slices folded into channels.
``e3dlstm_memory.pt`` runs E3D-LSTM's whole model from a non-zero global memory M (OpenSTL's starts, and stays,
at zero). ``predrnnv2_sampling.pt`` holds the reverse scheduled-sampling probabilities OpenSTL's own
``reserve_schedule_sampling_exp`` gives at OpenSTL's Moving MNIST settings and at small ones, read from its masks;
vpbench's schedule (:func:`sampling_probabilities`) must give the same at every step.
The checks run the ``openstl`` variant of E3D-LSTM; the ``authors`` variant shares its weights and is
checked in ``tests/models/test_predrnnv2_e3dlstm.py``.
"""
from __future__ import annotations

from typing import Callable

import pytest
import torch
from helpers.parity import assert_close, assert_grads, by_reference, grads_of, load_golden, load_mapped
from torch import Tensor, nn

from vpbench.datasets.base import DataSpec
from vpbench.losses import LossContext, get_loss
from vpbench.metrics.cost import count_flops
from vpbench.models import create, get_entry
from vpbench.models.layers.openstl_stack import sampling_probabilities
from vpbench.reference.mappings.links import WeightMap
from vpbench.reference.mappings.recurrent import openstl_e3dlstm, openstl_predrnnv2

pytestmark = pytest.mark.usefixtures("one_thread")
MAPPINGS = {"predrnnv2": openstl_predrnnv2, "e3dlstm": openstl_e3dlstm}


def loaded(name: str, golden: dict) -> tuple[nn.Module, WeightMap]:
    """vpbench's model at the golden configuration, in float64, with the reference's weights."""
    model = create(name, preset="openstl-tiny", **golden["config"]["vpbench"]).double()
    weights = MAPPINGS[name](golden["state_dict"], model.state_dict(), golden["config"]["vpbench"])
    return load_mapped(model, weights, golden["state_dict"]), weights


def split(golden: dict) -> tuple[Tensor, Tensor]:
    frames, cfg = golden["inputs"], golden["config"]
    return frames[:, :cfg["input_frames"]], frames[:, cfg["input_frames"]:]


def run_training_case(name: str, case: str, loss_fn: Callable[..., Tensor]) -> None:
    """One training case: outputs, loss and (where the file has them) gradients."""
    golden = load_golden(name)
    model, weights = loaded(name, golden)
    model.train()
    expected = golden["cases"][case]
    loss = loss_fn(model, *split(golden), expected)
    assert_close(loss, expected["loss"], f"{case}: loss")
    if "grads" in expected:
        loss.backward()
        assert_grads(grads_of(model), expected["grads"], by_reference(weights, golden["state_dict"]))


# -- PredRNN.V2 ---------------------------------------------------------------------------------------------
def test_predrnnv2_through_its_loss_with_the_test_time_masks() -> None:
    """The registered loss at a step past reverse sampling's end reads (1, 0): OpenSTL's ``in1_out0`` mask."""
    recipe = get_entry("predrnnv2").recipe_for("openstl")
    context = LossContext(recipe["r_sampling_step_2"], recipe)

    def loss_fn(model: nn.Module, inputs: Tensor, targets: Tensor, expected: dict) -> Tensor:
        loss, pred = get_loss("mse_decoupling")(model, inputs, targets, context)
        assert_close(pred, expected["output"][:, -targets.shape[1]:].clamp(0, 1), "in1_out0: predictions")
        with torch.no_grad():
            out, decoupling = model(inputs, targets.shape[1], targets=targets, sampling=(1.0, 0.0), all_frames=True,
                                    decoupling=True)
        assert_close(out, expected["output"], "in1_out0: all 19 outputs")
        assert_close(decoupling / model.decouple_beta, expected["decoupling"], "in1_out0: decoupling term")
        return loss

    run_training_case("predrnnv2", "in1_out0", loss_fn)


def test_predrnnv2_with_predictions_inside_the_window_and_true_frames_past_it() -> None:
    def loss_fn(model: nn.Module, inputs: Tensor, targets: Tensor, expected: dict) -> Tensor:
        out, decoupling = model(inputs, targets.shape[1], targets=targets, sampling=expected["mask"],
                                all_frames=True, decoupling=True)
        assert_close(out, expected["output"], "in0_out1: all 19 outputs")
        assert_close(decoupling / model.decouple_beta, expected["decoupling"], "in0_out1: decoupling term")
        return nn.functional.mse_loss(out, torch.cat([inputs, targets], dim=1)[:, 1:]) + decoupling

    run_training_case("predrnnv2", "in0_out1", loss_fn)


def test_reverse_scheduled_sampling_is_openstls_function() -> None:
    golden = load_golden("predrnnv2_sampling")
    assert any(case["train"]["r_sampling_step_1"] == get_entry("predrnnv2").recipe_for("openstl")["r_sampling_step_1"]
               for case in golden["cases"])
    for case in golden["cases"]:
        ours = torch.tensor([sampling_probabilities(step, case["train"]) for step in case["steps"]], dtype=torch.float64)
        assert_close(ours[:, 0], case["inside"], f"P(true frame) inside the input window, {case['train']}", tol=1e-15)
        assert_close(ours[:, 1], case["past"], f"P(true frame) past the input window, {case['train']}", tol=1e-15)


@pytest.mark.parametrize("name", ["predrnnv2", "e3dlstm"])
def test_test_time_forward(name: str) -> None:
    golden = load_golden(name)
    model, _ = loaded(name, golden)
    model.eval()
    inputs, targets = split(golden)
    expected = golden["cases"]["test"]["output"]
    with torch.no_grad():
        assert_close(model(inputs, targets.shape[1], all_frames=True), expected, "test: all 19 outputs")
        assert_close(model(inputs, targets.shape[1]), expected[:, -targets.shape[1]:].clamp(0, 1), "test: contract")


# -- E3D-LSTM -----------------------------------------------------------------------------------------------
def test_e3dlstm_through_its_loss_with_predictions_past_the_window() -> None:
    """The registered loss past scheduled sampling's end reads (1, 0): OpenSTL's mask of zeros."""
    recipe = get_entry("e3dlstm").recipe_for("openstl")
    context = LossContext(recipe["sampling_stop_iter"], recipe)

    def loss_fn(model: nn.Module, inputs: Tensor, targets: Tensor, expected: dict) -> Tensor:
        loss, pred = get_loss("mse_l1_all_frames")(model, inputs, targets, context)
        assert_close(pred, expected["output"][:, -targets.shape[1]:].clamp(0, 1), "mask0: predictions")
        with torch.no_grad():
            out = model(inputs, targets.shape[1], targets=targets, sampling=(1.0, 0.0), all_frames=True)
        assert_close(out, expected["output"], "mask0: all 19 outputs")
        return loss

    run_training_case("e3dlstm", "mask0", loss_fn)


def test_e3dlstm_with_true_frames_past_the_window() -> None:
    def loss_fn(model: nn.Module, inputs: Tensor, targets: Tensor, expected: dict) -> Tensor:
        out = model(inputs, targets.shape[1], targets=targets, sampling=expected["mask"], all_frames=True)
        assert_close(out, expected["output"], "mask1: all 19 outputs")
        truth = torch.cat([inputs, targets], dim=1)[:, 1:]
        return nn.functional.mse_loss(out, truth) + nn.functional.l1_loss(out, truth)

    run_training_case("e3dlstm", "mask1", loss_fn)


def test_e3dlstm_whole_model_with_a_nonzero_global_memory() -> None:
    """The whole model from a random global memory M (the reference's initial zeros replaced): M stays non-zero
    through the stack, so its convolutions, the forget bias and tanh of M' act on every step."""
    golden = load_golden("e3dlstm_memory")
    model, weights = loaded("e3dlstm", golden)
    model.train()
    inputs, targets = split(golden)
    memory = golden["memory"].flatten(1, 2)  # [B, M, 2, h, w] -> the cells' [B, M * 2, h, w]
    assert memory.abs().min() > 0
    out = model(inputs, targets.shape[1], targets=targets, sampling=golden["config"]["mask"], all_frames=True,
                memory=memory)
    assert_close(out, golden["output"], "all 19 outputs from a non-zero memory")
    truth = torch.cat([inputs, targets], dim=1)[:, 1:]
    loss = nn.functional.mse_loss(out, truth) + nn.functional.l1_loss(out, truth)
    assert_close(loss, golden["loss"], "loss from a non-zero memory")
    loss.backward()
    assert_grads(grads_of(model), golden["grads"], by_reference(weights, golden["state_dict"]))
    memory_weights = [n for n in golden["grads"] if "conv_gm" in n or "m_conv" in n or "conv_m" in n]
    assert memory_weights and all(golden["grads"][n].abs().sum() > 0 for n in memory_weights)


def test_e3dlstm_cell_with_a_nonzero_global_memory() -> None:
    """In the model the global memory stays zero (each cell hands on the one it received), which hides the
    weights that read it and the forget bias of M'_t: here the upper cell runs once on a random memory."""
    golden = load_golden("e3dlstm")
    model, _ = loaded("e3dlstm", golden)
    case = golden["cases"]["cell"]
    given = {k: v.flatten(1, 2) for k, v in case["inputs"].items()}  # [B, M, 2, h, w] -> [B, M * 2, h, w]
    cell, carry = model.cells[1], {"m": given["m"]}
    with torch.no_grad():
        new = cell.step(cell.input_conv(given["x"]), {"h": given["h"], "c": given["c"], "history": given["earlier"]},
                        carry)
    assert_close(new["h"], case["output"].flatten(1, 2), "cell: H_t")
    assert_close(new["c"], case["new_cell"].flatten(1, 2), "cell: C_t")
    assert_close(carry["m"], case["memory"].flatten(1, 2), "cell: the memory it hands on")


# -- cost ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["predrnnv2", "e3dlstm"])
def test_parameters_at_openstls_moving_mnist_configuration(name: str) -> None:
    full = load_golden(name)["full"]
    with torch.device("meta"):
        model = create(name, preset="openstl")
    assert full["config"] == {"channels": 1, "frame": (64, 64), "patch": 4, "hidden": 128, "layers": 4, "kernel": 5}
    assert sum(p.numel() for p in model.parameters()) == full["params"]


@pytest.mark.parametrize("name", ["predrnnv2", "e3dlstm"])
def test_fvcore_flops_at_the_golden_configuration(name: str) -> None:
    """OpenSTL traces the training forward: for PredRNN.V2 that adds the decoupling term's two 1x1 adapter
    convolutions per step and layer (M x M multiply-adds per position), which vpbench's test-time count omits."""
    golden = load_golden(name)
    cfg = golden["config"]
    model = loaded(name, golden)[0].float()  # count_flops feeds float32 frames
    h, w = cfg["vpbench"]["img_size"]
    spec = DataSpec("golden", cfg["input_frames"], cfg["output_frames"], cfg["vpbench"]["in_channels"], h, w)
    grid = h // cfg["vpbench"]["patch_size"] * w // cfg["vpbench"]["patch_size"]
    steps = cfg["input_frames"] + cfg["output_frames"] - 1
    adapter = 2 * steps * cfg["vpbench"]["layers"] * cfg["vpbench"]["hidden"] ** 2 * grid if name == "predrnnv2" else 0
    assert count_flops(model, spec) + adapter == golden["flops"]


def test_golden_files_record_their_reference() -> None:
    for name, branch in (("predrnnv2", "OpenSTL-Lightning"), ("e3dlstm", "OpenSTLv0.3.0")):
        golden = load_golden(name)
        assert branch in golden["reference"]["repository"] and len(golden["reference"]["commit"]) == 40
        assert golden["inputs"].dtype == torch.float64
        assert all(v.dtype == torch.float64 for v in golden["state_dict"].values())
