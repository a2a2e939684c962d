"""VMRNN (Tang et al., *VMRNN: Integrating Vision Mamba and LSTM for Efficient and Accurate Spatiotemporal
Forecasting*, CVPR Workshops 2024), deep variant VMRNN-D, as its authors' code builds and trains it
(github.com/yyyujintang/VMRNN-PyTorch: ``openstl/models/VMRNN_model.py``, ``openstl/modules/VMRNN_modules.py``,
``openstl/modules/vmamba.py``, ``configs/mmnist/VMRNN-D.py``).

SwinLSTM-D's network (:class:`~vpbench.models.swinlstm.SwinRecurrentNet`: patch embedding, down- and up-sampling
levels, patch inflation + sigmoid) with the VMRNN cell: with X the input tokens and (H, C) the state, ``depth``
Vision-Mamba blocks (:mod:`vpbench.models.layers.vision_mamba`; a 2D selective scan, no MLP) give (paper Eq. 1-2)::

    O = VSB_n(... VSB_1(VSB_0(X, H)) ...)        block 0 reads Linear([LN(X), LN(H)])
    F = sigma(O),  C' = F o (C + tanh(O)),  H' = F o tanh(C')

The selective scan runs mamba-ssm's CUDA kernel where that package is installed on a GPU, else a plain PyTorch loop
(:mod:`vpbench.models.layers.selective_scan`). Training is the authors' (as OpenSTL's SwinLSTM): the MSE over all
T_in + T_out - 1 predicted frames (loss ``mse_all_frames``), the model reading the input frames and then its own
predictions. Stochastic depth rises linearly to 0.1 over each half's blocks. The authors' blocks past the first of a
cell hold a fusing layer their forward never reads, and their up-sampling half a patch embedding it never runs:
vpbench leaves both out.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from vpbench import presets
from vpbench.errors import UserError
from vpbench.models.layers.vision_mamba import VisionStateSpaceBlock
from vpbench.models.registry import register_model
from vpbench.models.swinlstm import CellState, SwinRecurrentNet


class VMRNNCell(nn.Module):
    """The VMRNN cell (see the module docstring). x, H, C: tokens [B, h w, D] of a ``grid``."""

    def __init__(self, dim: int, grid: Sequence[int], depth: int, d_state: int, drop_paths: Sequence[float]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(VisionStateSpaceBlock(dim, tuple(grid), d_state, drop_paths[i], fuse=i == 0)
                                    for i in range(depth))

    def forward(self, x: Tensor, state: CellState | None) -> tuple[Tensor, CellState]:
        h, c = state if state is not None else (torch.zeros_like(x), torch.zeros_like(x))
        out = self.blocks[0](x, h)
        for block in self.blocks[1:]:
            out = block(out)
        gate = torch.sigmoid(out)
        c = gate * (c + torch.tanh(out))
        h = gate * torch.tanh(c)
        return h, (h, c)


class VMRNN(SwinRecurrentNet):
    """VMRNN-D. ``d_state``: the selective scan's states per channel; ``window_size`` only pads the frames as
    SwinLSTM's (the authors' configuration keeps it; their cells have no windows). Shapes: frames
    [B, T_in, C, H, W] -> [B, horizon, C, H, W]."""

    def __init__(self, *, in_channels: int = 1, img_size: Sequence[int] = (64, 64), patch_size: int = 2,
                 embed_dim: int = 128, depths_down: Sequence[int] = (2, 2), depths_up: Sequence[int] = (2, 2),
                 d_state: int = 16, window_size: int = 4, drop_path: float = 0.1) -> None:
        depths_down, depths_up = list(depths_down), list(depths_up)
        if patch_size < 2 or embed_dim < 2 or embed_dim % 2 or d_state < 1 or not 0 <= drop_path < 1:
            raise UserError(f"VMRNN needs patch_size >= 2 (its output layer is a transposed convolution of that "
                            f"stride), an even embed_dim, d_state >= 1 and drop_path in [0, 1), got {patch_size}, "
                            f"{embed_dim}, {d_state}, {drop_path}")
        if not depths_down or len(depths_up) != len(depths_down) or min(depths_down + depths_up) < 1:
            raise UserError(f"VMRNN needs one positive depth per level in depths_down and depths_up, got "
                            f"{depths_down}, {depths_up}")

        def cell(dim: int, grid: Sequence[int], depth: int, level: int, rates: Sequence[float]) -> nn.Module:
            return VMRNNCell(dim, grid, depth, d_state, rates)

        super().__init__(cell, in_channels=in_channels, img_size=img_size, patch_size=patch_size,
                         embed_dim=embed_dim, depths_down=depths_down, depths_up=depths_up, window_size=window_size,
                         drop_path=drop_path, reverse_up_rates=False)


# The authors' configs/mmnist/VMRNN-D.py (drop_path 0.1 and d_state 16 their modules' defaults).
FULL = {"patch_size": 2, "embed_dim": 128, "depths_down": [2, 2], "depths_up": [2, 2], "d_state": 16,
        "window_size": 4, "drop_path": 0.1}
VMRNN_PRESETS: dict[str, dict[str, Any]] = {
    "paper": FULL, "openstl": FULL,
    # A training step costs about Bt x 8 embed_dim x d_state x (64 / patch)^2 per scan pass on a CPU (no fused
    # kernel there): quick keeps one block per level on 16 x 16 tokens so that a step is under a second.
    "quick": {**FULL, "patch_size": 4, "embed_dim": 8, "depths_down": [1, 1], "depths_up": [1, 1], "d_state": 4},
    "tiny": {**FULL, "embed_dim": 8, "depths_down": [1, 1], "depths_up": [1, 1], "d_state": 4},
}
VMRNN_PRESETS.update({"openstl-quick": VMRNN_PRESETS["quick"], "openstl-tiny": VMRNN_PRESETS["tiny"]})
RATES = {"full": 1.0e-4, "quick": 2.0e-3, "tiny": 2.0e-3}  # the authors' 1e-4; the short runs need more


def vmrnn_recipe(preset: str) -> dict[str, Any]:
    """The authors' Moving MNIST training (configs/mmnist/VMRNN-D.py): Adam at lr 1e-4, a cosine schedule (per epoch;
    theirs warms up for 5 epochs), batch 4, on ``mse_all_frames`` without scheduled sampling; the smaller scales at
    :data:`RATES` with their own batch sizes."""
    scale = presets.get(preset).scale
    recipe = {**presets.protocol_recipe(presets.NAMES[("openstl", scale)]), "loss": "mse_all_frames",
              "scheduler": "cosine", "lr": RATES[scale]}
    return {**recipe, "batch_size": 4} if scale == "full" else recipe


register_model("vmrnn", label="VMRNN", tags=(), rank=135, defaults=VMRNN_PRESETS,
               recipe={preset: vmrnn_recipe(preset) for preset in presets.PRESETS})(VMRNN)
