"""Golden files for the recurrent cells: OpenSTL's ConvLSTM, ST-LSTM, Causal LSTM + GHU and MIM.

Writes ``tests/golden/cell_{convlstm,stlstm,causallstm,mim}.pt`` (checked by
``tests/parity/test_parity_recurrent_cells.py``) from a clone of github.com/chengtan9907/OpenSTL (branch
OpenSTL-Lightning): ``openstl/modules/{convlstm,predrnn,predrnnpp,mim}_modules.py``, stacked by
OpenSTL's own model loops (``openstl/models/{convlstm,predrnn,mim}_model.py``) where the file stays
small, by a loop of two lines as in ``predrnnpp_model.py`` for Causal LSTM + GHU.

Every family runs T=3 steps from zero states on fixed random frames (B=2, 3 channels, hidden 4,
kernel 3, layer_norm off as in PredRNN's Moving MNIST setting), in float64. Forward hooks on the
cells record every step's outputs (h, c, m, ...; for a MIM block also its stationary cell S, which
OpenSTL keeps on the module as ``convlstm_c``). The loss is
``sum(k) (output[k] * loss_weights).mean()`` over every recorded output ``k`` (each [T, B, M, h, w]);
``grads`` are the reference's parameter gradients after it (zeros where it does not reach a
parameter, as for the parameters that OpenSTL's cells define and never use, listed in ``unused``).

All weights are redrawn uniformly in [-0.3, 0.3] (OpenSTL starts its MIM peepholes at zero and the
GHU at +-0.001, which would leave them untested). MIM runs on an 8x4 grid: non-square, so that a
transposed per-position peephole fails, and small enough to keep the file under 200 KB.
"""
from __future__ import annotations

import types
from collections import defaultdict
from pathlib import Path

import torch
from golden_files import save
from torch import nn

from vpbench.reference.clones import commit_of, load_file
from vpbench.reference.openstl_clone import load_model_class

SOURCES = ("openstl",)
REPOSITORY = "github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning)"
BATCH, CHANNELS, HIDDEN, KERNEL, STEPS = 2, 3, 4, 3, 3
GRID = (8, 8)
MIM_GRID = (8, 4)
SEED = 20240611
INIT_RANGE = 0.3
MODULE_FILES = ("convlstm_modules", "predrnn_modules", "predrnnpp_modules", "mim_modules")


def _configs(grid: tuple[int, int]) -> types.SimpleNamespace:
    """The ``configs`` OpenSTL's models read: STEPS steps, all of them on the given frames."""
    return types.SimpleNamespace(in_shape=(STEPS + 1, CHANNELS, *grid), patch_size=1, filter_size=KERNEL, stride=1,
                                 layer_norm=False, pre_seq_length=STEPS, aft_seq_length=1,
                                 reverse_scheduled_sampling=0)


def _redraw(model: nn.Module) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-INIT_RANGE, INIT_RANGE)


def _record(model: nn.Module, fields: dict[str, tuple[str, ...]]) -> dict[str, list[torch.Tensor]]:
    """Forward hooks on the cells ``fields`` names, collecting each call's outputs as '<cell>.<field>'."""
    records: dict[str, list[torch.Tensor]] = defaultdict(list)
    named = dict(model.named_modules())

    def hook_for(name: str):
        def hook(module: nn.Module, args, out) -> None:
            outs = out if isinstance(out, tuple) else (out,)
            for field, value in zip(fields[name], outs):
                records[f"{name}.{field}"].append(value)
            if hasattr(module, "convlstm_c"):  # MIMBlock: MIM-S's cell S, kept on the module
                records[f"{name}.convlstm_c"].append(module.convlstm_c)
        return hook

    for name in fields:
        named[name].register_forward_hook(hook_for(name))
    return records


def _finish(family: str, model: nn.Module, frames: torch.Tensor, records: dict[str, list[torch.Tensor]],
            reference: dict, config: dict, out: Path) -> Path:
    """Stack the records, backpropagate the fixed loss and write the golden file.

    The model's frame readout (``conv_last``, 1x1 over the top hidden state) is no part of a cell and
    is left out."""
    output = {k: torch.stack(v) for k, v in records.items()}
    for k, v in output.items():
        assert v.shape[0] == STEPS, f"{k}: {v.shape[0]} calls, expected one per step"
    loss_weights = torch.randn(next(iter(output.values())).shape)
    loss = sum((v * loss_weights).mean() for v in output.values())
    loss.backward()
    params = {n: p for n, p in model.named_parameters() if n != "conv_last.weight"}
    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone() for n, p in params.items()}
    unused = sorted(n for n, p in params.items() if p.grad is None)
    return save(out / f"cell_{family}.pt", reference=reference, config=config,
                state_dict={n: p.detach().clone() for n, p in params.items()},
                inputs=frames.detach().clone(), output={k: v.detach().clone() for k, v in output.items()},
                loss_weights=loss_weights, loss="sum over output keys k of (output[k] * loss_weights).mean()",
                grads=grads, unused=unused)


