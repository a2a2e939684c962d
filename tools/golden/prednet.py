"""Golden file of PredNet as OpenSTL v0.3.0 builds and trains it.

Writes ``tests/golden/prednet.pt`` (read by ``tests/parity/test_parity_prednet.py``) from a clone of
github.com/chengtan9907/OpenSTL at branch OpenSTLv0.3.0 (``--openstl-v030``): ``openstl/models/prednet_model.py``
over ``openstl/utils/prednet_utils.py`` (``get_initial_states``), and the loss of ``openstl/methods/prednet.py``
(``TrainLossCalculator``), as ``bench speed`` imports them (``vpbench.reference.openstl``).

A tiny configuration in float64: 2 sequences of 3 + 3 frames, 2 x 8 x 12, three layers (stack sizes 2, 3, 4, every
filter 3 x 3), every bias drawn at random (OpenSTL zeroes them) so that a swapped bias is caught. It holds

* ``train``: the training forward over all six frames (``extrapolation=False``, as ``train_one_epoch``): every
  step's prediction and errors, the loss of weight mode ``L_0`` and its gradients, and the loss of ``L_all``;
* ``extrapolate``: the forward of ``_predict`` (``extrapolation=True`` past the third frame): the predictions of the
  last three frames, and the gradients of the mean of ``predictions * loss_weights``.

``flops`` is the reference's fvcore count of one step at this configuration (in total, by operator and by module)
and ``full`` its parameters and one step's FLOPs at OpenSTL's Moving MNIST configuration, each with OpenSTL's dummy
input (one frame, batch 1: its ``display_method_info``).
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import torch
from golden_files import default_dtype, gradients
from mmvp_dmvfn_predformer import fvcore_flops, save_compact, state_of
from torch import nn

from vpbench.reference.clones import commit_of
from vpbench.reference.openstl import PAIRS, prednet_reference
from vpbench.reference.openstl_clone import prednet_loss_class

SOURCES = ("openstl_v030",)
REPOSITORY = "github.com/chengtan9907/OpenSTL (branch OpenSTLv0.3.0)"
SEED = 20261207
TINY = {"frames": (3, 3), "shape": (2, 8, 12), "stack_sizes": (2, 3, 4)}
FULL = {"frames": (10, 10), "shape": (1, 64, 64), "stack_sizes": (1, 32, 64, 128, 256)}  # configs/mmnist/PredNet.py


def reference_classes(clone: Path) -> tuple[type[nn.Module], type]:
    """OpenSTL v0.3.0's ``PredNet_Model`` and ``TrainLossCalculator``."""
    model_class = PAIRS["prednet"].load(clone)
    return model_class, prednet_loss_class(clone)


def initial_states(clone_utils: types.ModuleType, shape: tuple, sizes: tuple, dtype: torch.dtype) -> list:
    """``get_initial_states`` as the method calls it (zeros in float32), floats cast to ``dtype``."""
    states = clone_utils.get_initial_states(shape, -2, -1, len(sizes), sizes, sizes, -3, "cpu")
    return [s.to(dtype) if s.is_floating_point() else s for s in states]


def flops_by_module(model: nn.Module, *inputs: torch.Tensor) -> dict[str, int]:
    """fvcore's count of ``model(*inputs)`` per module (float32)."""
    from fvcore.nn import FlopCountAnalysis

    with default_dtype(torch.float32), torch.no_grad():
        analysis = FlopCountAnalysis(model.float(), tuple(x.float() for x in inputs))
        analysis.unsupported_ops_warnings(False)
        return {name: int(count) for name, count in analysis.by_module().items()}


def make_prednet(clone: Path, out: Path) -> Path:
    model_class, loss_class = reference_classes(clone)
    utils = sys.modules["openstl.utils"]
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    model = prednet_reference(model_class, TINY["stack_sizes"], 3, (TINY["frames"][0], *TINY["shape"]))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.bias.copy_(0.3 * torch.randn(module.bias.shape, generator=generator))
    state = state_of(model)
    (t_in, t_out), sizes = TINY["frames"], TINY["stack_sizes"]
    inputs = torch.rand(2, t_in, *TINY["shape"], generator=generator)
    targets = torch.rand(2, t_out, *TINY["shape"], generator=generator)
    sequence = torch.cat([inputs, targets], dim=1)

    predictions, errors = model(sequence, initial_states(utils, sequence.shape, sizes, torch.float64))
    losses = {mode: loss_class(len(sizes), t_in + t_out, mode, "cpu").calculate_loss(errors)
              for mode in ("L_0", "L_all")}
    losses["L_0"].backward()
    train = {"predictions": torch.stack(predictions, dim=1).detach(), "errors": torch.stack(errors, dim=1).detach(),
             "loss": losses["L_0"].detach(), "loss_all": losses["L_all"].detach(), "grads": gradients(model)}

    model.zero_grad()
    predictions, _ = model(sequence, initial_states(utils, sequence.shape, sizes, torch.float64), extrapolation=True)
    predictions = torch.stack(predictions[t_in:], dim=1)
    loss_weights = torch.rand(predictions.shape, generator=generator)
    (predictions * loss_weights).mean().backward()
    extrapolate = {"predictions": predictions.detach(), "loss_weights": loss_weights, "grads": gradients(model)}

    with default_dtype(torch.float32):
        full = prednet_reference(model_class, FULL["stack_sizes"], 3, (FULL["frames"][0], *FULL["shape"]))
        full_flops = fvcore_flops(full, torch.ones(1, 1, *FULL["shape"]))
        full_params = sum(p.numel() for p in full.parameters())
    return save_compact(
        out / "prednet.pt",
        reference={"repository": REPOSITORY, "commit": commit_of(clone),
                   "file": "openstl/models/prednet_model.py, openstl/utils/prednet_utils.py, "
                           "openstl/methods/prednet.py (TrainLossCalculator)"},
        config={"reference": TINY, "frames": TINY["frames"], "shape": TINY["shape"],
                "vpbench": {"widths": list(sizes[1:]), "kernel_size": 3}},
        state_dict=state, inputs=inputs, targets=targets, train=train, extrapolate=extrapolate,
        flops={**fvcore_flops(model.float(), torch.ones(1, 1, *TINY["shape"])),
               "by_module": flops_by_module(model, torch.ones(1, 1, *TINY["shape"]))},
        full={"params": full_params, "flops": full_flops, "config": FULL},
        notes="train: predictions and errors [B, T, ...] of every step reading the true frames; extrapolate: the "
              "predictions of the target frames; flops: one step, batch 1, ones, as OpenSTL traces it")


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    with default_dtype(torch.float64):
        return [make_prednet(clones["openstl_v030"], out)]
