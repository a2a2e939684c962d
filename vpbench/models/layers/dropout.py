"""Dropout whose CPU masks come from raw random bits: nn.Dropout's distribution, about 4x faster.

torch draws a CPU dropout mask element by element with ``bernoulli_``. Here 64 random bits give two
elements: an element is kept when its 32 bits, read as a signed integer, reach round(p 2^32) - 2^31,
so P(drop) = p to within 2^-32. Kept elements are scaled by 1/(1-p), as nn.Dropout does. Other
devices (and p within 2^-33 of 1) use torch's own dropout.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Zero each element of x with probability p and scale the rest by 1/(1-p) (training only)."""
    if not training or p == 0:
        return x
    threshold = round(p * 2**32) - 2**31
    if threshold >= 2**31 or x.device.type != "cpu":  # p within 2^-33 of 1 drops everything
        return F.dropout(x, p, training=True)
    n = x.numel()
    bits = torch.empty((n + 1) // 2, dtype=torch.int64).random_(-(2**63), None).view(torch.int32)[:n]
    keep = (bits >= threshold).view(x.shape)
    return x * keep.to(x.dtype).mul_(1 / (1 - p))


class Dropout(nn.Module):
    """:func:`dropout` as a module, a drop-in for nn.Dropout."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
