"""Blocks of the NCSN++ denoising UNet as MCVD uses it (Song et al. 2021's NCSN++ with BigGAN residual blocks,
ada-GroupNorm conditioned on the noise step, FIR up/down-sampling and multi-head self-attention), and the DDPM
noise schedule in MCVD's indexing (step 0 the noisiest).

Every block works on [B, C, H, W] feature maps; ``emb`` is the step embedding [B, E].
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FIR_KERNEL = (1.0, 3.0, 3.0, 1.0)
SKIP_SCALE = 1 / math.sqrt(2.0)  # skip_rescale: (x + h) / sqrt(2)


def ddpm_init_(weight: Tensor, scale: float = 1.0) -> Tensor:
    """DDPM's initialisation in place: uniform variance scaling over the mean of fan-in and fan-out (``scale`` 0
    stands for 1e-10, a near-zero last layer)."""
    scale = 1e-10 if scale == 0 else scale
    receptive = weight[0, 0].numel() if weight.dim() > 2 else 1
    fan_avg = (weight.shape[0] + weight.shape[1]) * receptive / 2
    bound = math.sqrt(3 * scale / fan_avg)
    with torch.no_grad():
        return weight.uniform_(-bound, bound)


def conv(in_ch: int, out_ch: int, kernel: int, init_scale: float = 1.0) -> nn.Conv2d:
    """A same-padded convolution with DDPM's initialisation and zero bias."""
    layer = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2)
    ddpm_init_(layer.weight, init_scale)
    nn.init.zeros_(layer.bias)
    return layer


