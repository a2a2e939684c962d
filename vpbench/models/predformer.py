"""PredFormer (Tang et al., 2024, "Video Prediction Transformers without Recurrence or Convolution"): a pure,
gated transformer over space-time patch tokens; T frames in, the next T frames out, all at once.

As the authors' code (yyyujintang/PredFormer, ``openstl/models/PredFormer_Quadruplet_TSST.py``, the variant of
its Moving MNIST script): frames are cut into p x p patches, embedded by one linear layer, a fixed sinusoidal
embedding of the T*N token positions is added, and ``layers`` PredFormer layers each apply four gated
transformers in turn, Temporal-Spatial-Spatial-Temporal (Quadruplet-TSST): the temporal ones attend over the T
tokens of one patch position, the spatial ones over the N tokens of one frame. A layer norm and a linear head
map each token back to its patch.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vpbench import presets
from vpbench.errors import UserError
from vpbench.models.layers.dropout import Dropout
from vpbench.models.layers.multiframe import chunked_rollout, pad_to_multiple
from vpbench.models.layers.output_range import clamp_straight_through
from vpbench.models.layers.vision_blocks import DropPath, trunc_normal_linear_
from vpbench.models.registry import register_model


@functools.lru_cache(maxsize=8)
def sinusoidal_positions(positions: int, dim: int) -> Tensor:
    """The authors' fixed position embedding [positions, dim] (Vaswani et al. 2017): PE[p, 2i] = sin(p / 10000^(2i/d)),
    PE[p, 2i+1] = cos(p / 10000^(2i/d)). Like the authors' ``sinusoidal_embedding`` (a FloatTensor), the
    angles are rounded to float32 and the sines and cosines taken in float32, whatever the model's dtype."""
    rate = torch.tensor([10000 ** (2 * (i // 2) / dim) for i in range(dim)], dtype=torch.float64)
    table = (torch.arange(positions, dtype=torch.float64)[:, None] / rate).float()
    table[:, 0::2] = torch.sin(table[:, 0::2])
    table[:, 1::2] = torch.cos(table[:, 1::2])
    return table


class Attention(nn.Module):
    """Multi-head self-attention over tokens [N', S, d] -> [N', S, d]: a bias-free linear layer to q, k and v of
    ``heads`` x ``head_dim`` channels, softmax(q k^T / sqrt(head_dim)) v per head, then a linear layer back to d
    and dropout (the authors' ``Attention``, whose ``dropout`` is this output dropout)."""

    def __init__(self, dim: int, heads: int, head_dim: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.scale = heads, head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        # The authors skip the output layer when one head is as wide as the model.
        self.out = (nn.Sequential(nn.Linear(heads * head_dim, dim), Dropout(dropout))
                    if heads != 1 or head_dim != dim else nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        n, s, _ = x.shape
        q, k, v = (t.reshape(n, s, self.heads, -1).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        if torch.jit.is_tracing():  # fvcore's trace: einsum, as the authors (it counts numpy's rounded estimate)
            weights = (torch.einsum("bhid,bhjd->bhij", q, k) * self.scale).softmax(dim=-1)  # [N', heads, S, S]
            out = torch.einsum("bhij,bhjd->bhid", weights, v)
        else:  # the same attention in one fused kernel, which keeps no [N', heads, S, S] weights for backward
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.out(out.transpose(1, 2).reshape(n, s, -1))


class SwiGLU(nn.Module):
    """Gated feed-forward (Shazeer 2020): fc2(SiLU(fc1_g(x)) * fc1_x(x)), dropout after the gate and after fc2.
    [..., d] -> [..., d]."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.fc1_g, self.fc1_x = nn.Linear(dim, hidden), nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(F.silu(self.fc1_g(x)) * self.fc1_x(x))))


class GatedTransformer(nn.Module):
    """The authors' Gated Transformer Block (paper Sec. 3.2): ``depth`` pre-norm layers x = x + DropPath(Attn(LN(x))),
    x = x + DropPath(SwiGLU(LN(x))), then a final layer norm. Tokens [N', S, d] -> [N', S, d]; linear weights
    start truncated-normal (std 0.02) with zero biases."""

    def __init__(self, dim: int, depth: int, heads: int, head_dim: int, hidden: int, dropout: float,
                 attn_dropout: float, drop_path: float) -> None:
        super().__init__()
        self.attn_norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(depth))
        self.attns = nn.ModuleList(Attention(dim, heads, head_dim, attn_dropout) for _ in range(depth))
        self.ff_norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(depth))
        self.ffs = nn.ModuleList(SwiGLU(dim, hidden, dropout) for _ in range(depth))
        self.drop_path = DropPath(drop_path)
        self.norm = nn.LayerNorm(dim)
        self.apply(trunc_normal_linear_)

    def forward(self, x: Tensor) -> Tensor:
        for attn_norm, attn, ff_norm, ff in zip(self.attn_norms, self.attns, self.ff_norms, self.ffs):
            x = x + self.drop_path(attn(attn_norm(x)))
            x = x + self.drop_path(ff(ff_norm(x)))
        return self.norm(x)


class QuadrupletTSST(nn.Module):
    """One PredFormer layer, Quadruplet-TSST (paper Fig. 3): temporal, spatial, spatial, temporal gated
    transformers, with no residual around the layer (as the authors' code). [B, T, N, d] -> [B, T, N, d]."""

    def __init__(self, **block) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(GatedTransformer(**block) for _ in range(4))
        self.temporal = (True, False, False, True)

    def forward(self, x: Tensor) -> Tensor:
        b, t, n, d = x.shape
        for block, temporal in zip(self.blocks, self.temporal):
            if temporal:  # attention over the T tokens of each patch position
                x = block(x.transpose(1, 2).reshape(b * n, t, d)).reshape(b, n, t, d).transpose(1, 2)
            else:  # attention over the N tokens of each frame
                x = block(x.reshape(b * t, n, d)).reshape(b, t, n, d)
        return x


class PredFormer(nn.Module):
    """PredFormer, Quadruplet-TSST, as the authors' code builds it.

    * Patch embedding: p x p patches, their pixels ordered (row, column, channel), a linear layer to ``dim``;
      plus the fixed sinusoidal embedding of the T*N token positions (frame-major).
    * ``layers`` (the authors' ``Ndepth``) Quadruplet-TSST layers, each of four gated transformers of ``depth``
      layers, ``heads`` heads of ``head_dim`` channels and a SwiGLU of ``mlp_ratio`` x ``dim`` hidden units
      (the authors' ``scale_dim``); ``dropout``, ``attn_dropout`` and ``drop_path`` as the authors' config.
    * Head: a layer norm and a linear layer from each token to its patch, read as (channel, row, column).

    The authors' output is unbounded and clipped only when scored; here it is clamped to [0, 1] with a
    straight-through gradient (:func:`clamp_straight_through`) unless ``raw``, which the loss ``mse_raw`` asks for
    to train on the unbounded output as the authors do. Frames whose sides do not divide by the patch
    size are replicate-padded and the prediction cropped; the position embedding is that of the padded frames'
    tokens. One call maps the ``input_frames`` frames it is built for to the next as many; other horizons are
    rolled out in chunks, as the authors' ``_predict``. Shapes: [B, T_in, C, H, W] -> [B, horizon, C, H, W].
    """

    def __init__(self, *, in_channels: int = 1, input_frames: int = 10, patch_size: int = 8, dim: int = 256,
                 heads: int = 8, head_dim: int = 32, mlp_ratio: int = 4, depth: int = 1, layers: int = 6,
                 dropout: float = 0.0, attn_dropout: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        if min(patch_size, dim, heads, head_dim, mlp_ratio, depth, layers) < 1:
            raise UserError("PredFormer's patch_size, dim, heads, head_dim, mlp_ratio, depth and layers must be >= 1")
        self.input_frames, self.patch_size, self.dim = input_frames, patch_size, dim
        self.embed = nn.Linear(in_channels * patch_size**2, dim)
        block = {"dim": dim, "depth": depth, "heads": heads, "head_dim": head_dim, "hidden": dim * mlp_ratio,
                 "dropout": dropout, "attn_dropout": attn_dropout, "drop_path": drop_path}
        self.layers = nn.ModuleList(QuadrupletTSST(**block) for _ in range(layers))
        self.head_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, in_channels * patch_size**2)

    def block(self, frames: Tensor, raw: bool = False) -> Tensor:
        """The next T frames: [B, T, C, H, W] -> [B, T, C, H, W] in [0, 1] (unbounded when ``raw``)."""
        b, t, c, h, w = frames.shape
        if t != self.input_frames:
            raise UserError(f"this PredFormer was built for {self.input_frames} input frames (its position embedding "
                            f"numbers T x N tokens), got {t}; build it with input_frames={t}")
        p = self.patch_size
        x = pad_to_multiple(frames.flatten(0, 1), p)
        gh, gw = x.shape[-2] // p, x.shape[-1] // p
        # b t c (gh p1) (gw p2) -> b t (gh gw) (p1 p2 c)
        x = x.reshape(b, t, c, gh, p, gw, p).permute(0, 1, 3, 5, 4, 6, 2).reshape(b, t, gh * gw, p * p * c)
        x = self.embed(x) + sinusoidal_positions(t * gh * gw, self.dim).to(x).reshape(t, gh * gw, -1)
        for layer in self.layers:
            x = layer(x)
        x = self.head(self.head_norm(x))
        # each token's outputs read as (c, p1, p2): b t (gh gw) (c p1 p2) -> b t c (gh p1) (gw p2)
        x = x.reshape(b, t, gh, gw, c, p, p).permute(0, 1, 4, 2, 5, 3, 6).reshape(b, t, c, gh * p, gw * p)
        x = x[..., :h, :w]
        return x if raw else clamp_straight_through(x)

    def forward(self, frames: Tensor, horizon: int, raw: bool = False) -> Tensor:
        """frames [B, T_in, C, H, W] in [0, 1] -> predictions [B, horizon, C, H, W] in [0, 1] (unbounded when
        ``raw``: each chunk then reads the unbounded frames before it, as the authors' rollout)."""
        return chunked_rollout(functools.partial(self.block, raw=raw), frames, horizon)


PREDFORMER_PRESETS: dict[str, dict] = {
    # The authors' Moving MNIST configuration (configs/mmnist/PredFormer.py): patch 8, dim 256, 8 heads of 32,
    # SwiGLU x4, 6 Quadruplet-TSST layers of depth 1, no dropout or drop path.
    "paper": {"patch_size": 8, "dim": 256, "heads": 8, "head_dim": 32, "mlp_ratio": 4, "depth": 1, "layers": 6},
    # A 2-core CPU: 64-wide, 2 layers.
    "quick": {"patch_size": 8, "dim": 64, "heads": 4, "head_dim": 16, "mlp_ratio": 2, "depth": 1, "layers": 2},
    "tiny": {"patch_size": 4, "dim": 8, "heads": 2, "head_dim": 4, "mlp_ratio": 2, "depth": 1, "layers": 1},
}
QUICK_LR = 3.0e-3


def predformer_recipe() -> dict[str, dict]:
    """The authors' training (scripts/mmnist/mm_PredFormer_TSST_train.sh): MSE, AdamW with weight decay 0.01, a
    one-cycle schedule stepped every batch peaking at lr 1e-3, batch 16, under both protocols; the smaller
    scales peak at :data:`QUICK_LR` at their own batch sizes. Epochs are the preset's: the authors train
    2,000 (``--epochs 2000``)."""
    own = {"loss": "mse_raw", "optimizer": "adamw", "weight_decay": 1.0e-2, "scheduler": "onecycle"}
    recipes = {"paper": {**own, "lr": 1.0e-3, "batch_size": 16}, "quick": {**own, "lr": QUICK_LR},
               "tiny": {**own, "lr": QUICK_LR}}
    for name, lr in (("openstl", 1.0e-3), ("openstl-quick", QUICK_LR), ("openstl-tiny", QUICK_LR)):
        recipes[name] = {**presets.protocol_recipe(name), **own, "lr": lr}
    return recipes


# The authors' Moving MNIST result (paper Table 2, Quadruplet-TSST; OpenSTL's conventions: MSE and MAE per frame
# summed over pixels on [0, 1]; their training script runs 2,000 epochs). The paper gives no PSNR.
PAPER_VALUES = {
    "predformer-mmnist": {"mse": 12.4, "mae": 44.6, "ssim": 0.973, "params": 25.3e6, "flops": 16.5e9, "fps": 302},
}
register_model("predformer", label="PredFormer", tags=("rnn-free",), rank=290, defaults=PREDFORMER_PRESETS,
               recipe=predformer_recipe(), references=PAPER_VALUES)(PredFormer)
