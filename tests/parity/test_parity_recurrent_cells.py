"""vpbench's recurrent cells against OpenSTL's (golden files from ``tools/golden/recurrent_cells.py``).

Each golden file holds OpenSTL's cells (layer_norm off) run for 3 steps from zero states in float64:
their weights, every step's outputs and the parameter gradients of a fixed loss over all of them.
Here vpbench's cells get the same weights (OpenSTL's separate convolutions stacked into vpbench's
fused ones, in vpbench's gate order), run the same 3 steps through :func:`run`, and every output and
every gradient (mapped back to OpenSTL's names and layouts) must agree to 1e-10.

Accounted-for differences, each explicit below:

* ConvLSTM: OpenSTL's ``ConvLSTMCell`` has no peepholes and no forget bias (it sets
  ``_forget_bias = 1.0`` and never uses it; ``conv_o`` and ``conv_last`` are unused too). vpbench's
  has per-position peepholes (zero at initialisation) and the constant forget bias 1 of the PredRNN
  family. The test builds vpbench's cell as OpenSTL's form uses it (``peephole=False``,
  ``forget_bias=0``), so it compares the gates, the convolutions and the recurrence; the peepholes
  and the forget bias of the same ``ConvLSTMCell`` are compared in the MIM test, as MIM-N and MIM-S (OpenSTL's
  ``MIMN`` and ``MIMBlock.MIMS``: per-position peepholes and forget bias 1, exactly vpbench's cell).
* MIM: OpenSTL keeps MIM-S's cell S on the module and detaches it before each step (and carries it
  over to the next batch; the golden file starts from a fresh module, so S starts at zero as in
  vpbench). The forward pass is the same; for the gradients, the MIM block is built with
  ``detach_stationary=True``, which detaches S before every step as OpenSTL does (without that,
  vpbench's gradients differ by up to ~5e-4 here: by default vpbench backpropagates through S
  across steps, OpenSTL does not).
* Parameters OpenSTL defines and never uses (``unused`` in the golden file) have no vpbench
  counterpart; their reference gradients must be zero.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import torch
from helpers.openstl_cells import IGFO, Link, copy, gates, load, mim_convlstm_links, stlstm_links, to_reference
from helpers.parity import assert_close, assert_grads, grads_of, load_golden
from torch import Tensor, nn

from vpbench.models.causallstm import CausalLSTMCell
from vpbench.models.convlstm import ConvLSTMCell
from vpbench.models.layers.ghu import GHU
from vpbench.models.mim import DifferencingSTLSTMCell, MIMBlock
from vpbench.models.stlstm import STLSTMCell


# -- the driver: the one place that knows the cell API ----------------------------------------------
def run(cells: Sequence[nn.Module], frames: Tensor) -> dict[tuple[int, str], Tensor]:
    """Run a stack of vpbench cells over frames [B, T, C, h, w] from zero states, as the
    encoder-forecaster does: each layer reads the one below, the zigzag memory and per-step signals
    pass through ``carry``. Returns every layer's every state and the zigzag memory as the layer left
    it, (layer, name) -> [T, B, M, h, w]."""
    b, steps, _, h, w = frames.shape
    states = [cell.init_state(frames.new_zeros(b, cell.hidden, h, w)) for cell in cells]
    memories = {cell.memory for cell in cells if cell.memory}
    carry = {name: frames.new_zeros(b, cells[0].hidden, h, w) for name in memories}
    outs: dict[tuple[int, str], list[Tensor]] = defaultdict(list)
    for t in range(steps):
        for name in [k for k in carry if k not in memories]:
            del carry[name]  # per-step signals do not cross time steps
        x = frames[:, t]
        for i, cell in enumerate(cells):
            states[i] = cell.step(cell.input_conv(x), states[i], carry)
            for name in cell.state_names:
                outs[(i, name)].append(states[i][name])
            if cell.memory:  # the zigzag memory as this layer left it
                outs[(i, cell.memory)].append(carry[cell.memory])
            x = states[i]["h"]
    return {k: torch.stack(v) for k, v in outs.items()}


# -- the families -----------------------------------------------------------------------------------
def check(golden: dict, cells: nn.ModuleList, links: Sequence[Link], outputs: dict[tuple[int, str], str]) -> None:
    """Load, run, compare every output in ``outputs`` ((layer, state) -> reference key) and every gradient."""
    assert set(outputs.values()) == set(golden["output"]), "every reference output is compared"
    load(cells.double(), links, golden)
    ours = run(cells, golden["inputs"])
    for key, ref in outputs.items():
        assert_close(ours[key], golden["output"][ref], f"layer {key[0]} state {key[1]!r} vs {ref}")
    loss = sum((ours[key] * golden["loss_weights"]).mean() for key in outputs)
    loss.backward()
    assert_grads(grads_of(cells), golden["grads"], to_reference(links, golden))


def test_convlstm() -> None:
    golden = load_golden("cell_convlstm")
    cfg = golden["config"]
    m, k, grid = cfg["hidden"], cfg["kernel_size"], cfg["grid"]
    # OpenSTL's ConvLSTM: no peepholes, no forget bias (sigma(f), not sigma(f + 1)). See the module docstring.
    openstl = {"peephole": False, "forget_bias": 0.0}
    cells = nn.ModuleList([ConvLSTMCell(cfg["in_channels"], m, k, grid, **openstl),
                           ConvLSTMCell(m, m, k, grid, **openstl)])
    links = []
    for i in range(2):
        links += [copy(f"{i}.x_conv.weight", f"cell_list.{i}.conv_x.0.weight"),  # [i, f, g, o] in both
                  copy(f"{i}.h_conv.weight", f"cell_list.{i}.conv_h.0.weight")]
    check(golden, cells, links, {(i, s): f"cell_list.{i}.{s}" for i in range(2) for s in ("h", "c")})


def test_stlstm() -> None:
    golden = load_golden("cell_stlstm")
    cfg = golden["config"]
    m, k = cfg["hidden"], cfg["kernel_size"]
    cells = nn.ModuleList([STLSTMCell(cfg["in_channels"], m, k), STLSTMCell(m, m, k)])
    links = stlstm_links("0", "cell_list.0") + stlstm_links("1", "cell_list.1")
    check(golden, cells, links, {(i, s): f"cell_list.{i}.{s}" for i in range(2) for s in ("h", "c", "m")})


def test_causallstm_and_ghu() -> None:
    golden = load_golden("cell_causallstm")
    cfg = golden["config"]
    m, k = cfg["hidden"], cfg["kernel_size"]
    cells = nn.ModuleList([CausalLSTMCell(cfg["in_channels"], m, k), GHU(m, m, k)])
    ref = "cell_list.0"
    links = [copy("0.x_conv.weight", f"{ref}.conv_x.0.weight"),  # [i, f, g, i', f', g', o]
             copy("0.h_conv.weight", f"{ref}.conv_h.0.weight"),  # [i, f, g, o]
             copy("0.c_conv.weight", f"{ref}.conv_c.0.weight"),  # [i, f, g]
             copy("0.m_conv.weight", f"{ref}.conv_m.0.weight"),  # [i', f', W_mm]
             gates("0.k_conv.weight", f"{ref}.conv_c2m.0.weight", IGFO),  # OpenSTL: [i', g', f', o]
             copy("0.om_conv.weight", f"{ref}.conv_om.0.weight"),
             copy("0.fuse.weight", f"{ref}.conv_last.weight"),
             copy("1.x_conv.weight", "gradient_highway.x_concat.0.weight"),  # [p, s] in both
             copy("1.z_conv.weight", "gradient_highway.z_concat.0.weight")]
    outputs = {(0, "h"): f"{ref}.h", (0, "c"): f"{ref}.c", (0, "m"): f"{ref}.m", (1, "h"): "gradient_highway.z"}
    check(golden, cells, links, outputs)


def test_mim() -> None:
    golden = load_golden("cell_mim")
    cfg = golden["config"]
    m, k, grid = cfg["hidden"], cfg["kernel_size"], cfg["grid"]
    # OpenSTL detaches S before every step (vpbench's option detach_stationary; see the module docstring).
    cells = nn.ModuleList([DifferencingSTLSTMCell(cfg["in_channels"], m, k),
                           MIMBlock(m, m, k, grid, detach_stationary=True)])
    block, diff = "stlstm_layer.1", "stlstm_layer_diff.0"
    links = (stlstm_links("0", "stlstm_layer.0")
             + [gates("1.x_conv.weight", f"{block}.conv_x_cc.0.weight", IGFO),  # OpenSTL: [i, g, f', o]
                copy("1.h_conv.weight", f"{block}.conv_t_cc.0.weight"),  # [i, g, o] in both
                gates("1.m_conv.weight", f"{block}.conv_s_cc.0.weight", IGFO),  # OpenSTL: [i', g', f', o]
                copy("1.fuse.weight", f"{block}.conv_last.weight")]
             + mim_convlstm_links("1.mim_n", diff)  # OpenSTL's MIM-N is a module of the model, not of the block
             + mim_convlstm_links("1.mim_s", block))  # MIM-S: the block's MIMS
    outputs = {(0, s): f"stlstm_layer.0.{s}" for s in ("h", "c", "m")}
    outputs |= {(1, s): f"{block}.{s}" for s in ("h", "c", "m")}
    outputs |= {(1, "d"): f"{diff}.h", (1, "n"): f"{diff}.c", (1, "s"): f"{block}.convlstm_c"}
    check(golden, cells, links, outputs)


def test_golden_files_record_their_reference() -> None:
    for family in ("convlstm", "stlstm", "causallstm", "mim"):
        golden = load_golden(f"cell_{family}")
        assert "OpenSTL" in golden["reference"]["repository"] and len(golden["reference"]["commit"]) == 40
        assert golden["inputs"].dtype == torch.float64
        assert all(v.dtype == torch.float64 for v in golden["state_dict"].values())
