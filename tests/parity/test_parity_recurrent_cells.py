"""vpbench's recurrent cells against OpenSTL's (golden files from ``tools/golden/recurrent_cells.py``).

Each golden file holds OpenSTL's cells (layer_norm off) run for 3 steps from zero states in float64:
their weights, every step's outputs and the parameter gradients of a fixed loss over all of them.
Here vpbench's cells get the same weights through the package's mapping
(:mod:`vpbench.reference.mappings.recurrent`: OpenSTL's separate convolutions stacked into vpbench's
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
from helpers.parity import assert_close, assert_grads, by_reference, grads_of, load_golden, load_mapped
from torch import Tensor, nn

from vpbench.models.causallstm import CausalLSTMCell
from vpbench.models.convlstm import ConvLSTMCell
from vpbench.models.layers.ghu import GHU
from vpbench.models.mim import DifferencingSTLSTMCell, MIMBlock
from vpbench.models.stlstm import STLSTMCell
from vpbench.reference.mappings.links import Link, WeightMap
from vpbench.reference.mappings.recurrent import cell_links


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
    weights = WeightMap(list(links), unused=frozenset(golden["unused"]))
    load_mapped(cells.double(), weights, golden["state_dict"])
    ours = run(cells, golden["inputs"])
    for key, ref in outputs.items():
        assert_close(ours[key], golden["output"][ref], f"layer {key[0]} state {key[1]!r} vs {ref}")
    loss = sum((ours[key] * golden["loss_weights"]).mean() for key in outputs)
    loss.backward()
    assert_grads(grads_of(cells), golden["grads"], by_reference(weights, golden["state_dict"]))


def test_convlstm() -> None:
    golden = load_golden("cell_convlstm")
    cfg = golden["config"]
    m, k, grid = cfg["hidden"], cfg["kernel_size"], cfg["grid"]
    # OpenSTL's ConvLSTM: no peepholes, no forget bias (sigma(f), not sigma(f + 1)). See the module docstring.
    openstl = {"peephole": False, "forget_bias": 0.0}
    cells = nn.ModuleList([ConvLSTMCell(cfg["in_channels"], m, k, grid, **openstl),
                           ConvLSTMCell(m, m, k, grid, **openstl)])
    outputs = {(i, s): f"cell_list.{i}.{s}" for i in range(2) for s in ("h", "c")}
    check(golden, cells, cell_links("convlstm", 2, prefix=""), outputs)


def test_stlstm() -> None:
    golden = load_golden("cell_stlstm")
    cfg = golden["config"]
    m, k = cfg["hidden"], cfg["kernel_size"]
    cells = nn.ModuleList([STLSTMCell(cfg["in_channels"], m, k), STLSTMCell(m, m, k)])
    outputs = {(i, s): f"cell_list.{i}.{s}" for i in range(2) for s in ("h", "c", "m")}
    check(golden, cells, cell_links("stlstm", 2, prefix=""), outputs)


def test_causallstm_and_ghu() -> None:
    golden = load_golden("cell_causallstm")
    cfg = golden["config"]
    m, k = cfg["hidden"], cfg["kernel_size"]
    cells = nn.ModuleList([CausalLSTMCell(cfg["in_channels"], m, k), GHU(m, m, k)])
    ref = "cell_list.0"  # vpbench's cell 1 is the GHU
    outputs = {(0, "h"): f"{ref}.h", (0, "c"): f"{ref}.c", (0, "m"): f"{ref}.m", (1, "h"): "gradient_highway.z"}
    check(golden, cells, cell_links("causallstm", 1, prefix=""), outputs)


def test_mim() -> None:
    golden = load_golden("cell_mim")
    cfg = golden["config"]
    m, k, grid = cfg["hidden"], cfg["kernel_size"], cfg["grid"]
    # OpenSTL detaches S before every step (vpbench's option detach_stationary; see the module docstring).
    cells = nn.ModuleList([DifferencingSTLSTMCell(cfg["in_channels"], m, k),
                           MIMBlock(m, m, k, grid, detach_stationary=True)])
    block, diff = "stlstm_layer.1", "stlstm_layer_diff.0"  # OpenSTL's MIM-N is the model's, not the block's
    outputs = {(0, s): f"stlstm_layer.0.{s}" for s in ("h", "c", "m")}
    outputs |= {(1, s): f"{block}.{s}" for s in ("h", "c", "m")}
    outputs |= {(1, "d"): f"{diff}.h", (1, "n"): f"{diff}.c", (1, "s"): f"{block}.convlstm_c"}
    check(golden, cells, cell_links("mim", 2, prefix=""), outputs)


def test_golden_files_record_their_reference() -> None:
    for family in ("convlstm", "stlstm", "causallstm", "mim"):
        golden = load_golden(f"cell_{family}")
        assert "OpenSTL" in golden["reference"]["repository"] and len(golden["reference"]["commit"]) == 40
        assert golden["inputs"].dtype == torch.float64
        assert all(v.dtype == torch.float64 for v in golden["state_dict"].values())
