"""SwinLSTM (Tang et al., *SwinLSTM: Improving Spatiotemporal Prediction Accuracy using Swin Transformer and
LSTM*, ICCV 2023), deep variant SwinLSTM-D, as OpenSTL builds it (``openstl/models/swinlstm_model.py``,
``openstl/modules/swinlstm_modules.py``; Swin blocks of timm 0.6.11, here :mod:`vpbench.models.layers.swin_blocks`).

A frame is embedded into p x p patch tokens; L down-sampling levels (a SwinLSTM cell, then patch merging)
and L up-sampling levels (a SwinLSTM cell, then patch expanding) carry a (H, C) state each from step to
step; a stride-2 transposed convolution and a sigmoid give the next frame. A SwinLSTM cell replaces the
LSTM's gate convolutions by Swin Transformer blocks: the first block attends over the input fused with H,
every other even-numbered block again over its input fused with the cell's input.

Training is OpenSTL's (loss ``mse_all_frames`` of :mod:`vpbench.models.layers.openstl_stack`): the MSE over all
T_in + T_out - 1 predicted frames, the model reading the input frames and then its own predictions in
training as in testing (no scheduled sampling). Stochastic depth rises linearly to 0.1 over each half's
blocks, as OpenSTL hard-codes it.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from vpbench import presets
from vpbench.errors import UserError
from vpbench.models.layers.encoder_forecaster import check_patch
from vpbench.models.layers.openstl_stack import TEST_SAMPLING
from vpbench.models.layers.swin_blocks import PatchEmbed, PatchExpanding, PatchInflated, PatchMerging, SwinBlock
from vpbench.models.mau import sampled_input
from vpbench.models.registry import register_model

CellState = tuple[Tensor, Tensor]  # (H, C), tokens [B, h*w, D]


class SwinLSTMCell(nn.Module):
    """SwinLSTM cell (paper Sec. 3): with X the input tokens and (H, C) the state, ``depth`` Swin blocks give::

        O = STB_n(... STB_2(STB_1(STB_0(X, H)), X) ...)   block 0 fuses H, blocks 2, 4, ... fuse X
        F = sigma(O),  C' = F o (C + tanh(O)),  H' = F o tanh(C')

    Odd blocks shift their windows by half a window. Shapes: x [B, h*w, D]; H, C [B, h*w, D].
    """

    def __init__(self, dim: int, grid: Sequence[int], depth: int, heads: int, window: int,
                 drop_paths: Sequence[float], mlp_ratio: float) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(dim, grid, heads, window, 0 if i % 2 == 0 else window // 2, mlp_ratio=mlp_ratio,
                      drop_path=drop_paths[i], fuse=i % 2 == 0) for i in range(depth))

    def forward(self, x: Tensor, state: CellState | None) -> tuple[Tensor, CellState]:
        h, c = state if state is not None else (torch.zeros_like(x), torch.zeros_like(x))
        out = self.blocks[0](x, h)
        for i, block in enumerate(self.blocks[1:], start=1):
            out = block(out, x) if i % 2 == 0 else block(out)
        gate = torch.sigmoid(out)
        c = gate * (c + torch.tanh(out))
        h = gate * torch.tanh(c)
        return h, (h, c)


def padded_size(img_size: Sequence[int], patch_size: int, levels: int, window: int) -> tuple[int, int]:
    """The smallest frame size >= img_size whose token grid halves ``levels`` times and whose every level's
    grid splits into windows (of the grid's smaller side where it is not larger than ``window``, as timm)."""
    step = patch_size * 2**levels

    def fits(h: int, w: int) -> bool:
        for level in range(levels + 1):
            gh, gw = h // patch_size // 2**level, w // patch_size // 2**level
            win = min(gh, gw, window)
            if gh % win or gw % win:
                return False
        return True

    h0, w0 = (-(-side // step) * step for side in img_size)
    sizes = itertools.product(range(h0, h0 + step * window + 1, step), range(w0, w0 + step * window + 1, step))
    return min((s for s in sizes if fits(*s)), key=sum)


CellFactory = Callable[[int, Sequence[int], int, int, Sequence[float]], nn.Module]  # dim, grid, depth, level, rates


class SwinRecurrentNet(nn.Module):
    """SwinLSTM-D's network with any recurrent cell: patch embedding, L down-sampling and L up-sampling levels (a
    cell, then patch merging or expanding), patch inflation + sigmoid.

    Level i down (i = 0..L-1) works on the grid G/2^i with ``embed_dim`` 2^i channels and a cell of
    ``depths_down[i]`` blocks; up level i on G/2^(L-i) with embed_dim 2^(L-i) channels and ``depths_up[L-1-i]``
    blocks (OpenSTL's indexing). ``cell(dim, grid, depth, level, drop_paths)`` builds the cell of a level (``level``:
    i down, L-1-i up). Stochastic depth rises linearly to ``drop_path`` over each half's blocks; the up levels take
    their rates in reverse where ``reverse_up_rates``. ``forward`` has the interface of
    :class:`~vpbench.models.mau.MAU` (``targets``, ``sampling``, ``all_frames`` for ``mse_all_frames``). Frames
    are replicate-padded to a size the levels and windows divide (:func:`padded_size`) and the predictions
    cropped. Shapes: frames [B, T_in, C, H, W], targets [B, horizon, C, H, W].
    """

    def __init__(self, cell: CellFactory, *, in_channels: int, img_size: Sequence[int], patch_size: int,
                 embed_dim: int, depths_down: Sequence[int], depths_up: Sequence[int], window_size: int,
                 drop_path: float, reverse_up_rates: bool) -> None:
        super().__init__()
        levels = len(depths_down)
        self.size = padded_size(img_size, patch_size, levels, window_size)
        grid = check_patch(self.size, patch_size)
        self.embed = PatchEmbed(in_channels, embed_dim, patch_size)
        self.down, self.merges = nn.ModuleList(), nn.ModuleList()
        # Stochastic depth rising linearly over each half's blocks, from a float32 linspace as OpenSTL's.
        rates = torch.linspace(0, drop_path, sum(depths_down), dtype=torch.float32, device="cpu").tolist()
        for i, depth in enumerate(depths_down):
            level_grid, dim = [g // 2**i for g in grid], embed_dim * 2**i
            start = sum(depths_down[:i])
            self.down.append(cell(dim, level_grid, depth, i, rates[start:start + depth]))
            self.merges.append(PatchMerging(level_grid, dim))
        self.up, self.expands = nn.ModuleList(), nn.ModuleList()
        rates = torch.linspace(0, drop_path, sum(depths_up), dtype=torch.float32, device="cpu").tolist()
        for i in range(levels):
            j = levels - 1 - i
            level_grid, dim = [g // 2 ** (levels - i) for g in grid], embed_dim * 2 ** (levels - i)
            start = sum(depths_up[:j])
            level_rates = rates[start:start + depths_up[j]]
            self.up.append(cell(dim, level_grid, depths_up[j], j, level_rates[::-1] if reverse_up_rates
                                else level_rates))
            self.expands.append(PatchExpanding(level_grid, dim))
        self.inflate = PatchInflated(embed_dim, in_channels, grid, patch_size)

    def step(self, frame: Tensor, states: list[CellState | None]) -> tuple[Tensor, list[CellState | None]]:
        """One time step: the next frame [B, C, H, W] from a frame and the 2L levels' states (None: zeros)."""
        x, new = self.embed(frame), []
        cells, resamplers = [*self.down, *self.up], [*self.merges, *self.expands]
        for cell, resample, state in zip(cells, resamplers, states):
            x, state = cell(x, state)
            new.append(state)
            x = resample(x)
        return torch.sigmoid(self.inflate(x)), new

    def forward(self, frames: Tensor, horizon: int, *, targets: Tensor | None = None,
                sampling: tuple[float, float] = TEST_SAMPLING, all_frames: bool = False) -> Tensor:
        if horizon < 1:
            raise UserError(f"horizon must be at least 1 frame, got {horizon}")
        height, width = frames.shape[-2:]
        known = frames if targets is None else torch.cat([frames, targets], dim=1)
        true = _pad_to(known, self.size)
        states: list[CellState | None] = [None] * (len(self.down) + len(self.up))
        preds: list[Tensor] = []
        for t in range(frames.shape[1] + horizon - 1):
            out, states = self.step(sampled_input(t, frames.shape[1], true, preds, sampling), states)
            preds.append(out)
        out = torch.stack(preds, dim=1)[..., :height, :width]
        return out if all_frames else out[:, -horizon:]


def _pad_to(frames: Tensor, size: tuple[int, int]) -> Tensor:
    """Replicate-pad the bottom and right of frames [B, T, C, H, W] to ``size``."""
    if tuple(frames.shape[-2:]) == size:
        return frames
    pad = (0, size[1] - frames.shape[-1], 0, size[0] - frames.shape[-2])
    return torch.nn.functional.pad(frames.flatten(0, 1), pad, mode="replicate").unflatten(0, frames.shape[:2])


class SwinLSTM(SwinRecurrentNet):
    """SwinLSTM-D (:class:`SwinRecurrentNet` of :class:`SwinLSTMCell`): level i down has ``heads[i]`` heads, up
    level i ``heads[L-1-i]``; the up levels take their drop-path rates in reverse (OpenSTL's flag 0)."""

    def __init__(self, *, in_channels: int = 1, img_size: Sequence[int] = (64, 64), patch_size: int = 2,
                 embed_dim: int = 128, depths_down: Sequence[int] = (2, 6), depths_up: Sequence[int] = (6, 2),
                 heads: Sequence[int] = (4, 8), window_size: int = 4, mlp_ratio: float = 4.0,
                 drop_path: float = 0.1) -> None:
        _check_options(patch_size, embed_dim, list(depths_down), list(depths_up), list(heads), window_size, drop_path)

        def cell(dim: int, grid: Sequence[int], depth: int, level: int, rates: Sequence[float]) -> nn.Module:
            return SwinLSTMCell(dim, grid, depth, heads[level], window_size, rates, mlp_ratio)

        super().__init__(cell, in_channels=in_channels, img_size=img_size, patch_size=patch_size,
                         embed_dim=embed_dim, depths_down=depths_down, depths_up=depths_up, window_size=window_size,
                         drop_path=drop_path, reverse_up_rates=True)


def _check_options(patch_size: int, embed_dim: int, depths_down: list[int], depths_up: list[int], heads: list[int],
                   window: int, drop_path: float) -> None:
    if patch_size < 1 or window < 1 or not 0 <= drop_path < 1:
        raise UserError(f"SwinLSTM needs patch_size >= 1, window_size >= 1 and drop_path in [0, 1), got "
                        f"{patch_size}, {window}, {drop_path}")
    if patch_size != 2:
        raise UserError(f"SwinLSTM's patch_size must be 2: its output layer doubles the token grid "
                        f"(OpenSTL's PatchInflated, stride 2), got {patch_size}")
    if not depths_down or len(depths_up) != len(depths_down) or len(heads) != len(depths_down) \
            or min(depths_down + depths_up) < 1:
        raise UserError(f"SwinLSTM needs one positive depth per level in depths_down and depths_up and one head "
                        f"count per level, got {depths_down}, {depths_up}, {heads}")
    for i, h in enumerate(heads):  # level i down has embed_dim 2^i channels, the up level with heads[i] twice that
        if h < 1 or embed_dim * 2**i % h:
            raise UserError(f"SwinLSTM's level {i} has {embed_dim * 2**i} channels, which do not divide into "
                            f"heads[{i}] = {h} heads")
    if embed_dim % 2:
        raise UserError(f"SwinLSTM's embed_dim must be even (patch expanding halves it), got {embed_dim}")


# OpenSTL's configs/mmnist/SwinLSTM-D.py (drop_path 0.1 and mlp_ratio 4 hard-coded in its modules).
FULL = {"patch_size": 2, "embed_dim": 128, "depths_down": [2, 6], "depths_up": [6, 2], "heads": [4, 8],
        "window_size": 4, "drop_path": 0.1}
SWINLSTM_PRESETS: dict[str, dict[str, Any]] = {
    "paper": FULL, "openstl": FULL,
    "quick": {**FULL, "embed_dim": 16, "depths_down": [2, 2], "depths_up": [2, 2], "heads": [2, 4]},
    "tiny": {**FULL, "embed_dim": 8, "depths_down": [2, 1], "depths_up": [1, 2], "heads": [1, 2]},
}
SWINLSTM_PRESETS.update({"openstl-quick": SWINLSTM_PRESETS["quick"], "openstl-tiny": SWINLSTM_PRESETS["tiny"]})
RATES = {"full": 1.0e-4, "quick": 2.0e-3, "tiny": 2.0e-3}  # OpenSTL's 1e-4; the short runs need more


def swinlstm_recipe(preset: str) -> dict[str, Any]:
    """OpenSTL's recipe (Adam, one-cycle per step, batch 16) with ``mse_all_frames`` and no scheduled sampling."""
    scale = presets.get(preset).scale
    recipe = {**presets.protocol_recipe(presets.NAMES[("openstl", scale)]), "loss": "mse_all_frames",
              "lr": RATES[scale]}
    return {**recipe, "batch_size": 16} if preset == "paper" else recipe


register_model("swinlstm", label="SwinLSTM", tags=("openstl",), rank=130, defaults=SWINLSTM_PRESETS,
               recipe={preset: swinlstm_recipe(preset) for preset in presets.PRESETS})(SwinLSTM)