def group_count(channels: int) -> int:
    """NCSN++'s groups: min(C / 4, 32), lowered until it divides C."""
    groups = max(min(channels // 4, 32), 1)
    while channels % groups:
        groups -= 1
    return groups


def step_embedding(steps: Tensor, dim: int, max_positions: int = 10000) -> Tensor:
    """steps [B] -> [B, dim]: sinusoids of the noise step (DDPM, Vaswani et al.'s frequencies), sin then cos."""
    half = dim // 2
    frequencies = torch.exp(torch.arange(half, device=steps.device) * -(math.log(max_positions) / (half - 1)))
    angles = steps.float()[:, None] * frequencies[None]
    return F.pad(torch.cat([angles.sin(), angles.cos()], dim=1), (0, dim % 2))


def _fir(x: Tensor, gain: float) -> Tensor:
    """Depthwise FIR filter [1, 3, 3, 1] x [1, 3, 3, 1] (normalised to ``gain``) of x [B, C, H', W'] padded as it
    must be (no padding here)."""
    k = torch.tensor(FIR_KERNEL, dtype=x.dtype, device=x.device)
    kernel = torch.outer(k, k) / k.sum() ** 2 * gain
    return F.conv2d(x, kernel.expand(x.shape[1], 1, 4, 4), groups=x.shape[1])


def fir_downsample(x: Tensor) -> Tensor:
    """[B, C, H, W] -> [B, C, H/2, W/2]: FIR low-pass, then every second pixel (upfirdn2d, down 2, pad 1)."""
    return _fir(F.pad(x, (1, 1, 1, 1)), 1.0)[..., ::2, ::2]


def fir_upsample(x: Tensor) -> Tensor:
    """[B, C, H, W] -> [B, C, 2H, 2W]: zeros between pixels, then the FIR filter with gain 4 (upfirdn2d, up 2,
    pad (2, 1))."""
    b, c, h, w = x.shape
    stuffed = x.new_zeros(b, c, 2 * h, 2 * w)
    stuffed[..., ::2, ::2] = x
    return _fir(F.pad(stuffed, (2, 1, 2, 1)), 4.0)


class AdaGroupNormAct(nn.Module):
    """GroupNorm without affine, scaled and shifted by the step embedding (x (1 + scale) + shift; ``emb_dim``
    None: GroupNorm's own affine), then SiLU."""

    def __init__(self, channels: int, emb_dim: int | None):
        super().__init__()
        self.norm = nn.GroupNorm(group_count(channels), channels, eps=1e-5, affine=emb_dim is None)
        self.emb = None
        if emb_dim is not None:
            self.emb = nn.Linear(emb_dim, 2 * channels)
            ddpm_init_(self.emb.weight)
            nn.init.zeros_(self.emb.bias)

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        h = self.norm(x)
        if self.emb is not None:
            scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return F.silu(h)


class BigGANResBlock(nn.Module):
    """NCSN++'s BigGAN residual block: ada-norm, SiLU, (FIR resampling), conv 3x3, ada-norm, SiLU, dropout,
    conv 3x3 (near-zero init); a 1x1 skip conv when the shape changes; (x + h) / sqrt(2).
    [B, in_ch, H, W] -> [B, out_ch, H', W'] (H' = H/2 with ``down``, 2H with ``up``)."""

    def __init__(self, in_ch: int, out_ch: int | None, emb_dim: int, *, dropout: float, up: bool = False,
                 down: bool = False):
        super().__init__()
        out_ch = out_ch or in_ch
        self.norm0 = AdaGroupNormAct(in_ch, emb_dim)
        self.conv0 = conv(in_ch, out_ch, 3)
        self.norm1 = AdaGroupNormAct(out_ch, emb_dim)
        self.dropout = nn.Dropout(dropout)
        self.conv1 = conv(out_ch, out_ch, 3, init_scale=0.0)
        self.skip = conv(in_ch, out_ch, 1) if in_ch != out_ch or up or down else None
        self.resample = fir_upsample if up else fir_downsample if down else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.norm0(x, emb)
        if self.resample is not None:
            h, x = self.resample(h), self.resample(x)
        h = self.conv1(self.dropout(self.norm1(self.conv0(h), emb)))
        if self.skip is not None:
            x = self.skip(x)
        return (x + h) * SKIP_SCALE


class SelfAttention2d(nn.Module):
    """Multi-head self-attention over the H x W positions (heads of ``head_channels`` channels; one head when the
    block has fewer), GroupNorm first, 1x1 projections, near-zero output init; (x + h) / sqrt(2)."""

    def __init__(self, channels: int, head_channels: int):
        super().__init__()
        self.heads = 1 if channels < head_channels else channels // head_channels
        self.norm = nn.GroupNorm(group_count(channels), channels, eps=1e-6)
        self.q, self.k, self.v = (conv(channels, channels, 1) for _ in range(3))
        self.out = conv(channels, channels, 1, init_scale=0.0)

    def forward(self, x: Tensor) -> Tensor:
        b, c, hgt, wid = x.shape
        h = self.norm(x)
        q, k, v = (proj(h).reshape(b * self.heads, c // self.heads, hgt * wid) for proj in (self.q, self.k, self.v))
        weights = torch.softmax(torch.einsum("bcn,bcm->bnm", q, k) * (c // self.heads) ** -0.5, dim=-1)
        h = torch.einsum("bnm,bcm->bcn", weights, v).reshape(b, c, hgt, wid)
        return (x + self.out(h)) * SKIP_SCALE


def linear_schedule(steps: int, beta_first: float, beta_last: float) -> tuple[Tensor, Tensor, Tensor]:
    """MCVD's DDPM schedule, indexed from the noisiest step (0) to the cleanest (steps - 1): betas
    linspace(beta_first, beta_last) [steps], alphas (the cumulative products alpha-bar, DDPM Eq. 4) and
    alphas_prev (the next, cleaner step's alpha-bar; 1 after the last), in float64."""
    betas = torch.linspace(beta_first, beta_last, steps, dtype=torch.float64)
    alphas = torch.cumprod(1 - betas.flip(0), 0).flip(0)
    alphas_prev = torch.cat([alphas[1:], alphas.new_ones(1)])
    return betas, alphas, alphas_prev
