"""Golden file of IAM4VP as its authors build and train it.

Writes ``tests/golden/iam4vp.pt`` (read by ``tests/parity/test_parity_iam4vp.py``) from a clone of
github.com/seominseok0429/Implicit-Stacked-Autoregressive-Model-for-Video-Prediction (``--iam4vp``): ``model.py``
over ``modules.py``, imported alone (``modules.py`` needs einops: ``pip install --target DIR einops`` and
``PYTHONPATH=DIR``; timm stands in for its ``trunc_normal_``, which vpbench's ConvSC applies too).

The authors' code fixes Moving MNIST's shapes: 10 frames of 1 x 64 x 64 (``Decoder.forward`` reshapes to them), a
16 x 16 latent (``mask_token``, so ``N_S`` 4) and 64 channels for the step embedding, its per-block projections, the
merge of the decoded frames and the spatial attention. The tiny configuration keeps the shapes and replaces those
64-channel modules by the same classes of 8 (step embedding) and 4 (merge, attention, head) channels: hid_S 2,
N_S 4, N_T 2 (three translator blocks built, the first two run), float64. Layer norms, layer scales and mask tokens
are drawn at random; the head's bias is 0.5 and its weights small, so that the output lies inside (0, 1), where
vpbench's clamp changes nothing. The 2 input and target sequences are drawn from ``data_seed`` (the test draws
them again). It holds

* ``output_sketch``: the ``sketch`` of each of the 10 frames of the authors' training loop (``exp.py``): step s gets time 100 s and the earlier
  predictions, detached;
* ``step_losses``, ``loss`` and ``grads``: each step's MSE, their mean, and the mean of the steps' gradients (the
  authors take an optimiser step after each; here all at the same weights);
* ``unused``: the translator block the forward never runs.

``flops`` is fvcore's count of the 10-step rollout at this configuration (batch 1, ones), with ``encoder`` that of
one pass of the input frames through the encoder (the authors' forward encodes them again at every step), and ``full`` the
parameters at the authors' configuration (main.py: [10, 1, 64, 64], hid_S 64, N_S 4, N_T 8).
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from golden_files import ROOT, default_dtype, gradients
from mmvp_dmvfn_predformer import fvcore_flops, inside_share, save_compact, state_of
from torch import nn

sys.path.insert(0, str(ROOT / "tests"))
from helpers.parity import sketch  # noqa: E402  the test sketches its output the same way

from vpbench.reference.authors_clones import IAM4VP_SHAPE, iam4vp_files, iam4vp_reference
from vpbench.reference.clones import commit_of, restored_modules

SOURCES = ("iam4vp",)
REPOSITORY = "github.com/seominseok0429/Implicit-Stacked-Autoregressive-Model-for-Video-Prediction"
SEED = 20261209
DATA_SEED = 20261210  # the inputs and targets: torch.rand from a generator of this seed (the test draws them too)
SHAPE = IAM4VP_SHAPE  # fixed by the authors' code
TINY = {"hid_S": 2, "hid_T": 512, "N_S": 4, "N_T": 2}
WIDTHS = {"time_dim": 8, "readout_dim": 4}
FULL = {"hid_S": 64, "hid_T": 512, "N_S": 4, "N_T": 8}


@torch.no_grad()
def perturb(model: nn.Module, generator: torch.Generator) -> None:
    """Norms, layer scales and mask tokens at random; the head's output shifted into (0, 1)."""
    for name, p in model.named_parameters():
        if ".norm." in name:
            p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn(p.shape, generator=generator))
        elif name.endswith("gamma"):
            p.copy_(0.3 + 0.4 * torch.rand(p.shape, generator=generator))
        elif name == "mask_token":
            p.copy_(torch.randn(p.shape, generator=generator))
    model.readout.weight.mul_(0.05)
    model.readout.bias.fill_(0.5)


def sequences(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets [2, 10, 1, 64, 64] (float64), drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(2, *SHAPE, generator=generator, dtype=torch.float64) for _ in range(2))


class Rollout(nn.Module):
    """The authors' evaluation loop (``exp.py``'s ``vali``) as one module, for fvcore: [B, T, C, H, W] ->
    [B, T, C, H, W]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        predictions: list[torch.Tensor] = []
        for step in range(x.shape[1]):
            t = torch.tensor(step * 100).repeat(x.shape[0])
            predictions.append(self.model(x, predictions, t))
        return torch.stack(predictions, dim=1)


def make_iam4vp(clone: Path, out: Path) -> Path:
    with restored_modules("modules", "timm"):
        _, model_file = iam4vp_files(clone)
        generator = torch.Generator().manual_seed(SEED)
        torch.manual_seed(SEED)
        model = iam4vp_reference(model_file, **WIDTHS, **TINY)
        perturb(model, generator)
        state = state_of(model)
        inputs, targets = sequences(DATA_SEED)
        predictions, step_losses = [], []
        for step in range(SHAPE[0]):  # exp.py's training loop, without its optimiser steps
            t = torch.tensor(step * 100).repeat(inputs.shape[0])
            pred = model(inputs, predictions, t)
            loss = nn.functional.mse_loss(pred, targets[:, step])
            loss.backward()
            step_losses.append(loss.detach())
            predictions.append(pred.detach())
        output = torch.stack(predictions, dim=1)
        grads = {n: g / SHAPE[0] for n, g in gradients(model).items()}
        last = f"hid.st_block.{TINY['N_T']}."
        unused = [n for n, _ in model.named_parameters() if n.startswith(last)]
        flops = fvcore_flops(Rollout(model).eval().float(), torch.ones(1, *SHAPE))
        flops["encoder"] = fvcore_flops(model.enc, torch.ones(SHAPE[0], *SHAPE[1:]))["total"]
        with default_dtype(torch.float32), torch.device("meta"):
            full = model_file.IAM4VP(SHAPE, **FULL)
        full_unused = sum(p.numel() for n, p in full.named_parameters() if n.startswith(f"hid.st_block.{FULL['N_T']}."))
        full_info = {"params": sum(p.numel() for p in full.parameters()), "params_unused": full_unused,
                     "config": {"in_shape": SHAPE, **FULL}}
    share = inside_share(output)
    assert share == 1.0, f"{share:.0%} of the output inside (0, 1): vpbench's clamp would change it"
    return save_compact(
        out / "iam4vp.pt",
        reference={"repository": REPOSITORY, "commit": commit_of(clone), "file": "model.py (IAM4VP), modules.py"},
        config={"reference": {"in_shape": SHAPE, **TINY, **WIDTHS}, "seed": SEED,
                "vpbench": {"in_channels": SHAPE[1], "input_frames": SHAPE[0], "img_size": SHAPE[2:],
                            "hidden": TINY["hid_S"], "spatial_layers": TINY["N_S"], "blocks": TINY["N_T"],
                            **WIDTHS}},
        state_dict=state, data_seed=DATA_SEED, output_sketch=sketch(frames(output), SEED), step_losses=torch.stack(step_losses),
        loss=torch.stack(step_losses).mean(), grads=grads, unused=unused, flops=flops, full=full_info,
        notes="output: raw [B, T, C, H, W], the training loop's (feedback detached); grads: mean of the steps'; "
              "flops: the 10-step rollout, batch 1, ones")


def frames(output: torch.Tensor) -> dict[str, torch.Tensor]:
    """The output [B, T, ...] by frame, for :func:`sketch`."""
    return {f"frame {s}": output[:, s] for s in range(output.shape[1])}


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    with default_dtype(torch.float64):
        return [make_iam4vp(clones["iam4vp"], out)]
