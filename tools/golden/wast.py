"""Golden file of WaST as OpenSTL's Lightning branch builds and trains it.

Writes ``tests/golden/wast.pt`` (read by ``tests/parity/test_parity_wast.py``) from a clone of
github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning, ``--openstl``): ``openstl/modules/wast_modules.py``
(``WaST_level1``, ``HighFocalFrequencyLoss``), imported alone. Its modules need pywt, einops and timm 0.9
(``timm.layers``, ``timm.models._efficientnet_blocks``; OpenSTL's environment pins timm<=0.6.11, which lacks them):
``pip install --no-deps --target DIR timm==0.9.12 PyWavelets einops`` and ``PYTHONPATH=DIR``; vpbench's loader
(``vpbench.reference.openstl_clone.wast_modules``, as ``bench speed``) imports timm's files without its package
``__init__`` files, torchvision standing in. The loss puts its wavelet filters and mask on CUDA (``.cuda()``): here
``.cuda()`` is the identity while it is built and called.

A tiny configuration in float64: 2 sequences of 2 frames of 2 x 12 x 8, encoder_dim 2, block_list [1, 2, 1],
mlp_ratio 1.5 (timm rounds the mixers' 6 and 12 channels up to 8 and 16), drop_path_rate 0.75 (rates 0, 0.25,
0.5, 0.75: the same from a float32 and a float64 linspace). Every BatchNorm's affine and running statistics, and
every layer scale, are drawn at random; the head's bias is 0.5 and its weights small, so that the output lies inside
(0, 1), where vpbench's clamp changes nothing. It holds

* ``eval_output``: the evaluation-mode output;
* ``output``, ``mse``, ``hffl``, ``loss`` and ``grads``: the training-mode output (drop-path masks drawn from seed
  :data:`SEED`), its MSE, the reference's ``HighFocalFrequencyLoss(loss_weight=0.5)`` and their sum (the method's
  ``training_step``), the gradients of that sum, and ``running_stats``, the BatchNorm statistics after it;
* ``unused``: the parameters the reference's forward never reads (every block's ``layer_scale_2``).

``flops`` is the reference's fvcore count at this configuration with OpenSTL's dummy input (ones, batch 1) and
``full`` its parameters and FLOPs at its published configuration (configs/taxibj/WaST.py: 4 -> 4 frames of
2 x 32 x 32, encoder_dim 20, block_list [2, 8, 2]).
"""
from __future__ import annotations

from pathlib import Path

import torch
from golden_files import default_dtype, gradients
from mmvp_dmvfn_predformer import fvcore_flops, inside_share, perturb_norms, save_compact, state_of
from torch import nn

from vpbench.reference.clones import commit_of
from vpbench.reference.openstl_clone import WAST_TIMM_VERSION, cuda_is_identity, timm_folder, wast_modules

SOURCES = ("openstl",)
REPOSITORY = "github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning)"
SEED = 20261208
TINY = {"in_shape": (2, 2, 12, 8), "encoder_dim": 2, "block_list": [1, 2, 1], "mlp_ratio": 1.5,
        "drop_path_rate": 0.75}
LOSS_WEIGHT = 0.5
FULL = {"in_shape": (4, 2, 32, 32), "encoder_dim": 20, "block_list": [2, 8, 2], "mlp_ratio": 4.0}  # taxibj


@torch.no_grad()
def perturb(model: nn.Module, generator: torch.Generator) -> None:
    """BatchNorms and layer scales at random; the head's output shifted into (0, 1)."""
    perturb_norms(model, generator)
    for name, p in model.named_parameters():
        if name.endswith(("layer_scale_1", "layer_scale_2")):
            p.copy_(0.3 + 0.4 * torch.rand(p.shape, generator=generator))
    head = model.conv_out[2]
    head.weight.mul_(0.05)
    head.bias.fill_(0.5)


def make_wast(clone: Path, out: Path) -> Path:
    modules = wast_modules(clone)
    timm_version = timm_folder(WAST_TIMM_VERSION)[1]
    generator = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    model = modules.WaST_level1(**TINY)
    perturb(model, generator)
    state = state_of(model)
    inputs = torch.rand(2, *TINY["in_shape"], generator=generator)
    targets = torch.rand(2, *TINY["in_shape"], generator=generator)
    with torch.no_grad():
        eval_output = model.eval()(inputs)
    torch.manual_seed(SEED)
    output = model.train()(inputs)
    with cuda_is_identity():
        hffl = modules.HighFocalFrequencyLoss(loss_weight=LOSS_WEIGHT)(output, targets, reshape=True)
    mse = nn.functional.mse_loss(output, targets)
    loss = mse + hffl
    loss.backward()
    grads = gradients(model)  # before the FLOP count casts the model to float32
    unused = [n for n, _ in model.named_parameters() if n.endswith("layer_scale_2")]
    running = {n: b.clone() for n, b in model.state_dict().items() if "running" in n or "num_batches" in n}
    flops = fvcore_flops(model.eval().float(), torch.ones(1, *TINY["in_shape"]))
    with default_dtype(torch.float32):
        full = modules.WaST_level1(**FULL).eval()
        full_unused = sum(p.numel() for n, p in full.named_parameters() if n.endswith("layer_scale_2"))
        full_info = {"params": sum(p.numel() for p in full.parameters()), "params_unused": full_unused,
                     "flops": fvcore_flops(full, torch.ones(1, *FULL["in_shape"])), "config": FULL}
    for what, x in (("evaluation", eval_output), ("training", output)):
        assert inside_share(x) == 1.0, f"the {what} output leaves (0, 1): vpbench's clamp would change it"
    return save_compact(
        out / "wast.pt",
        reference={"repository": REPOSITORY, "commit": commit_of(clone), "timm": timm_version,
                   "file": "openstl/modules/wast_modules.py (WaST_level1, HighFocalFrequencyLoss)"},
        config={"reference": TINY, "frames": (TINY["in_shape"][0],) * 2, "shape": TINY["in_shape"][1:],
                "loss_weight": LOSS_WEIGHT, "seed": SEED,
                "vpbench": {"hidden": TINY["encoder_dim"], "blocks": TINY["block_list"],
                            "mlp_ratio": TINY["mlp_ratio"], "drop_path": TINY["drop_path_rate"]}},
        state_dict=state, inputs=inputs, targets=targets, eval_output=eval_output, output=output.detach(),
        mse=mse.detach(), hffl=hffl.detach(), loss=loss.detach(), grads=grads, running_stats=running,
        unused=unused, flops=flops, full=full_info,
        notes="output: raw [B, T, C, H, W]; training mode with drop-path masks from torch.manual_seed(seed); "
              "flops: eval mode, batch 1, ones")


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    with default_dtype(torch.float64):
        return [make_wast(clones["openstl"], out)]
