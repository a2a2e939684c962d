"""vpbench's OpenSTL form of its recurrent models against OpenSTL's whole models (golden files:
``tools/golden/openstl_stacks.py``).

``convlstm``, ``stlstm``, ``causallstm`` and ``mim`` built with their ``openstl`` preset (a
:class:`~vpbench.models.layers.openstl_stack.RecurrentStack` over the cells) are held against OpenSTL's
``ConvLSTM_Model``, ``PredRNN_Model``, ``PredRNNpp_Model`` and ``MIM_Model`` (branch OpenSTL-Lightning) as whole
models: one fixed 20-frame input, 10 -> 10, in float64. Three cases: the training forward and loss with a
scheduled-sampling mask of ones and one of zeros (vpbench driven through its ``mse_all_frames`` loss at sampling
probabilities 1 and 0 past the input window), and the test-time forward with OpenSTL's validation loss. Compared
to 1e-10: all 19 raw next-frame predictions, the loss and (training cases) every parameter's gradient.

The weight mapping is the package's (:func:`vpbench.reference.mappings.recurrent.openstl_stack`, which
``bench import openstl`` uses): the cells' (OpenSTL's convolutions into vpbench's fused ones, in vpbench's gate
order) plus the patch layout: OpenSTL's ``reshape_patch`` orders a patch's channels (py, px, C), vpbench's
``patchify`` (C, py, px), so the first layer's input convolution has its input channels, and the readout its
output channels, permuted.

Accounted-for differences, each explicit below:

* Parameters OpenSTL defines and its forward never uses (``unused``: ConvLSTM's ``conv_o`` and ``conv_last`` per
  cell, PredRNN++'s ``conv_o`` per Causal LSTM, MIM's ``conv_last`` per MIM-N) have no vpbench counterpart: their
  reference gradients are zero, and vpbench's parameter count is OpenSTL's less theirs.
* MIM: OpenSTL detaches the stationary cell S before every step; so does vpbench's ``openstl`` preset
  (``detach_stationary=True``). OpenSTL also carries S over from one forward to the next; the golden cases
  each start from a fresh module, as vpbench starts every sequence.
* MIM's FLOPs: at the first step OpenSTL runs its MIM-Ns on zeros and throws the result away, so fvcore's trace
  drops those convolutions; vpbench's MIM-Ns run at the first step too (on zeros, giving zeros) and their output
  is used, so vpbench counts 2 convolutions more per MIM-N (:func:`first_step_mimn_flops`; at OpenSTL's
  configuration 2.52 GFLOPs, 1.4% of 179.18 G).
"""
from __future__ import annotations

from typing import Any

import pytest
import torch
from helpers.parity import assert_close, assert_grads, by_reference, grads_of, load_golden, load_mapped
from torch import nn

from vpbench.datasets import DataSpec
from vpbench.losses import LossContext, get_loss
from vpbench.metrics.cost import count_flops, count_params
from vpbench.models import create
from vpbench.models.layers.openstl_stack import sampling_probabilities
from vpbench.reference.mappings.links import WeightMap
from vpbench.reference.mappings.recurrent import openstl_stack

pytestmark = pytest.mark.usefixtures("one_thread")

FAMILIES = ("convlstm", "stlstm", "causallstm", "mim")
# Options beyond the openstl preset's: OpenSTL's MIM detaches S before every step (see the module docstring).
# Scheduled sampling at probability 1 past the input window (a rate of 0 keeps it at its start, 1) and at 0
# (OpenSTL's schedule at its stop step, 50,000): the masks of ones and of zeros.
SCHEDULES = {"mask1": (0, {"sampling": "linear", "sampling_stop_iter": 50000, "sampling_changing_rate": 0.0}),
             "mask0": (50000, {"sampling": "linear", "sampling_stop_iter": 50000, "sampling_changing_rate": 2e-5})}


# -- weight mapping ---------------------------------------------------------------------------------
def mapping(golden: dict, family: str, model: nn.Module) -> WeightMap:
    """The package's mapping of OpenSTL's model into vpbench's, at the golden configuration; the parameters it
    declares unused are the ones the golden file lists."""
    weights = openstl_stack(golden["state_dict"], model.state_dict(), {"name": family, **golden["config"]["vpbench"]})
    assert weights.unused == set(golden["unused"])
    return weights


def build(family: str, golden: dict | None = None, **options: Any) -> nn.Module:
    """vpbench's model with its openstl preset, at the golden configuration."""
    sizes = golden["config"]["vpbench"] if golden else {}
    return create(family, preset="openstl", **sizes, **options)


