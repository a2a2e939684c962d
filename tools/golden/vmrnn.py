"""Golden file of VMRNN-D as its authors build and train it.

Writes ``tests/golden/vmrnn.pt`` (read by ``tests/parity/test_parity_vmrnn.py``) from a clone of
github.com/yyyujintang/VMRNN-PyTorch (``--vmrnn``): ``openstl/models/VMRNN_model.py`` (``VMRNN_D_Model``) over
``openstl/modules/VMRNN_modules.py`` and ``vmamba.py``, each imported alone by vpbench's loader, with timm 0.6.11
(``pip install --no-deps --target DIR timm==0.6.11``), einops and fvcore importable. Their SS2D calls mamba-ssm's
fused ``selective_scan_fn``, a CUDA kernel: here the clone of github.com/state-spaces/mamba (``--mamba``) gives its
pure-PyTorch ``selective_scan_ref`` instead (tools/golden/selective_scan.py checks vpbench's scan against it). The
reference's SS2D computes in float32 whatever the model's dtype, so the file is float32.

A tiny configuration: 2 sequences of 2 + 2 frames of 1 x 16 x 16, patch 2, embed_dim 4 (one step rank), d_state 3,
depths down [2, 1] and up [1, 2] (cells of two blocks: the second's fusing layer unused), drop-path rate 0.1 (the
modules' default). Layer norms are drawn at random. It holds the eval-mode predictions of frames 2..4, the
training-mode ones (drop-path masks drawn from seed :data:`SEED`), the MSE over them (the model's own loss) and its
gradients; ``full``: the parameters at the authors' Moving MNIST configuration (configs/mmnist/VMRNN-D.py).
"""
from __future__ import annotations

import types
from pathlib import Path

import torch
from golden_files import default_dtype, gradients, save
from mmvp_dmvfn_predformer import state_of
from torch import nn

from vpbench.reference.authors_clones import vmrnn_model_class
from vpbench.reference.clones import commit_of, restored_modules
from vpbench.reference.openstl_clone import openstl_timm

SOURCES = ("vmrnn", "mamba")
REPOSITORY = "github.com/yyyujintang/VMRNN-PyTorch"
SEED = 20261212
TINY = {"frames": (2, 2), "shape": (1, 16, 16), "patch_size": 2, "embed_dim": 4, "depths_down": [2, 1],
        "depths_up": [1, 2], "heads": [1, 2], "window_size": 4, "d_state": 3}
FULL = {**TINY, "frames": (10, 10), "shape": (1, 64, 64), "embed_dim": 128, "depths_down": [2, 2],
        "depths_up": [2, 2], "heads": [4, 8], "d_state": 16}  # configs/mmnist/VMRNN-D.py


def build(clone: Path, mamba: Path, config: dict) -> nn.Module:
    """The authors' VMRNN_D_Model at ``config``, its SS2D scanning with mamba-ssm's reference scan."""
    configs = types.SimpleNamespace(in_shape=(config["frames"][0], *config["shape"]), patch_size=config["patch_size"],
                                    embed_dim=config["embed_dim"], window_size=config["window_size"])
    model_class = vmrnn_model_class(clone, mamba)
    return model_class(config["depths_down"], config["depths_up"], config["heads"], configs, d_state=config["d_state"])


@torch.no_grad()
def perturb(model: nn.Module, generator: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=generator))
            m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=generator))


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    with default_dtype(torch.float32), openstl_timm() as timm_version, restored_modules("mamba_ssm"):
        generator = torch.Generator().manual_seed(SEED)
        torch.manual_seed(SEED)
        model = build(clones["vmrnn"], clones["mamba"], TINY)
        perturb(model, generator)
        (t_in, t_out), shape = TINY["frames"], TINY["shape"]
        frames = torch.rand(2, t_in + t_out, *shape, generator=generator)
        channels_last = frames.permute(0, 1, 3, 4, 2)
        with torch.no_grad():
            eval_output, _ = model.eval()(channels_last)
        torch.manual_seed(SEED)
        output, loss = model.train()(channels_last)
        loss.backward()
        full = build(clones["vmrnn"], clones["mamba"], FULL)
        unused = [n for n, _ in full.named_parameters() if n.startswith("Upsample.patch_embed.")
                  or ".linear." in n and int(n.split(".VSBs.")[1].split(".")[0]) > 0]
        full_info = {"params": sum(p.numel() for p in full.parameters()),
                     "params_unused": sum(p.numel() for n, p in full.named_parameters() if n in unused),
                     "config": FULL}
        return [save(out / "vmrnn.pt",
                     reference={"repository": REPOSITORY, "commit": commit_of(clones["vmrnn"]), "timm": timm_version,
                                "scan": f"github.com/state-spaces/mamba {commit_of(clones['mamba'])} selective_scan_ref",
                                "files": "openstl/models/VMRNN_model.py, openstl/modules/VMRNN_modules.py, vmamba.py"},
                     config={"vpbench": {k: TINY[k] for k in ("patch_size", "embed_dim", "depths_down", "depths_up",
                                                              "window_size", "d_state")} | {"drop_path": 0.1},
                             "frames": TINY["frames"], "shape": shape, "seed": SEED},
                     state_dict=state_of(model), inputs=frames[:, :t_in], targets=frames[:, t_in:],
                     eval_output=eval_output.permute(0, 1, 4, 2, 3).clone(),
                     output=output.detach().permute(0, 1, 4, 2, 3).clone(), loss=loss.detach(),
                     grads=gradients(model), full=full_info,
                     notes="float32; outputs: the predictions of frames 2..T [B, T - 1, C, H, W]")]
