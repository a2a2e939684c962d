"""Golden file of CrevNet as OpenSTL v0.3.0 builds and trains it.

Writes ``tests/golden/crevnet.pt`` (read by ``tests/parity/test_parity_crevnet.py``) from a clone of
github.com/chengtan9907/OpenSTL at branch OpenSTLv0.3.0 (``--openstl-v030``): ``openstl/models/crevnet_model.py``
over ``openstl/modules/crevnet_modules.py``, each file imported alone. Its states are made with ``.cuda()``: here
``.cuda()`` is the identity.

A tiny configuration in float64: 2 sequences of 4 + 3 frames of 1 x 16 x 24 (OpenSTL's method passes
``pre_seq_length`` 4 - 2 and ``n_eval`` 7 - 2 windows), two predictor layers of 32 channels. ``CrevNet_Model``
hard-codes its autoencoder's blocks (4, 5, 3) and its states' 8 x 8 grid: the autoencoder is rebuilt after
construction from the reference's own class with one block per stage, and the grid set to 2 x 3. Its two cells
alone hold 1.2 M parameters, too many to store with their gradients: the weights are drawn from a seed by
``tests/helpers/parity.py``'s ``seeded_weights`` (the file holds their names and shapes, and the BatchNorms'
running statistics, drawn at random, as ``buffers``), and each gradient is kept as its ``sketch`` (its dot product
with a seeded random tensor, and its norm). It holds

* ``train``: the training forward (``training=True``, training mode): each step's decoded window (recorded where
  the model calls its criterion), the loss (the sum of the steps' MSEs), its gradients' sketches and the BatchNorm
  statistics after it;
* ``predictions``: the evaluation-mode forward of ``_predict`` (``training=False``), [B, 3, 1, H, W].

``flops`` is fvcore's count of the reference's teacher-forced forward in evaluation mode at batch 1 (its steps
cost what vpbench's prediction steps cost), ``full`` its parameters and the FLOPs OpenSTL publishes the way it
traces them (the training forward at batch 16) at its Moving MNIST configuration.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from golden_files import ROOT, default_dtype, gradients
from mmvp_dmvfn_predformer import fvcore_flops, perturb_norms, save_compact, state_of
from torch import nn

sys.path.insert(0, str(ROOT / "tests"))
from helpers.parity import seeded_weights, sketch  # noqa: E402  the tests regenerate the weights and sketches

from vpbench.datasets import DataSpec
from vpbench.reference.clones import commit_of
from vpbench.reference.openstl import PAIRS, crevnet_reference
from vpbench.reference.openstl_clone import cuda_is_identity

SOURCES = ("openstl_v030",)
REPOSITORY = "github.com/chengtan9907/OpenSTL (branch OpenSTLv0.3.0)"
SEED = 20261209
SKETCH_SEED = 7
TINY = {"frames": (4, 3), "shape": (1, 16, 24), "layers": 2, "blocks": [1, 1, 1], "batch": 2}
FULL = {"frames": (10, 10), "shape": (1, 64, 64), "layers": 8, "blocks": [4, 5, 3], "batch": 16}  # configs/mmnist


def build(clone: Path, config: dict, batch: int) -> nn.Module:
    """``CrevNet_Model`` as ``bench speed`` builds it (:func:`vpbench.reference.openstl.crevnet_reference`)."""
    spec = DataSpec("golden", *config["frames"], *config["shape"])
    return crevnet_reference(PAIRS["crevnet"].load(clone), spec, config["layers"], config["blocks"], batch)


class RecordingMSE(nn.MSELoss):
    """The model's criterion, keeping each prediction it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        self.inputs.append(pred.detach().clone())
        return F.mse_loss(pred, truth)


def make_crevnet(clone: Path, out: Path) -> Path:
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    model = build(clone, TINY, TINY["batch"])
    perturb_norms(model, generator)  # the BatchNorms' running statistics
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    with torch.no_grad():
        for name, value in seeded_weights(shapes, SEED).items():
            model.get_parameter(name).copy_(value)
    state = state_of(model)
    buffers = {n: b for n, b in state.items() if n not in shapes}
    (t_in, t_out), shape = TINY["frames"], TINY["shape"]
    inputs = torch.rand(TINY["batch"], t_in, *shape, generator=generator)
    targets = torch.rand(TINY["batch"], t_out, *shape, generator=generator)
    sequence = torch.cat([inputs, targets], dim=1)

    model.criterion = RecordingMSE()
    with cuda_is_identity():
        loss = model.train()(sequence, training=True)
    loss.backward()
    train = {"decoded": torch.stack(model.criterion.inputs, dim=1), "loss": loss.detach(),
             "grads": sketch(gradients(model), SKETCH_SEED),
             "running_stats": {n: b.clone() for n, b in model.state_dict().items() if "running" in n
                               or "num_batches" in n}}
    model.criterion = nn.MSELoss()
    with cuda_is_identity(), torch.no_grad():
        model.load_state_dict(state)
        predictions, _ = model.eval()(sequence, training=False, return_loss=False)

    with cuda_is_identity():
        single = build(clone, TINY, 1)
        flops = fvcore_flops(single.eval().float(), torch.ones(1, t_in + t_out, *shape))
        with default_dtype(torch.float32):
            full = build(clone, FULL, FULL["batch"])
            full_info = {"params": sum(p.numel() for p in full.parameters()), "config": FULL,
                         "flops": fvcore_flops(full.train(), torch.ones(FULL["batch"], sum(FULL["frames"]),
                                                                        *FULL["shape"]))}
    return save_compact(
        out / "crevnet.pt",
        reference={"repository": REPOSITORY, "commit": commit_of(clone),
                   "file": "openstl/models/crevnet_model.py, openstl/modules/crevnet_modules.py"},
        config={"reference": TINY, "frames": TINY["frames"], "shape": TINY["shape"],
                "vpbench": {"layers": TINY["layers"], "blocks": TINY["blocks"]}},
        parameter_shapes=shapes, weight_seed=SEED, sketch_seed=SKETCH_SEED, buffers=buffers, inputs=inputs,
        targets=targets, train=train, predictions=predictions, flops=flops, full=full_info,
        notes="train.decoded: [B, steps, C, 3, H, W], step i decoded from window i - 1; predictions: raw, "
              "_predict's; flops: teacher-forced forward in eval mode, batch 1, ones")


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    with default_dtype(torch.float64):
        return [make_crevnet(clones["openstl_v030"], out)]