# -- the comparisons --------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_training_cases_match_openstl(family: str) -> None:
    """Masks of ones and of zeros: 19 raw predictions, loss (``mse_all_frames``) and gradients."""
    golden = load_golden(f"stack_{family}")
    model = build(family, golden).double().train()
    weights = mapping(golden, family, model)
    load_mapped(model, weights, golden["state_dict"])
    frames, pre = golden["inputs"], golden["config"]["input_frames"]
    x, y = frames[:, :pre], frames[:, pre:]
    for case, (step, train) in SCHEDULES.items():
        ref = golden["cases"][case]
        sampling = sampling_probabilities(step, train)
        assert sampling == (1.0, ref["mask"]), f"{case}: sampling {sampling}"
        out = model(x, y.shape[1], targets=y, sampling=sampling, all_frames=True)
        assert_close(out, ref["output"], f"{family} {case}: the 19 raw predictions")
        model.zero_grad(set_to_none=True)
        loss, _ = get_loss("mse_all_frames")(model, x, y, LossContext(step=step, train=train))
        assert_close(loss, ref["loss"], f"{family} {case}: loss")
        loss.backward()
        assert_grads(grads_of(model), ref["grads"], by_reference(weights, golden["state_dict"]))


@pytest.mark.parametrize("family", FAMILIES)
def test_test_time_case_matches_openstl(family: str) -> None:
    """OpenSTL's test-time forward (mask of zeros) and validation loss; the contract's forward clamps its last
    10 predictions."""
    golden = load_golden(f"stack_{family}")
    model = build(family, golden).double().eval()
    load_mapped(model, mapping(golden, family, model), golden["state_dict"])
    frames, pre = golden["inputs"], golden["config"]["input_frames"]
    x, y = frames[:, :pre], frames[:, pre:]
    ref = golden["cases"]["test"]
    assert_close(model(x, y.shape[1], all_frames=True), ref["output"], f"{family} test: the 19 raw predictions")
    loss, preds = get_loss("mse_all_frames")(model, x, y)
    assert_close(loss, ref["loss"], f"{family} test: validation loss")
    assert_close(model(x, y.shape[1]), ref["output"][:, pre - 1:].clamp(0, 1), f"{family} test: predictions")
    assert_close(preds, ref["output"][:, pre - 1:].clamp(0, 1), f"{family} test: the loss's predictions")


def first_step_mimn_flops(family: str, hidden: int, layers: int, kernel: int, grid: tuple[int, int]) -> int:
    """The MIM-N convolutions vpbench runs at the first step and OpenSTL throws away (MIM only): per MIM block,
    its input and hidden convolutions, M -> 4M each."""
    return (layers - 1) * 2 * hidden * 4 * hidden * kernel**2 * grid[0] * grid[1] if family == "mim" else 0


@pytest.mark.parametrize("family", FAMILIES)
def test_flops_match_openstl(family: str) -> None:
    """fvcore FLOPs at the golden configuration, OpenSTL's traced its way (batch 1, the patched 20 frames and a
    mask of ones, the whole 19-step forward), plus MIM's first-step MIM-Ns. (At OpenSTL's Moving MNIST
    configuration fvcore takes 5-30 s a model here; the generator records OpenSTL's count there, ``full``.)"""
    golden = load_golden(f"stack_{family}")
    cfg = golden["config"]["vpbench"]
    spec = DataSpec("golden", golden["config"]["input_frames"], golden["config"]["output_frames"],
                    cfg["in_channels"], *cfg["img_size"])
    grid = (cfg["img_size"][0] // cfg["patch_size"], cfg["img_size"][1] // cfg["patch_size"])
    extra = first_step_mimn_flops(family, cfg["hidden"], cfg["layers"], cfg["kernel_size"], grid)
    assert count_flops(build(family, golden), spec) == golden["flops"] + extra


@pytest.mark.parametrize("family", FAMILIES)
def test_params_at_openstl_configuration(family: str) -> None:
    """At OpenSTL's Moving MNIST configuration (4 x 128, filter 5, patch 4, 64x64): OpenSTL's parameters less
    those its forward never uses."""
    full = load_golden(f"stack_{family}")["full"]
    cfg = full["config"]
    with torch.device("meta"):  # shapes only
        model = build(family, img_size=cfg["frame"], in_channels=cfg["channels"])
    first = model.cells[0]
    assert (first.hidden, first.kernel_size, len(model.cells), model.patch_size) == (
        cfg["hidden"], cfg["kernel"], cfg["layers"] + (family == "causallstm"), cfg["patch"])
    assert count_params(model) == full["params"] - sum(full["unused"].values())


def test_golden_files_record_their_reference() -> None:
    for family in FAMILIES:
        golden = load_golden(f"stack_{family}")
        assert "OpenSTL" in golden["reference"]["repository"] and len(golden["reference"]["commit"]) == 40
        assert golden["inputs"].dtype == torch.float64 and golden["inputs"].shape[1] == 20
        assert all(v.dtype == torch.float64 for v in golden["state_dict"].values())
