"""Mamba's selective scan (Gu & Dao, *Mamba: Linear-Time Sequence Modeling with Selective State Spaces*, 2023):
a state-space recurrence whose step size and input and output maps depend on the input, over L positions of D
channels with N states each::

    Delta = softplus(delta + delta_bias)                        (Sec. 3.2, s_Delta; softplus optional)
    h_l   = exp(Delta_l A) h_{l-1} + Delta_l B_l u_l            (Eq. 2a with the zero-order hold of Eq. 4, B
                                                                 discretised as Delta B)
    y_l   = C_l h_l + D u_l,  times SiLU(z_l) when z is given   (Eq. 2b, the skip D, the gate of the Mamba block)

:func:`selective_scan` runs the fused CUDA kernel of the ``mamba-ssm`` package where it is installed and the tensors
are on a GPU, else :func:`selective_scan_chunked`, the recurrence in chunks of about sqrt(L) positions (about
2 sqrt(L) sequential steps instead of L). :func:`selective_scan_reference` is the plain loop over the positions, kept
as the readable definition the tests hold both to. Both run on any device and compute in the input's dtype (float32
at least).
"""
from __future__ import annotations

import functools
import importlib
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def _discretise(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, delta_bias: Tensor | None,
                delta_softplus: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Eq. 2a's terms in the computing dtype, the D channels split into the G groups that share B and C: Delta A
    (the log of the decay, <= 0 for A <= 0) and Delta B u, each [Bt, G, D/G, N, L], and C [Bt, G, 1, N, L]."""
    dtype = torch.promote_types(u.dtype, torch.float32)
    B, C = (m.to(dtype) if m.dim() == 4 else m.to(dtype).unsqueeze(1) for m in (B, C))  # [Bt, G, N, L]
    groups = B.shape[1]
    step = delta.to(dtype) + (delta_bias.to(dtype)[:, None] if delta_bias is not None else 0)
    step = F.softplus(step) if delta_softplus else step
    log_decay = step.unflatten(1, (groups, -1)).unsqueeze(3) * A.to(dtype).unflatten(0, (groups, -1)).unsqueeze(-1)
    drive = (step * u.to(dtype)).unflatten(1, (groups, -1)).unsqueeze(3) * B.unsqueeze(2)
    return log_decay, drive, C.unsqueeze(2)


def _read_out(states: Tensor, C: Tensor, u: Tensor, D: Tensor | None, z: Tensor | None) -> Tensor:
    """Eq. 2b: y = C h (+ D u) (* SiLU(z)) from the states h [Bt, G, D/G, N, L] and C [Bt, G, 1, N, L]; y [Bt, D, L]
    in u's dtype."""
    y = (states * C).sum(3).flatten(1, 2)
    if D is not None:
        y = y + u.to(y.dtype) * D.to(y.dtype)[:, None]
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y.to(u.dtype)


def selective_scan_reference(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
                             z: Tensor | None = None, delta_bias: Tensor | None = None,
                             delta_softplus: bool = False) -> Tensor:
    """The scan of the module docstring, one position after another. u, delta, z: [Bt, D, L]; A: [D, N] (real);
    B, C: [Bt, G, N, L], G groups of D / G channels sharing their maps, or [Bt, N, L] (G = 1); D, delta_bias: [D].
    Returns y [Bt, D, L] in u's dtype."""
    log_decay, drive, C = _discretise(u, delta, A, B, C, delta_bias, delta_softplus)
    decay = log_decay.exp()  # exp(Delta A): [Bt, G, D/G, N, L]
    states = [torch.zeros_like(drive[..., 0])]
    for drive_l, decay_l in zip(drive.unbind(-1), decay.unbind(-1)):  # the recurrence alone in the loop
        states.append(torch.addcmul(drive_l, decay_l, states[-1]))
    return _read_out(torch.stack(states[1:], dim=-1), C, u, D, z)


def selective_scan_chunked(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None,
                           z: Tensor | None = None, delta_bias: Tensor | None = None, delta_softplus: bool = False,
                           chunk_length: int | None = None) -> Tensor:
    """:func:`selective_scan_reference`'s result (same arguments and shapes) with the L positions cut into K chunks
    of T = ``chunk_length`` (default ceil(sqrt(L)); the last chunk padded with zero drive). Eq. 2a unrolled from a
    chunk's start s0, for t in the chunk::

        h_t = local_t + exp(S_t) h_{s0-1},   local_t = sum_{s0 <= s <= t} exp(S_t - S_s) Delta_s B_s u_s,
        S_t = sum_{s0 <= r <= t} Delta_r A    (a cumulative sum from the chunk's start)

    ``local`` is the recurrence from a zero state in every chunk at once (T sequential steps), exp(S_t) the decay
    since the chunk's start (S_t <= 0 for A <= 0: no overflow), and the states entering the chunks are carried
    from one chunk's end to the next (K sequential steps): T + K steps in all instead of L, every tensor
    [Bt, G, D/G, N, L] as the loop's."""
    length = u.shape[-1]
    chunk = chunk_length or max(1, math.ceil(math.sqrt(length)))
    chunks = -(-length // chunk)
    log_decay, drive, C = _discretise(u, delta, A, B, C, delta_bias, delta_softplus)
    padding = chunks * chunk - length
    log_decay, drive = ((F.pad(t, (0, padding)) if padding else t).unflatten(-1, (chunks, chunk))
                        for t in (log_decay, drive))  # [Bt, G, D/G, N, K, T]
    decay = log_decay.exp()
    local = [torch.zeros_like(drive[..., 0])]  # [Bt, G, D/G, N, K]: one state per chunk
    for drive_t, decay_t in zip(drive.unbind(-1), decay.unbind(-1)):
        local.append(torch.addcmul(drive_t, decay_t, local[-1]))
    local_states = torch.stack(local[1:], dim=-1)  # [Bt, G, D/G, N, K, T]
    since_start = log_decay.cumsum(-1).exp()  # exp(S_t): [Bt, G, D/G, N, K, T]
    entering = [torch.zeros_like(drive[..., 0, 0])]  # h_{s0-1} of chunk k: [Bt, G, D/G, N]
    for end, decay_end in list(zip(local_states[..., -1].unbind(-1), since_start[..., -1].unbind(-1)))[:-1]:
        entering.append(torch.addcmul(end, decay_end, entering[-1]))
    states = torch.addcmul(local_states, since_start, torch.stack(entering, dim=-1).unsqueeze(-1))
    return _read_out(states.flatten(-2)[..., :length], C, u, D, z)


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
    (float32 inputs, as it requires), else by :func:`selective_scan_chunked`."""
    kernel = fused_kernel() if u.is_cuda else None
    if kernel is None:
        return selective_scan_chunked(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    return kernel(u.float().contiguous(), delta.float().contiguous(), A.float().contiguous(),
                  B.float().contiguous(), C.float().contiguous(), None if D is None else D.float(),
                  None if z is None else z.float().contiguous(),
                  None if delta_bias is None else delta_bias.float(), delta_softplus).to(u.dtype)
