"""Building blocks of SRVP's SA and RFA modules (paper Sec. 3.3, Eqs. 2-10).

Shapes: B batch, N input frames, L layers, M hidden channels, (h, w) the (patched) frame grid,
D = M*h*w. Every attention here is the unprojected or 1x1-projected scaled dot-product attention
of the official code; the details the paper leaves open follow it (see :mod:`vpbench.models.srvp`).
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench.models.layers.dropout import Dropout

ADD_NORM_DROPOUT = 0.2  # the official AddNorm's dropout on the residual input (Eqs. 8, 10)


def conv_tanh(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 convolution + tanh: the "ConvNet" of Eq. 10 and RFA's embedding convolutions."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.Tanh())


def l2_norm(x: Tensor, dim: int) -> Tensor:
    """L2 norm over ``dim`` in float32 or wider (float64 stays float64), with gradient 0 where it is 0
    (as torch.linalg.vector_norm, whose reduction over an outer dimension is some 100x slower on CPU)."""
    wide = x.to(torch.promote_types(x.dtype, torch.float32))
    return wide.square().sum(dim).clamp_min(torch.finfo(wide.dtype).tiny).sqrt()


SMALL_INNER = 4  # products over at most this many terms are summed term by term (see _bmm)


def _bmm(a: Tensor, b: Tensor) -> Tensor:
    """a [B, P, K] @ b [B, K, R]; for K <= SMALL_INNER as a sum of K broadcast products, which on the
    CPU is some 10x faster than bmm's kernels for such thin operands (e.g. an outer product, K = 1)."""
    if a.shape[-1] > SMALL_INNER:
        return torch.bmm(a, b)
    if a.shape[-2] > b.shape[-1]:  # build the transpose, so that the long axis is the contiguous one
        return _bmm(b.transpose(1, 2), a.transpose(1, 2)).transpose(1, 2)
    out = a[..., :, :1] * b[..., :1, :]
    for k in range(1, a.shape[-1]):
        out.addcmul_(a[..., :, k : k + 1], b[..., k : k + 1, :])
    return out


class FrameMatmul(torch.autograd.Function):
    """a [B, P, K] @ b [B, K, R] whose backward avoids thin matrix products.

    Temporal attention multiplies L (or 1) queries with N frames of D = M*h*w values: in the
    backward pass bmm would multiply over an inner dimension of L or 1 (dL/dref), the slowest case.
    """

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor) -> Tensor:
        ctx.save_for_backward(a, b)
        return torch.bmm(a, b)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:
        a, b = ctx.saved_tensors
        return _bmm(grad, b.transpose(1, 2)), _bmm(a.transpose(1, 2), grad)


def temporal_attention(query: Tensor, ref: Tensor) -> Tensor:
    """Temporal attention (Eq. 2): query [B, Q, D], ref (keys = values) [B, N, D] -> A^T [B, D].

    omega = query ref^T / sqrt(D) is [B, Q, N]; for Q > 1 (the L decoder states), Norm(omega) is
    the L2 norm over the Q axis, which leaves one row of N scores; for Q = 1 the official code
    applies no norm (the signed score goes to the softmax).
    """
    query, ref = _same_dtype(query, ref)
    omega = FrameMatmul.apply(query, ref.transpose(1, 2)) / math.sqrt(query.shape[-1])
    if query.shape[1] > 1:
        omega = l2_norm(omega, dim=1).unsqueeze(1)
    weights = torch.softmax(omega, dim=-1).to(ref.dtype)
    return FrameMatmul.apply(weights, ref).squeeze(1)


def _same_dtype(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors in their common dtype, as autocast would give bmm (a custom Function is not cast)."""
    if torch.is_autocast_enabled(tensors[0].device.type):
        dtype = torch.get_autocast_dtype(tensors[0].device.type)
    else:
        dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors))
    return tuple(t.to(dtype) for t in tensors)


def channel_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Softmax(Q K^T / sqrt(hw)) V over channels (Eqs. 4, 5): q, k, v [B, C, h, w] -> [B, C, h, w]."""
    b, c, h, w = q.shape
    q, k, v = q.reshape(b, c, h * w), k.reshape(b, c, h * w), v.reshape(b, c, h * w)
    score = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(h * w), dim=-1)  # [B, C, C]
    return (score @ v).view(b, c, h, w)


class SelfAttention(nn.Module):
    """Spatial self-attention (Eqs. 3-4): Q, K, V are 1x1 convolutions of x (one conv of 3C channels)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)  # [W_q; W_k; W_v]

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C, h, w] -> A^S [B, C, h, w]."""
        return channel_attention(*self.qkv(x).chunk(3, dim=1))


