"""Golden files of OpenSTL's PredRNN.V2 and E3D-LSTM as whole models.

Writes ``tests/golden/predrnnv2.pt`` from a clone of github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning:
``openstl/models/predrnnv2_model.py``, ``openstl/modules/predrnnv2_modules.py``) and ``tests/golden/e3dlstm.pt``
from a clone at branch OpenSTLv0.3.0 (``openstl/models/e3dlstm_model.py``, ``openstl/modules/e3dlstm_modules.py``;
the Lightning branch cannot build E3D-LSTM: its method reads ``self.args``). Both are read by
``tests/parity/test_parity_predrnnv2_e3dlstm.py``. The frames go in as OpenSTL's ``methods/predrnn.py`` feeds them
(``reshape_patch`` of ``openstl/utils/predrnn_utils.py``, with a scheduled-sampling mask).

Each model runs in float64 on one fixed 20-frame input (B=2, 2 channels, 8x4 frames: non-square, so that a
swapped height and width fails; patch 2, so that the order of the patch channels matters), 10 -> 10 frames,
layer_norm off, two layers, every weight redrawn uniformly in [-0.3, 0.3].

* PredRNN.V2 (hidden 4, filter 3, reverse scheduled sampling, decouple_beta 0.1): the training forward with
  two fixed masks, ``in1_out0`` (the true frame inside the input window, the model's own prediction past it)
  and ``in0_out1`` (the other way round), each with OpenSTL's loss (MSE of all 19 predictions + 0.1 x the
  decoupling term), the decoupling term alone and the parameter gradients of the loss; and ``test``, OpenSTL's
  test-time forward (``return_loss=False``, the test mask: ones for steps 1..9, zeros after).
* E3D-LSTM (hidden 2, OpenSTL's fixed (2, 5, 5) kernels, plain scheduled sampling): the training forward with
  a mask of zeros (``mask0``: its loss MSE + L1 of all 19 predictions, and gradients) and of ones (``mask1``:
  output and loss), and ``test``; and ``cell``, one call of the upper cell with a non-zero global memory (see
  ``cell_case``). Hidden 2 keeps the file under 300 KB.

``e3dlstm_memory.pt``: E3D-LSTM as in ``e3dlstm.pt`` (other weights and frames), its training forward with a mask
of zeros and the global memory M started at a random tensor instead of zeros (the reference's ``torch.zeros``
call for it returns that tensor), so that M is non-zero throughout: output, loss and gradients.

``predrnnv2_sampling.pt`` holds the reverse scheduled-sampling schedule as OpenSTL's own
``reserve_schedule_sampling_exp`` (``openstl/utils/predrnn_utils.py``) computes it: the probability of the true
frame inside the input window (``r_eta``) and past it (``eta``) at each of ``steps`` iterations, at OpenSTL's Moving
MNIST settings (``configs/mmnist/PredRNNv2.py``) and at small ones. The function returns only a random mask; each
probability is read from it exactly by bisecting the uniform draw it compares (``numpy.random.random_sample``
replaced by a constant): the mask is 1 where the draw is below the probability.

Each case holds ``output`` (all 19 next-frame predictions, raw, unpatched by ``reshape_patch_back`` to
[B, 19, C, H, W]) and ``loss``. ``flops`` is fvcore's count at this configuration, traced as OpenSTL's
``display_method_info`` does (batch 1, patched ones and a mask of ones, the training forward); ``full`` holds
the parameter count and fvcore FLOPs at OpenSTL's Moving MNIST configuration (4 x 128, filter 5, patch 4,
64x64, in float32), and for PredRNN.V2 the FLOPs of the adapter convolutions the decoupling term adds there.
"""
from __future__ import annotations

import logging
import types
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from golden_files import default_dtype, gradients, save
from torch import nn

from vpbench.reference.clones import commit_of, load_file
from vpbench.reference.openstl_clone import load_model_class

SOURCES = ("openstl", "openstl_v030")
REPOSITORIES = {"openstl": "github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning)",
                "openstl_v030": "github.com/chengtan9907/OpenSTL (branch OpenSTLv0.3.0)"}
BATCH, CHANNELS, FRAME, PATCH = 2, 2, (8, 4), 2
PRE, AFT = 10, 10
FULL = {"channels": 1, "frame": (64, 64), "patch": 4, "hidden": 128, "layers": 4, "kernel": 5}  # configs/mmnist
SEED = 20240613
INIT_RANGE = 0.3
DECOUPLE_BETA = 0.1


