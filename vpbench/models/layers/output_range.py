"""Keeping predictions in [0, 1] for models whose last layer is unbounded (SimVP, OpenSTL's recurrent stacks)."""
from __future__ import annotations

from torch import Tensor


def clamp_straight_through(x: Tensor) -> Tensor:
    """x clamped to [0, 1], with the gradient of the identity: the loss is that of the clamped frames,
    and a pixel outside [0, 1] whose clamped value is wrong still receives a gradient."""
    return x + (x.clamp(0, 1) - x).detach()