class CrossAttention(nn.Module):
    """Cross-attention (Eq. 5) between A^T and A^S, each projected by one 1x1 conv of 3C channels.

    ``proj_t`` gives [Q_T, K_T, V_T] and ``proj_s`` gives [Q_S, K_S, V_S]:
    A_S^T = attn(Q_T, K_S, V_S) (spatially fused temporal context), A_T^S = attn(Q_S, K_T, V_T).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.proj_t = nn.Conv2d(channels, 3 * channels, 1)
        self.proj_s = nn.Conv2d(channels, 3 * channels, 1)

    def forward(self, a_t: Tensor, a_s: Tensor) -> tuple[Tensor, Tensor]:
        """a_t, a_s [B, C, h, w] -> (A_S^T, A_T^S), each [B, C, h, w]."""
        q_t, k_t, v_t = self.proj_t(a_t).chunk(3, dim=1)
        q_s, k_s, v_s = self.proj_s(a_s).chunk(3, dim=1)
        return channel_attention(q_t, k_s, v_s), channel_attention(q_s, k_t, v_t)


def self_correlation(x: Tensor) -> tuple[Tensor, Tensor]:
    """The self-correlation map of Eqs. 7 and 9 for x [B, K, D], softmax and norms over K.

    P = x Softmax(x)^T / D is [B, K, K]; psi = Norm(P)^T (x) Norm(x) is the rank-1 product of the
    column norms of P [B, K] and of x [B, D]. Returned as these two factors:
    psi = a[:, :, None] * b[:, None, :] [B, K, D].
    """
    p = x @ torch.softmax(x, dim=1).transpose(1, 2) / x.shape[-1]
    return l2_norm(p, dim=1), l2_norm(x, dim=1)


class AddNorm(nn.Module):
    """GroupNorm(K, K)(Dropout(x) + psi) for x [B, K, D]: each of the K slices normalised over its D values.

    The "LayerNorm" of Eqs. 8 and 10; psi = a b^T is given by its factors a [B, K], b [B, D].
    """

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, groups)
        self.dropout = Dropout(ADD_NORM_DROPOUT)

    def forward(self, x: Tensor, a: Tensor, b: Tensor) -> Tensor:
        return self.norm(torch.addcmul(self.dropout(x), a.unsqueeze(2), b.unsqueeze(1)))


class FrameBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d applied to each frame of [B, N, C, h, w] on its own, in one batched op.

    As the official per-frame loop: in training every frame is normalised with its own batch
    statistics, and the running statistics take N successive momentum updates (here in closed form).
    """

    def forward(self, x: Tensor) -> Tensor:
        b, n, c, h, w = x.shape
        if not self.training:
            return super().forward(x.view(b * n, c, h, w)).view_as(x)
        # Momentum 1: these receive each frame's statistics, in the running statistics' dtype (float32
        # also under bf16 autocast, where batch_norm takes bf16 input with float32 statistics).
        mean, var = self.running_mean.new_zeros(n * c), self.running_var.new_ones(n * c)
        y = F.batch_norm(x.view(b, n * c, h, w), mean, var, self.weight.repeat(n), self.bias.repeat(n),
                         training=True, momentum=1.0, eps=self.eps)
        with torch.no_grad():
            m = self.momentum
            # After N updates r <- (1-m) r + m s_t, frame t's statistics weigh m (1-m)^(N-1-t).
            weights = m * (1 - m) ** torch.arange(n - 1, -1, -1, dtype=mean.dtype, device=x.device)
            self.running_mean.mul_((1 - m) ** n).add_(weights @ mean.view(n, c))
            self.running_var.mul_((1 - m) ** n).add_(weights @ var.view(n, c))
            self.num_batches_tracked.add_(n)
        return y.view_as(x)


