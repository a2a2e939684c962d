"""Shared by the RNN-free models (SimVP, MIMO-VP), which predict a block of T frames from T frames at once.

* :func:`chunked_rollout` reaches any horizon with such a block, as OpenSTL does: each chunk reads the
  previous chunk's prediction, and the last chunk is cut to length (10 -> 30 is three chunks).
* :func:`pad_to_multiple` pads frames to the size the strided convolutions need (e.g. 100x100 for a
  model that halves the frame three times), so that the output can be cropped back.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from vpbench.errors import UserError

Block = Callable[[Tensor], Tensor]  # [B, T, C, H, W] -> [..., B, T, C, H, W]


def chunked_rollout(block: Block, frames: Tensor, horizon: int) -> Tensor:
    """Predict ``horizon`` frames by applying ``block`` (T frames -> the next T) to its own predictions.

    frames: [B, T, C, H, W]. ``block`` may return leading dimensions before B (e.g. one prediction per
    decoder layer, [L, B, T, C, H, W]); they are kept, and the last entry is the one fed back.
    Returns [..., B, horizon, C, H, W].
    """
    if horizon < 1:
        raise UserError(f"horizon must be at least 1 frame, got {horizon}")
    chunks, predicted, x = [], 0, frames
    while predicted < horizon:
        out = block(x)
        chunks.append(out)
        predicted += out.shape[-4]
        x = out.reshape(-1, *out.shape[-5:])[-1]  # the last of the leading entries: the prediction
    return torch.cat(chunks, dim=-4)[..., :horizon, :, :, :]


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Replicate-pad the bottom and right of x [N, C, H, W] so that H and W divide by ``multiple``."""
    pad_h, pad_w = -x.shape[-2] % multiple, -x.shape[-1] % multiple
    if not (pad_h or pad_w):
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
