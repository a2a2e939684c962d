"""Mamba's selective scan (Gu & Dao, *Mamba: Linear-Time Sequence Modeling with Selective State Spaces*, 2023):
a state-space recurrence whose step size and input and output maps depend on the input, over L positions of D
channels with N states each::

    Delta = softplus(delta + delta_bias)                        (Sec. 3.2, s_Delta; softplus optional)
    h_l   = exp(Delta_l A) h_{l-1} + Delta_l B_l u_l            (Eq. 2a with the zero-order hold of Eq. 4, B
                                                                 discretised as Delta B)
    y_l   = C_l h_l + D u_l,  times SiLU(z_l) when z is given   (Eq. 2b, the skip D, the gate of the Mamba block)

:func:`selective_scan` runs the fused CUDA kernel of the ``mamba-ssm`` package where it is installed and the tensors
are on a GPU, else :func:`selective_scan_reference`, a loop over the positions in plain PyTorch (any device, any
floating dtype: it computes in the input's dtype, float32 at least).
"""
from __future__ import annotations

import functools
import importlib
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def selective_scan_reference(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
                             z: Tensor | None = None, delta_bias: Tensor | None = None,
                             delta_softplus: bool = False) -> Tensor:
    """The scan of the module docstring. u, delta, z: [Bt, D, L]; A: [D, N] (real); B, C: [Bt, G, N, L], G groups
    of D / G channels sharing their maps, or [Bt, N, L] (G = 1); D, delta_bias: [D]. Returns y [Bt, D, L] in u's
    dtype."""
    dtype = torch.promote_types(u.dtype, torch.float32)
    batch, channels, length = u.shape
    step = delta.to(dtype) + (delta_bias.to(dtype)[:, None] if delta_bias is not None else 0)
    step = F.softplus(step) if delta_softplus else step
    B, C = (m.to(dtype) if m.dim() == 4 else m.to(dtype).unsqueeze(1) for m in (B, C))
    B, C = (m.repeat_interleave(channels // m.shape[1], dim=1) for m in (B, C))  # [Bt, D, N, L]
    decay = torch.exp(step.unsqueeze(2) * A.to(dtype)[None, :, :, None])  # exp(Delta A): [Bt, D, N, L]
    drive = (step * u.to(dtype)).unsqueeze(2) * B  # Delta B u: [Bt, D, N, L]
    state = u.new_zeros((batch, channels, A.shape[1]), dtype=dtype)
    states = []
    for position in range(length):  # the recurrence alone in the loop: one fused multiply-add a position
        state = torch.addcmul(drive[..., position], decay[..., position], state)
        states.append(state)
    y = (torch.stack(states, dim=-1) * C).sum(2)  # C_l h_l: [Bt, D, L]
    if D is not None:
        y = y + u.to(dtype) * D.to(dtype)[:, None]
    if z is not None:
        y = y * F.silu(z.to(dtype))
    return y.to(u.dtype)


@functools.cache
def fused_kernel() -> Callable[..., Tensor] | None:
    """``mamba_ssm``'s ``selective_scan_fn`` (the CUDA kernel), or None where the package does not import."""
    try:
        return importlib.import_module("mamba_ssm.ops.selective_scan_interface").selective_scan_fn
    except Exception:  # noqa: BLE001  not installed, or built without CUDA
        return None


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
                   z: Tensor | None = None, delta_bias: Tensor | None = None,
                   delta_softplus: bool = False) -> Tensor:
    """:func:`selective_scan_reference`'s result, by mamba-ssm's fused CUDA kernel on a GPU where it is installed
    (float32 inputs, as it requires), else by :func:`selective_scan_reference`."""
    kernel = fused_kernel() if u.is_cuda else None
    if kernel is None:
        return selective_scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return kernel(u.float().contiguous(), delta.float().contiguous(), A.float().contiguous(),
                  B.float().contiguous(), C.float().contiguous(), None if D is None else D.float(),
                  None if z is None else z.float().contiguous(),
                  None if delta_bias is None else delta_bias.float(), delta_softplus).to(u.dtype)
