"""vpbench's OpenSTL form of its recurrent models against OpenSTL's whole models (golden files:
``tools/golden/openstl_stacks.py``).

``convlstm``, ``stlstm``, ``causallstm`` and ``mim`` built with their ``openstl`` preset (a
:class:`~vpbench.models.layers.openstl_stack.RecurrentStack` over the cells) are held against OpenSTL's
``ConvLSTM_Model``, ``PredRNN_Model``, ``PredRNNpp_Model`` and ``MIM_Model`` (branch OpenSTL-Lightning) as whole
models: one fixed 20-frame input, 10 -> 10, in float64. Three cases: the training forward and loss with a
scheduled-sampling mask of ones and one of zeros (vpbench driven through its ``mse_all_frames`` loss at sampling
probabilities 1 and 0 past the input window), and the test-time forward with OpenSTL's validation loss. Compared
to 1e-10: all 19 raw next-frame predictions, the loss and (training cases) every parameter's gradient.

The weight mapping is the cells' (``tests/parity/test_parity_recurrent_cells.py``: OpenSTL's convolutions into
vpbench's fused ones, in vpbench's gate order) plus the patch layout: OpenSTL's ``reshape_patch`` orders a patch's
channels (py, px, C), vpbench's ``patchify`` (C, py, px), so the first layer's input convolution has its input
channels, and the readout its output channels, permuted (:func:`patch_order`).

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
from helpers.openstl_cells import IGFO, Link, copy, gates, load, mim_convlstm_links, stlstm_links, to_reference
from helpers.parity import assert_close, assert_grads, grads_of, load_golden
from torch import Tensor, nn

from vpbench.datasets import DataSpec
from vpbench.losses import LossContext, get_loss
from vpbench.metrics.cost import count_flops, count_params
from vpbench.models import create
from vpbench.models.layers.openstl_stack import sampling_probabilities

pytestmark = pytest.mark.usefixtures("one_thread")

FAMILIES = ("convlstm", "stlstm", "causallstm", "mim")
# Options beyond the openstl preset's: OpenSTL's MIM detaches S before every step (see the module docstring).
# Scheduled sampling at probability 1 past the input window (a rate of 0 keeps it at its start, 1) and at 0
# (OpenSTL's schedule at its stop step, 50,000): the masks of ones and of zeros.
SCHEDULES = {"mask1": (0, {"sampling": "linear", "sampling_stop_iter": 50000, "sampling_changing_rate": 0.0}),
             "mask0": (50000, {"sampling": "linear", "sampling_stop_iter": 50000, "sampling_changing_rate": 2e-5})}


# -- weight mapping ---------------------------------------------------------------------------------
def patch_order(channels: int, patch: int) -> Tensor:
    """For each vpbench patch channel (c, py, px), OpenSTL's index of the same pixel ((py, px, c))."""
    return torch.arange(patch * patch * channels).reshape(patch, patch, channels).permute(2, 0, 1).flatten()


def permuted(link: Link, order: Tensor, dim: int) -> Link:
    """``link`` with vpbench's weight taking the reference's slices along ``dim`` in ``order``."""
    inverse = torch.argsort(order)
    return Link(link.ours, link.refs, lambda *w: link.load(*w).index_select(dim, order),
                lambda g: link.back(g.index_select(dim, inverse)))


def cell_links(family: str, layers: int) -> list[Link]:
    """vpbench's ``cells.<i>`` from OpenSTL's cells (the mapping of tests/parity/test_parity_recurrent_cells.py)."""
    if family == "convlstm":
        return [link for i in range(layers) for link in (  # [i, f, g, o] in both
            copy(f"cells.{i}.x_conv.weight", f"cell_list.{i}.conv_x.0.weight"),
            copy(f"cells.{i}.h_conv.weight", f"cell_list.{i}.conv_h.0.weight"))]
    if family == "stlstm":
        return [link for i in range(layers) for link in stlstm_links(f"cells.{i}", f"cell_list.{i}")]
    if family == "causallstm":  # vpbench's GHU is cells.1, so Causal LSTM i > 0 is cells.<i + 1>
        links = [copy("cells.1.x_conv.weight", "gradient_highway.x_concat.0.weight"),  # [p, s] in both
                 copy("cells.1.z_conv.weight", "gradient_highway.z_concat.0.weight")]
        for i in range(layers):
            ours, ref = f"cells.{i + (i > 0)}", f"cell_list.{i}"
            links += [copy(f"{ours}.x_conv.weight", f"{ref}.conv_x.0.weight"),  # [i, f, g, i', f', g', o]
                      copy(f"{ours}.h_conv.weight", f"{ref}.conv_h.0.weight"),  # [i, f, g, o]
                      copy(f"{ours}.c_conv.weight", f"{ref}.conv_c.0.weight"),  # [i, f, g]
                      copy(f"{ours}.m_conv.weight", f"{ref}.conv_m.0.weight"),  # [i', f', W_mm]
                      gates(f"{ours}.k_conv.weight", f"{ref}.conv_c2m.0.weight", IGFO),  # OpenSTL: [i', g', f', o]
                      copy(f"{ours}.om_conv.weight", f"{ref}.conv_om.0.weight"),
                      copy(f"{ours}.fuse.weight", f"{ref}.conv_last.weight")]
        return links
    links = stlstm_links("cells.0", "stlstm_layer.0")  # mim
    for i in range(1, layers):
        ours, block = f"cells.{i}", f"stlstm_layer.{i}"
        links += [gates(f"{ours}.x_conv.weight", f"{block}.conv_x_cc.0.weight", IGFO),  # OpenSTL: [i, g, f', o]
                  copy(f"{ours}.h_conv.weight", f"{block}.conv_t_cc.0.weight"),  # [i, g, o] in both
                  gates(f"{ours}.m_conv.weight", f"{block}.conv_s_cc.0.weight", IGFO),  # OpenSTL: [i', g', f', o]
                  copy(f"{ours}.fuse.weight", f"{block}.conv_last.weight")]
        links += mim_convlstm_links(f"{ours}.mim_n", f"stlstm_layer_diff.{i - 1}")  # OpenSTL's MIM-Ns: the model's
        links += mim_convlstm_links(f"{ours}.mim_s", block)  # the block's MIMS
    return links


def model_links(golden: dict, family: str) -> list[Link]:
    """Every vpbench parameter from OpenSTL's: the cells, the first layer's input channels and the readout's
    output channels in vpbench's patch order."""
    cfg = golden["config"]["vpbench"]
    order = patch_order(cfg["in_channels"], cfg["patch_size"])
    links = cell_links(family, cfg["layers"])
    first = next(i for i, link in enumerate(links) if link.ours == "cells.0.x_conv.weight")
    links[first] = permuted(links[first], order, dim=1)
    return links + [permuted(copy("readout.weight", "conv_last.weight"), order, dim=0)]


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
    links = model_links(golden, family)
    load(model, links, golden)
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
        assert_grads(grads_of(model), ref["grads"], to_reference(links, golden))


@pytest.mark.parametrize("family", FAMILIES)
def test_test_time_case_matches_openstl(family: str) -> None:
    """OpenSTL's test-time forward (mask of zeros) and validation loss; the contract's forward clamps its last
    10 predictions."""
    golden = load_golden(f"stack_{family}")
    model = build(family, golden).double().eval()
    load(model, model_links(golden, family), golden)
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