class TemporalSelfCorrelation(nn.Module):
    """Reinforced reference features h'^E (Eqs. 6-8), computed once per sequence.

    X' = ConvNet(X_i) for each input frame (one ConvNet shared by all frames, run on all at once):
    conv3x3 (C -> M/2), BN, ReLU, conv3x3 (M/2 -> M), BN, ReLU. Then
    h'^E = GroupNorm_N(Dropout(h^E) + psi^T(X')), each frame normalised over its M*h*w values.
    """

    def __init__(self, in_channels: int, hidden: int, frames: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden // 2, 3, padding=1)
        self.bn1 = FrameBatchNorm(hidden // 2)
        self.conv2 = nn.Conv2d(hidden // 2, hidden, 3, padding=1)
        self.bn2 = FrameBatchNorm(hidden)
        self.add_norm = AddNorm(frames)

    def features(self, x: Tensor) -> Tensor:
        """Eq. 6: x [B, N, C, h, w] -> X' [B, N, M, h, w]."""
        b, n = x.shape[:2]
        y = F.relu(self.bn1(self.conv1(x.flatten(0, 1)).unflatten(0, (b, n))))
        return F.relu(self.bn2(self.conv2(y.flatten(0, 1)).unflatten(0, (b, n))))

    def forward(self, x: Tensor, enc_out: Tensor) -> Tensor:
        """x [B, N, C, h, w], h^E [B, N, M, h, w] -> h'^E [B, N, M*h*w]."""
        b, n = enc_out.shape[:2]
        a, c = self_correlation(self.features(x).reshape(b, n, -1))  # Eq. 7
        return self.add_norm(enc_out.reshape(b, n, -1), a, c)  # Eq. 8


class SpatialSelfCorrelation(nn.Module):
    """Reinforced decoder features h'^D (Eqs. 9-10) from the L*M concatenated decoder states:
    h'^D = tanh(conv3x3(GroupNorm_LM(Dropout(h^D) + psi^S(h^D)))), LM -> M channels."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.add_norm = AddNorm(channels)
        self.conv = conv_tanh(channels, hidden)

    def forward(self, states: Tensor) -> Tensor:
        """h^D [B, L*M, h, w] -> h'^D [B, M, h, w]."""
        flat = states.flatten(2)
        a, b = self_correlation(flat)  # Eq. 9
        return self.conv(self.add_norm(flat, a, b).view_as(states))  # Eq. 10


class StandardAttention(nn.Module):
    """The SA module (Fig. 3): temporal attention, spatial self-attention, cross-attention -> F1."""

    def __init__(self, hidden: int, layers: int, cross_attention: bool = True) -> None:
        super().__init__()
        self.layers = layers
        self.spatial = SelfAttention(hidden)
        self.cross = CrossAttention(hidden) if cross_attention else None

    def forward(self, states: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
        """Decoder states h^D [B, L*M, h, w], encoder outputs h^E [B, N, M*h*w] -> F1, two [B, M, h, w].

        Without cross-attention F1 is [A^T, A^S]."""
        b, lm, h, w = states.shape
        by_layer = states.view(b, self.layers, lm // self.layers, h, w)
        a_t = temporal_attention(by_layer.flatten(2), ref).view(b, -1, h, w)  # Eq. 2
        a_s = self.spatial(l2_norm(by_layer, dim=1))  # Eqs. 3-4 on the L-axis norm
        return self.cross(a_t, a_s) if self.cross is not None else (a_t, a_s)  # Eq. 5


class ReinforcedFeatureAttention(nn.Module):
    """The RFA module (Fig. 4): the SA-style attention over reinforced features -> F2.

    h'^D (Eqs. 9-10) queries h'^E (Eqs. 6-8, see :meth:`reference`) in temporal attention and attends
    to itself in spatial self-attention; both results go through conv3x3 + tanh to M/2 channels, the
    cross-attention fuses them, and conv3x3 + tanh takes each fused map to M/4 channels.
    """

    def __init__(self, in_channels: int, hidden: int, layers: int, frames: int,
                 cross_attention: bool = True) -> None:
        super().__init__()
        emb = hidden // 2
        self.temporal_corr = TemporalSelfCorrelation(in_channels, hidden, frames)
        self.spatial_corr = SpatialSelfCorrelation(layers * hidden, hidden)
        self.spatial = SelfAttention(hidden)
        self.context_conv = conv_tanh(hidden, emb)
        self.refined_conv = conv_tanh(hidden, emb)
        self.cross = CrossAttention(emb) if cross_attention else None
        self.spatial_fused_conv = conv_tanh(emb, emb // 2)
        self.temporal_fused_conv = conv_tanh(emb, emb // 2)
        self.out_channels = 2 * (emb // 2)

    def reference(self, x: Tensor, enc_out: Tensor) -> Tensor:
        """h'^E [B, N, M*h*w] from the inputs x [B, N, C, h, w] and h^E [B, N, M, h, w]; once per sequence."""
        return self.temporal_corr(x, enc_out)

    def forward(self, states: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
        """Decoder states h^D [B, L*M, h, w], h'^E [B, N, M*h*w] -> F2, two [B, M/4, h, w]."""
        target = self.spatial_corr(states)  # h'^D [B, M, h, w]
        a_t = temporal_attention(target.flatten(1).unsqueeze(1), ref).view_as(target)
        context = self.context_conv(a_t)
        refined = self.refined_conv(self.spatial(target))
        if self.cross is not None:
            context, refined = self.cross(context, refined)
        return self.spatial_fused_conv(context), self.temporal_fused_conv(refined)