def _run_model(model: nn.Module, frames: torch.Tensor) -> None:
    """An OpenSTL RNN model's forward over all STEPS frames (frames [B, T, C, h, w]; OpenSTL reads [B, T, h, w, C])."""
    mask = torch.zeros(frames.shape[0], 1, *frames.shape[3:], frames.shape[2])
    model(frames.permute(0, 1, 3, 4, 2), mask, return_loss=False)


def _model_family(family: str, clone: Path, model_file: str, model_class: str, layers: int,
                  grid: tuple[int, int], fields: dict[str, tuple[str, ...]], out: Path) -> Path:
    torch.manual_seed(SEED)
    model = load_model_class(clone, model_file, model_class, MODULE_FILES)(layers, [HIDDEN] * layers, _configs(grid))
    _redraw(model)
    frames = torch.randn(BATCH, STEPS, CHANNELS, *grid)
    records = _record(model, fields)
    _run_model(model, frames)
    reference = {"repository": REPOSITORY, "commit": commit_of(clone),
                 "files": [f"openstl/models/{model_file}.py"] + [f"openstl/modules/{m}.py" for m in MODULE_FILES],
                 "model": f"{model_class}(num_layers={layers}, num_hidden={[HIDDEN] * layers}), cells' outputs hooked"}
    config = {"batch": BATCH, "in_channels": CHANNELS, "hidden": HIDDEN, "kernel_size": KERNEL, "steps": STEPS,
              "grid": grid, "layers": layers, "layer_norm": False, "init_range": INIT_RANGE, "seed": SEED,
              "inputs": "frames [B, T, C, h, w]; the reference read frames.permute(0, 1, 3, 4, 2)",
              "output": "'<reference cell>.<field>' -> [T, B, M, h, w]"}
    return _finish(family, model, frames, records, reference, config, out)


def _causal(clone: Path, out: Path) -> Path:
    """A Causal LSTM layer and the GHU reading its hidden state, as PredRNN++'s first two layers.

    PredRNNpp_Model needs two Causal LSTM layers; with the GHU that would pass 200 KB, so its loop
    for layer 0 and the GHU is run here: h, c, m = cell(x, h, c, m); z = GHU(h, z), z starting None."""
    torch.manual_seed(SEED)
    modules = load_file(clone, "openstl/modules/predrnnpp_modules.py")
    h_, w_ = GRID
    model = nn.Module()
    model.cell_list = nn.ModuleList([modules.CausalLSTMCell(CHANNELS, HIDDEN, h_, w_, KERNEL, 1, False)])
    model.gradient_highway = modules.GHU(HIDDEN, HIDDEN, h_, w_, KERNEL, 1, False)
    _redraw(model)
    frames = torch.randn(BATCH, STEPS, CHANNELS, *GRID)
    records = _record(model, {"cell_list.0": ("h", "c", "m"), "gradient_highway": ("z",)})
    h = c = m = torch.zeros(BATCH, HIDDEN, *GRID)
    z = None
    for t in range(STEPS):
        h, c, m = model.cell_list[0](frames[:, t], h, c, m)
        z = model.gradient_highway(h, z)
    reference = {"repository": REPOSITORY, "commit": commit_of(clone),
                 "files": ["openstl/modules/predrnnpp_modules.py", "openstl/models/predrnnpp_model.py (its loop)"],
                 "model": "CausalLSTMCell(3, 4), then GHU(4, 4) on its hidden state, as PredRNNpp_Model's layer 0 "
                          "and gradient highway"}
    config = {"batch": BATCH, "in_channels": CHANNELS, "hidden": HIDDEN, "kernel_size": KERNEL, "steps": STEPS,
              "grid": GRID, "layers": 1, "layer_norm": False, "init_range": INIT_RANGE, "seed": SEED,
              "inputs": "frames [B, T, C, h, w]", "output": "'<reference cell>.<field>' -> [T, B, M, h, w]"}
    return _finish("causallstm", model, frames, records, reference, config, out)


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    clone = clones["openstl"]
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return [
            _model_family("convlstm", clone, "convlstm_model", "ConvLSTM_Model", 2, GRID,
                          {f"cell_list.{i}": ("h", "c") for i in range(2)}, out),
            _model_family("stlstm", clone, "predrnn_model", "PredRNN_Model", 2, GRID,
                          {f"cell_list.{i}": ("h", "c", "m") for i in range(2)}, out),
            _causal(clone, out),
            _model_family("mim", clone, "mim_model", "MIM_Model", 2, MIM_GRID,
                          {"stlstm_layer.0": ("h", "c", "m"), "stlstm_layer.1": ("h", "c", "m"),
                           "stlstm_layer_diff.0": ("h", "c")}, out),
        ]
    finally:
        torch.set_default_dtype(dtype)