def configs(channels: int, frame: tuple[int, int], patch: int, kernel: int, reverse: int) -> types.SimpleNamespace:
    """The ``configs`` OpenSTL's models read (10 -> 10, layer_norm off; reverse scheduled sampling or plain)."""
    return types.SimpleNamespace(in_shape=(PRE + AFT, channels, *frame), patch_size=patch, filter_size=kernel,
                                 stride=1, layer_norm=0, pre_seq_length=PRE, aft_seq_length=AFT,
                                 total_length=PRE + AFT, reverse_scheduled_sampling=reverse,
                                 decouple_beta=DECOUPLE_BETA, device="cpu")


def build(clone: Path, model_file: str, module_file: str, model_class: str, hidden: int, layers: int,
          cfg: types.SimpleNamespace, source: str = "openstl") -> nn.Module:
    """OpenSTL's model (``source``: the clone's key in ``vpbench.reference.openstl_clone.SOURCES``)."""
    return load_model_class(clone, model_file, model_class, (module_file,), source=source)(layers, [hidden] * layers,
                                                                                         cfg)


def mask_of(cfg: types.SimpleNamespace, batch: int, values: tuple[float, float]) -> torch.Tensor:
    """A scheduled-sampling mask [B, S, h, w, p*p*C]: ``values`` = (inside the input window, past it).

    Reverse scheduled sampling: S = 18 (steps 1..18, the first 9 inside the window); plain: S = 9 (steps 10..18)."""
    _, c, h, w = cfg.in_shape
    p = cfg.patch_size
    inside = PRE - 1 if cfg.reverse_scheduled_sampling else 0
    mask = torch.full((batch, inside + AFT - 1, h // p, w // p, p * p * c), values[1])
    mask[:, :inside] = values[0]
    return mask


def fvcore_flops(model: nn.Module, cfg: types.SimpleNamespace) -> int:
    """fvcore's count for OpenSTL's FLOPs dummies (v0.3.0 ``openstl/api/train.py`` ``display_method_info``)."""
    from fvcore.nn import FlopCountAnalysis

    logging.getLogger("fvcore").setLevel(logging.ERROR)
    _, c, h, w = cfg.in_shape
    p = cfg.patch_size
    frames = torch.ones(1, PRE + AFT, h // p, w // p, p * p * c)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(model, (frames, torch.ones_like(mask_of(cfg, 1, (1.0, 1.0)))))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return int(analysis.total())


def redraw(model: nn.Module) -> None:
    with torch.no_grad():
        for q in model.parameters():
            q.uniform_(-INIT_RANGE, INIT_RANGE)


def run_cases(model: nn.Module, cfg: types.SimpleNamespace, utils: types.ModuleType, frames: torch.Tensor,
              training: dict[str, tuple[tuple[float, float], bool]]) -> dict[str, dict]:
    """The training forward per mask (``name -> (mask values, keep gradients)``), then the test forward."""
    patched = utils.reshape_patch(frames.permute(0, 1, 3, 4, 2).contiguous(), PATCH)

    def unpatch(x: torch.Tensor) -> torch.Tensor:  # reshape_patch_back, then [B, T, C, H, W]
        return utils.reshape_patch_back(x, PATCH).permute(0, 1, 4, 2, 3).contiguous()

    cases = {}
    for name, (values, keep_grads) in training.items():
        model.zero_grad(set_to_none=True)
        next_frames, loss = model(patched, mask_of(cfg, BATCH, values))
        loss.backward()
        cases[name] = {"mask": values, "output": unpatch(next_frames).detach().clone(), "loss": loss.detach().clone()}
        if keep_grads:
            cases[name]["grads"] = gradients(model)
    with torch.no_grad():  # methods/predrnn.py's test forward: frames 1..9 given, then the model's predictions
        next_frames, _ = model(patched, mask_of(cfg, BATCH, (1.0, 0.0)), return_loss=False)
    cases["test"] = {"mask": (1.0, 0.0), "output": unpatch(next_frames).clone()}
    return cases


def make_predrnnv2(clone: Path, out: Path) -> Path:
    torch.manual_seed(SEED)
    hidden, layers, kernel = 4, 2, 3
    cfg = configs(CHANNELS, FRAME, PATCH, kernel, reverse=1)
    files = ("predrnnv2_model", "predrnnv2_modules", "PredRNNv2_Model")
    model = build(clone, *files, hidden, layers, cfg)
    redraw(model)
    state = {n: q.detach().clone() for n, q in model.state_dict().items()}
    frames = torch.rand(BATCH, PRE + AFT, CHANNELS, *FRAME)
    utils = load_file(clone, "openstl/utils/predrnn_utils.py")
    cases = run_cases(model, cfg, utils, frames, {"in1_out0": ((1.0, 0.0), True), "in0_out1": ((0.0, 1.0), True)})
    for case in ("in1_out0", "in0_out1"):  # the decoupling term: (loss - MSE of all 19 predictions) / beta
        mse = nn.MSELoss()(cases[case]["output"], frames[:, 1:])
        cases[case]["decoupling"] = (cases[case]["loss"] - mse) / DECOUPLE_BETA
    full_cfg = configs(FULL["channels"], FULL["frame"], FULL["patch"], FULL["kernel"], reverse=1)
    with default_dtype(torch.float32):
        full = build(clone, *files, FULL["hidden"], FULL["layers"], full_cfg)
        grid = FULL["frame"][0] // FULL["patch"] * FULL["frame"][1] // FULL["patch"]
        # two 1x1 adapter convolutions per step and layer, M x M multiply-adds per position
        adapter = 2 * (PRE + AFT - 1) * FULL["layers"] * FULL["hidden"] ** 2 * grid
        full_stats = {"config": FULL, "params": sum(q.numel() for q in full.parameters()),
                      "flops": fvcore_flops(full, full_cfg), "adapter_flops": adapter}
    reference = {"repository": REPOSITORIES["openstl"], "commit": commit_of(clone),
                 "files": ["openstl/models/predrnnv2_model.py", "openstl/modules/predrnnv2_modules.py",
                           "openstl/utils/predrnn_utils.py", "openstl/methods/predrnn.py (its data path)"],
                 "model": f"PredRNNv2_Model(num_layers={layers}, num_hidden={[hidden] * layers}, configs)"}
    config = {"reference": {**vars(cfg), "num_hidden": [hidden] * layers},
              "vpbench": {"in_channels": CHANNELS, "img_size": FRAME, "patch_size": PATCH, "hidden": hidden,
                          "layers": layers, "kernel_size": kernel, "decouple_beta": DECOUPLE_BETA},
              "batch": BATCH, "input_frames": PRE, "output_frames": AFT, "init_range": INIT_RANGE, "seed": SEED,
              "inputs": "frames [B, 20, C, H, W] in [0, 1]; the reference read reshape_patch(frames.permute(0, 1, 3, "
                        "4, 2), patch)",
              "mask": "(inside the input window, past it): the reverse-sampling mask's values for steps 1..9, 10..18",
              "output": "[B, 19, C, H, W]: the predictions of frames 1..19, raw"}
    return save(out / "predrnnv2.pt", reference=reference, config=config, state_dict=state, inputs=frames,
                cases=cases, flops=fvcore_flops(model, cfg), full=full_stats)


def cell_case(cell: nn.Module, hidden: int, cfg: types.SimpleNamespace) -> dict:
    """One call of the upper cell on random states and a random, non-zero global memory (in the model the memory
    stays zero, which hides every weight that reads it): the window input x, h, c and the memory m
    [B, M, 2, h, w], two earlier memories ``earlier`` [B, 2 M, 2, h, w] (the eidetic cell is [earlier, c] on
    channels, as the model's loop builds it); outputs ``output``, ``new_cell`` and the memory it returns."""
    _, _, height, width = cfg.in_shape
    shape = (BATCH, hidden, 2, height // cfg.patch_size, width // cfg.patch_size)
    x, h, c, m = (torch.rand(shape) * 2 - 1 for _ in range(4))
    earlier = torch.rand(BATCH, 2 * hidden, *shape[2:]) * 2 - 1
    with torch.no_grad():
        output, new_cell, memory = cell(x, h, c, m, torch.cat([earlier, c], dim=1))
    return {"inputs": {"x": x, "h": h, "c": c, "m": m, "earlier": earlier},
            "output": output.clone(), "new_cell": new_cell.clone(), "memory": memory.clone()}


def make_e3dlstm(clone: Path, out: Path) -> Path:
    torch.manual_seed(SEED)
    hidden, layers, kernel = 2, 2, 5
    cfg = configs(CHANNELS, FRAME, PATCH, kernel, reverse=0)
    files = ("e3dlstm_model", "e3dlstm_modules", "E3DLSTM_Model")
    model = build(clone, *files, hidden, layers, cfg, source="openstl-v030")
    redraw(model)
    state = {n: q.detach().clone() for n, q in model.state_dict().items()}
    frames = torch.rand(BATCH, PRE + AFT, CHANNELS, *FRAME)
    utils = load_file(clone, "openstl/utils/predrnn_utils.py")
    cases = run_cases(model, cfg, utils, frames, {"mask0": ((1.0, 0.0), True), "mask1": ((1.0, 1.0), False)})
    cases["cell"] = cell_case(model.cell_list[1], hidden, cfg)
    full_cfg = configs(FULL["channels"], FULL["frame"], FULL["patch"], FULL["kernel"], reverse=0)
    with default_dtype(torch.float32):
        full = build(clone, *files, FULL["hidden"], FULL["layers"], full_cfg, source="openstl-v030")
        full_stats = {"config": FULL, "params": sum(q.numel() for q in full.parameters()),
                      "flops": fvcore_flops(full, full_cfg)}
    reference = {"repository": REPOSITORIES["openstl_v030"], "commit": commit_of(clone),
                 "files": ["openstl/models/e3dlstm_model.py", "openstl/modules/e3dlstm_modules.py",
                           "openstl/utils/predrnn_utils.py", "openstl/methods/predrnn.py (its data path)"],
                 "model": f"E3DLSTM_Model(num_layers={layers}, num_hidden={[hidden] * layers}, configs)"}
    config = {"reference": {**vars(cfg), "num_hidden": [hidden] * layers, "filter": (2, 5, 5)},
              "vpbench": {"in_channels": CHANNELS, "img_size": FRAME, "patch_size": PATCH, "hidden": hidden,
                          "layers": layers, "kernel_size": kernel, "variant": "openstl"},
              "batch": BATCH, "input_frames": PRE, "output_frames": AFT, "init_range": INIT_RANGE, "seed": SEED,
              "inputs": "frames [B, 20, C, H, W] in [0, 1]; the reference read reshape_patch(frames.permute(0, 1, 3, "
                        "4, 2), patch)",
              "mask": "(inside the input window, past it): plain scheduled sampling masks only steps 10..18",
              "output": "[B, 19, C, H, W]: the predictions of frames 1..19, raw"}
    return save(out / "e3dlstm.pt", reference=reference, config=config, state_dict=state, inputs=frames,
                cases=cases, flops=fvcore_flops(model, cfg), full=full_stats)


# (r_sampling_step_1, r_sampling_step_2, r_exp_alpha): configs/mmnist/PredRNNv2.py's, and small ones
SAMPLING_SETTINGS = ((25000, 50000, 5000), (3, 8, 2.5))


def sampling_probabilities(schedule, step: int, settings: tuple[int, int, float]) -> tuple[float, float]:
    """(r_eta, eta) of OpenSTL's ``reserve_schedule_sampling_exp`` at iteration ``step``: the smallest constant draw
    the mask marks 0 is the probability itself (draws below it mark 1), found by bisection to the last bit."""
    first, second, alpha = settings
    args = types.SimpleNamespace(in_shape=(4, 1, 1, 1), pre_seq_length=2, aft_seq_length=2, total_length=4,
                                 patch_size=1, r_sampling_step_1=first, r_sampling_step_2=second, r_exp_alpha=alpha,
                                 device="cpu")
    below, above = [-1.0, -1.0], [2.0, 2.0]  # (inside the window, past it): draws marked 1, marked 0
    while any(np.nextafter(b, a) != a for b, a in zip(below, above)):
        draws = [(b + a) / 2 for b, a in zip(below, above)]
        calls = iter(draws)  # the function draws the input window's tokens first, then the others
        with mock.patch.object(np.random, "random_sample", lambda shape: np.full(shape, next(calls))):
            mask = schedule(step, 1, args)[0, :, 0, 0, 0]  # [inside, past]
        for k in range(2):
            if mask[k]:
                below[k] = draws[k]
            else:
                above[k] = draws[k]
    return above[0], above[1]


def make_reverse_sampling(clone: Path, out: Path) -> Path:
    schedule = load_file(clone, "openstl/utils/predrnn_utils.py").reserve_schedule_sampling_exp
    cases = []
    for first, second, alpha in SAMPLING_SETTINGS:
        steps = sorted({0, 1, first - 1, first, first + 1, (first + second) // 2, second - 1, second, second + 1,
                        2 * second})
        values = [sampling_probabilities(schedule, step, (first, second, alpha)) for step in steps]
        cases.append({"train": {"sampling": "reverse", "r_sampling_step_1": first, "r_sampling_step_2": second,
                                "r_exp_alpha": alpha},
                      "steps": steps, "inside": torch.tensor([v[0] for v in values], dtype=torch.float64),
                      "past": torch.tensor([v[1] for v in values], dtype=torch.float64)})
    reference = {"repository": REPOSITORIES["openstl"], "commit": commit_of(clone),
                 "file": "openstl/utils/predrnn_utils.py (reserve_schedule_sampling_exp)"}
    return save(out / "predrnnv2_sampling.pt", reference=reference, cases=cases,
                notes="inside/past: the probability of the true frame inside the input window (r_eta) and past it "
                      "(eta) at each iteration of steps (OpenSTL's global_step: optimiser steps done)")


def make_e3dlstm_memory(clone: Path, out: Path) -> Path:
    """E3D-LSTM's training forward (mask of zeros) with the global memory M started at a fixed random tensor: the
    reference builds it with ``torch.zeros`` after one such call per layer, and that call returns the tensor instead.
    M then stays non-zero through the stack, so its path (W_mm, W_mi, W_mf, W_mg, the forget bias) is exercised."""
    torch.manual_seed(SEED + 1)
    hidden, layers, kernel = 2, 2, 5
    cfg = configs(CHANNELS, FRAME, PATCH, kernel, reverse=0)
    model = build(clone, "e3dlstm_model", "e3dlstm_modules", "E3DLSTM_Model", hidden, layers, cfg,
                  source="openstl-v030")
    redraw(model)
    state = {n: q.detach().clone() for n, q in model.state_dict().items()}
    frames = torch.rand(BATCH, PRE + AFT, CHANNELS, *FRAME)
    memory = torch.rand(BATCH, hidden, 2, FRAME[0] // PATCH, FRAME[1] // PATCH) * 2 - 1  # [B, M, window, h, w]
    utils = load_file(clone, "openstl/utils/predrnn_utils.py")
    patched = utils.reshape_patch(frames.permute(0, 1, 3, 4, 2).contiguous(), PATCH)
    zeros, calls = torch.zeros, iter(range(layers + 1))

    def zeros_then_memory(*args, **kwargs):
        return memory.clone() if next(calls, None) == layers else zeros(*args, **kwargs)

    mask = mask_of(cfg, BATCH, (1.0, 0.0))
    with mock.patch.object(torch, "zeros", zeros_then_memory):
        next_frames, loss = model(patched, mask)
    loss.backward()
    output = utils.reshape_patch_back(next_frames, PATCH).permute(0, 1, 4, 2, 3).contiguous()
    reference = {"repository": REPOSITORIES["openstl_v030"], "commit": commit_of(clone),
                 "files": ["openstl/models/e3dlstm_model.py", "openstl/modules/e3dlstm_modules.py"],
                 "model": f"E3DLSTM_Model(num_layers={layers}, num_hidden={[hidden] * layers}, configs), its initial "
                          "global memory replaced by `memory`"}
    config = {"vpbench": {"in_channels": CHANNELS, "img_size": FRAME, "patch_size": PATCH, "hidden": hidden,
                          "layers": layers, "kernel_size": kernel, "variant": "openstl"},
              "input_frames": PRE, "output_frames": AFT, "mask": (1.0, 0.0)}
    return save(out / "e3dlstm_memory.pt", reference=reference, config=config, state_dict=state, inputs=frames,
                memory=memory, output=output.detach().clone(), loss=loss.detach().clone(), grads=gradients(model),
                notes="memory [B, M, 2, h, w]: the global memory's first value; output [B, 19, C, H, W] raw; loss: "
                      "MSE + L1 of the 19 outputs (mask of zeros: the model's own predictions past the window)")


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    with default_dtype(torch.float64):
        return [make_predrnnv2(clones["openstl"], out), make_reverse_sampling(clones["openstl"], out),
                make_e3dlstm(clones["openstl_v030"], out), make_e3dlstm_memory(clones["openstl_v030"], out)]
