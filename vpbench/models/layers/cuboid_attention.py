"""Cuboid attention (Gao et al., *Earthformer: Exploring Space-Time Transformers for Earth System Forecasting*,
NeurIPS 2022, Sec. 3) and the blocks Earthformer builds from it; every tensor is channels-last [B, T, H, W, C].

Cuboid attention splits the (T, H, W) grid into cuboids of size (b_t, b_h, b_w) and attends within each (the
paper's three steps: decompose, attend, merge). Per axis the cuboid is *local* (``"l"``: b consecutive positions) or *dilated*
(``"d"``: b positions T/b apart). Axial attention is the three cuboids (T, 1, 1), (1, H, 1), (1, 1, W).
Optionally K global vectors read the whole grid and every cuboid reads them (the paper's global vectors).

Supported here: the decompositions without shifted windows, padded with zeros (the published Moving MNIST,
N-body MNIST and SEVIR configurations pad with zeros and use axial self-attention and 1 x 1 cross-attention: no
padding arises, and zero padding needs no mask). A grid that a cuboid does not divide is zero-padded at the end
(the memory of a cross-attention at the start of time), as the authors' ``padding_type="zeros"``.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Cuboid = tuple[int, int, int]
Strategy = tuple[str, str, str]


def to_cuboids(x: Tensor, size: Cuboid, strategy: Strategy) -> Tensor:
    """[B, T, H, W, C] (each side divisible by ``size``) -> [B, n_cuboids, b_t b_h b_w, C] (the paper's *decompose*).
    Cuboids are ordered by (t, h, w) of their index, positions inside a cuboid by (t, h, w) of their offset."""
    b, *sides, c = x.shape
    split, outer, inner = [], [], []
    for axis, (block, side, kind) in enumerate(zip(size, sides, strategy)):
        split += [side // block, block] if kind == "l" else [block, side // block]
        outer.append(1 + 2 * axis + (kind != "l"))
        inner.append(1 + 2 * axis + (kind == "l"))
    x = x.reshape(b, *split, c).permute(0, *outer, *inner, 7)
    return x.reshape(b, -1, math.prod(size), c)


def from_cuboids(x: Tensor, size: Cuboid, strategy: Strategy, sides: Sequence[int]) -> Tensor:
    """The inverse of :func:`to_cuboids` (the paper's *merge*): [B, n_cuboids, volume, C] -> [B, T, H, W, C]."""
    b, c = x.shape[0], x.shape[-1]
    x = x.reshape(b, *(side // block for side, block in zip(sides, size)), *size, c)
    order = [0]
    for axis, kind in enumerate(strategy):
        order += [1 + axis, 4 + axis] if kind == "l" else [4 + axis, 1 + axis]
    return x.permute(*order, 7).reshape(b, *sides, c)


def pad_to_cuboids(x: Tensor, size: Cuboid, *, time_first: bool = False) -> Tensor:
    """Zero-pad [B, T, H, W, C] at the end of each axis (of time at its start if ``time_first``) to multiples of
    ``size``."""
    pad_t, pad_h, pad_w = (-side % block for side, block in zip(x.shape[1:4], size))
    if not (pad_t or pad_h or pad_w):
        return x
    return F.pad(x, (0, 0, 0, pad_w, 0, pad_h) + ((pad_t, 0) if time_first else (0, pad_t)))


def relative_position_index(table: Cuboid) -> Tensor:
    """Index [V, V] (V = s_t s_h s_w, s = ``table``'s sides) into a bias table of (2 s_t - 1)(2 s_h - 1)(2 s_w - 1)
    rows: each offset's (t, h, w) position in the cuboid relative to each other's."""
    offsets = torch.tensor(list(itertools.product(*(range(s) for s in table))))
    rel = offsets[:, None, :] - offsets[None, :, :] + torch.tensor(table) - 1
    return rel[..., 0] * (2 * table[1] - 1) * (2 * table[2] - 1) + rel[..., 1] * (2 * table[2] - 1) + rel[..., 2]


class PositionBias(nn.Module):
    """A learned bias per head and relative (t, h, w) position in a cuboid of ``table``'s sides (Swin's), read
    for the first ``queries`` and ``keys`` offsets of that cuboid (in (t, h, w) order: the whole of a smaller
    cuboid that keeps the table's h and w, as the authors read it). Returns [heads, 1, queries, keys]."""

    def __init__(self, heads: int, table: Cuboid, queries: int, keys: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(math.prod(2 * s - 1 for s in table), heads))
        nn.init.trunc_normal_(self.table, std=0.02)
        self.register_buffer("index", relative_position_index(table)[:queries, :keys], persistent=False)

    def forward(self) -> Tensor:
        return self.table[self.index].permute(2, 0, 1).unsqueeze(1)


def heads_of(x: Tensor, heads: int) -> Tensor:
    """[..., N, C] -> [B, heads, ..., N, C / heads] (moves the head axis after the batch)."""
    x = x.reshape(*x.shape[:-1], heads, -1)
    return x.movedim(-2, 1)


def merge_heads(x: Tensor) -> Tensor:
    """The inverse of :func:`heads_of`."""
    x = x.movedim(1, -2)
    return x.reshape(*x.shape[:-2], -1)


class CuboidSelfAttention(nn.Module):
    """Pre-norm multi-head self-attention within cuboids of ``size`` (clipped to the grid), with a relative
    position bias and, with ``global_vectors``, the paper's global vectors (their own queries, keys and
    values; with ``global_self_attention`` they read each other too).

    x [B, T, H, W, C] (and g [B, K, C]) -> the update of x (and of g), same shapes (residual not added)."""

    def __init__(self, dim: int, heads: int, size: Cuboid, strategy: Strategy, grid: Sequence[int], *,
                 global_vectors: bool = False, global_self_attention: bool = False, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        self.heads, self.strategy, self.scale = heads, strategy, (dim // heads) ** -0.5
        self.size: Cuboid = tuple(min(s, g) for s, g in zip(size, grid))
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.position_bias = PositionBias(heads, size, math.prod(self.size), math.prod(self.size))
        self.attn_drop, self.proj_drop = nn.Dropout(attn_drop), nn.Dropout(proj_drop)
        self.proj = nn.Linear(dim, dim)
        self.global_vectors, self.global_self_attention = global_vectors, global_self_attention
        if global_vectors:
            self.global_norm = nn.LayerNorm(dim)
            self.local_to_global_q = nn.Linear(dim, dim, bias=False)
            self.local_to_global_kv = nn.Linear(dim, 2 * dim, bias=False)
            self.global_to_local_q = nn.Linear(dim, dim, bias=False)
            self.global_to_local_k = nn.Linear(dim, dim, bias=False)
            self.global_to_local_v = nn.Linear(dim, dim, bias=False)
            if global_self_attention:
                self.global_qkv = nn.Linear(dim, 3 * dim, bias=False)
            self.global_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, g: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        x = self.norm(x)
        sides = x.shape[1:4]
        cuboids = to_cuboids(pad_to_cuboids(x, self.size), self.size, self.strategy)  # [B, N, V, C]
        q, k, v = self.split_heads(self.qkv(cuboids), 3)  # each [B, heads, N, V, C/heads]
        score = (self.scale * q) @ k.transpose(-2, -1) + self.position_bias()
        if self.global_vectors:
            g = self.global_norm(g)
            gk, gv = (t.unsqueeze(2) for t in self.split_heads(self.local_to_global_kv(g), 2))  # [B, heads, 1, K, C/heads]
            local_q = self.scale * heads_of(self.local_to_global_q(cuboids), self.heads)
            score = torch.cat([score, local_q @ gk.transpose(-2, -1)], dim=-1)  # the cuboids read the globals
            v = torch.cat([v, gv.expand(-1, -1, v.shape[2], -1, -1)], dim=-2)
            g = self.proj_drop(self.global_proj(self.update_globals(g, cuboids)))
        out = merge_heads(self.attn_drop(score.softmax(dim=-1)) @ v)
        out = from_cuboids(self.proj_drop(self.proj(out)), self.size, self.strategy,
                           [-(-s // b) * b for s, b in zip(sides, self.size)])
        out = out[:, :sides[0], :sides[1], :sides[2]]
        return (out, g) if self.global_vectors else out

    def split_heads(self, x: Tensor, parts: int) -> list[Tensor]:
        """[..., parts C] -> ``parts`` tensors [B, heads, ..., C / heads] (the projection's outputs are ordered
        part, head, channel)."""
        return [heads_of(t, self.heads) for t in x.chunk(parts, dim=-1)]

    def update_globals(self, g: Tensor, cuboids: Tensor) -> Tensor:
        """The global vectors' update: each attends to every position (and, optionally, to the global vectors).
        g [B, K, C] (normalised), cuboids [B, N, V, C] -> [B, K, C]."""
        q = self.scale * heads_of(self.global_to_local_q(g), self.heads)  # [B, heads, K, C/heads]
        positions = cuboids.flatten(1, 2)
        k, v = heads_of(self.global_to_local_k(positions), self.heads), heads_of(self.global_to_local_v(positions), self.heads)
        if self.global_self_attention:
            gq, gk, gv = self.split_heads(self.global_qkv(g), 3)
            score = torch.cat([q @ k.transpose(-2, -1), (self.scale * gq) @ gk.transpose(-2, -1)], dim=-1)
            v = torch.cat([v, gv], dim=-2)
        else:
            score = q @ k.transpose(-2, -1)
        return merge_heads(self.attn_drop(score.softmax(dim=-1)) @ v)


class CuboidCrossAttention(nn.Module):
    """Pre-norm cross-attention of x to a memory, both split into ``temporal_groups`` groups of frames and
    (h, w) windows of ``window`` (the paper's decoder, Sec. 3); the bias is indexed by relative (t, h, w) in a
    table of ``max_frames`` frames. x [B, T, H, W, C], memory [B, T_mem, H, W, C] -> the update of x."""

    def __init__(self, dim: int, heads: int, window: tuple[int, int], temporal_groups: int, strategy: Strategy,
                 frames: int, memory_frames: int, max_frames: int, *, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        self.heads, self.strategy, self.scale, self.window = heads, strategy, (dim // heads) ** -0.5, window
        self.groups = temporal_groups
        self.norm = nn.LayerNorm(dim)
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.kv_proj = nn.Linear(dim, 2 * dim, bias=False)
        query: Cuboid = (-(-frames // temporal_groups), *window)
        key: Cuboid = (-(-memory_frames // temporal_groups), *window)
        self.position_bias = PositionBias(heads, (max_frames, *window), math.prod(query), math.prod(key))
        self.attn_drop, self.proj_drop = nn.Dropout(attn_drop), nn.Dropout(proj_drop)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, memory: Tensor) -> Tensor:
        x = self.norm(x)
        sides = x.shape[1:4]
        x = pad_to_cuboids(x, (self.groups, *self.window))
        memory = pad_to_cuboids(memory, (self.groups, *self.window), time_first=True)
        x_size: Cuboid = (x.shape[1] // self.groups, *self.window)
        q = heads_of(self.q_proj(to_cuboids(x, x_size, self.strategy)), self.heads)
        memory_size: Cuboid = (memory.shape[1] // self.groups, *self.window)
        k, v = (heads_of(t, self.heads) for t in self.kv_proj(to_cuboids(memory, memory_size, self.strategy)).chunk(2, -1))
        score = (self.scale * q) @ k.transpose(-2, -1) + self.position_bias()
        out = merge_heads(self.attn_drop(score.softmax(dim=-1)) @ v)
        out = from_cuboids(self.proj_drop(self.proj(out)), x_size, self.strategy, x.shape[1:4])
        return out[:, :sides[0], :sides[1], :sides[2]]


class TransformerFFN(nn.Module):
    """Pre-norm position-wise FFN with its residual: x + drop(fc2(drop(act(fc1(norm(x)))))), hidden 4 C.
    [..., C] -> [..., C]."""

    def __init__(self, dim: int, activation: type[nn.Module] = nn.GELU, drop: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 4 * dim), activation(), nn.Linear(4 * dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop(self.fc2(self.drop(self.act(self.fc1(self.norm(x))))))


class CuboidSelfBlock(nn.Module):
    """A stack of cuboid self-attentions (one per decomposition, e.g. the three axial ones), each followed by a
    residual FFN (the authors' ``use_inter_ffn``): x <- ffn(x + attn(x)); global vectors g <- g + attn_g.
    x [B, T, H, W, C] (g [B, K, C]) -> same."""

    def __init__(self, attentions: Sequence[CuboidSelfAttention], dim: int, activation: type[nn.Module],
                 drop: float) -> None:
        super().__init__()
        self.attentions = nn.ModuleList(attentions)
        self.ffns = nn.ModuleList(TransformerFFN(dim, activation, drop) for _ in attentions)

    def forward(self, x: Tensor, g: Tensor | None = None) -> Tensor | tuple[Tensor, Tensor]:
        for attention, ffn in zip(self.attentions, self.ffns):
            if g is None:
                x = ffn(x + attention(x))
            else:
                dx, dg = attention(x, g)
                x, g = ffn(x + dx), g + dg
        return x if g is None else (x, g)


class CuboidCrossBlock(nn.Module):
    """Cross-attentions to the memory, each followed by a residual FFN: x <- ffn(x + attn(x, memory))."""

    def __init__(self, attentions: Sequence[CuboidCrossAttention], dim: int, activation: type[nn.Module],
                 drop: float) -> None:
        super().__init__()
        self.attentions = nn.ModuleList(attentions)
        self.ffns = nn.ModuleList(TransformerFFN(dim, activation, drop) for _ in attentions)

    def forward(self, x: Tensor, memory: Tensor) -> Tensor:
        for attention, ffn in zip(self.attentions, self.ffns):
            x = ffn(x + attention(x, memory))
        return x


class PatchMerge(nn.Module):
    """Patch merging in (t, h, w) blocks of ``factor`` (Swin's, in 3-D): each block's positions concatenated
    (ordered t, h, w, then channels), LayerNorm, a linear map without bias. Zero-pads sides that ``factor`` does not
    divide. [B, T, H, W, C] -> [B, T/f_t, H/f_h, W/f_w, out_dim]."""

    def __init__(self, dim: int, out_dim: int, factor: Cuboid) -> None:
        super().__init__()
        self.factor = factor
        self.norm = nn.LayerNorm(math.prod(factor) * dim)
        self.reduction = nn.Linear(math.prod(factor) * dim, out_dim, bias=False)

    def out_sides(self, sides: Sequence[int]) -> Cuboid:
        return tuple(-(-s // f) for s, f in zip(sides, self.factor))

    def forward(self, x: Tensor) -> Tensor:
        x = pad_to_cuboids(x, self.factor)
        b, t, h, w, c = x.shape
        (ft, fh, fw), (nt, nh, nw) = self.factor, self.out_sides((t, h, w))
        x = x.reshape(b, nt, ft, nh, fh, nw, fw, c).permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(b, nt, nh, nw, -1)
        return self.reduction(self.norm(x))


class FrameUpsample(nn.Module):
    """Nearest upsampling of every frame to ``size`` (H', W') and a 3x3 conv. [B, T, H, W, C] -> [B, T, H', W',
    out_dim]."""

    def __init__(self, dim: int, out_dim: int, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = size
        self.conv = nn.Conv2d(dim, out_dim, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        b, t = x.shape[:2]
        y = F.interpolate(x.flatten(0, 1).permute(0, 3, 1, 2), size=self.size, mode="nearest")
        return self.conv(y).permute(0, 2, 3, 1).unflatten(0, (b, t))


class PositionEmbedding(nn.Module):
    """Learned embeddings added to [B, T, H, W, C]: of the frame plus of the (h, w) cell (``"t+hw"``) or plus
    of the row and of the column (``"t+h+w"``)."""

    def __init__(self, dim: int, sides: Sequence[int], kind: str) -> None:
        super().__init__()
        t, h, w = sides
        self.kind, self.width = kind, w
        self.frame = nn.Embedding(t, dim)
        if kind == "t+hw":
            self.cell = nn.Embedding(h * w, dim)
        else:
            self.row, self.column = nn.Embedding(h, dim), nn.Embedding(w, dim)
        for embedding in self.children():
            nn.init.trunc_normal_(embedding.weight, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        t, h, w, c = x.shape[1:]
        x = x + self.frame.weight[:t].reshape(t, 1, 1, c)
        if self.kind == "t+hw":
            cells = torch.arange(h, device=x.device)[:, None] * self.width + torch.arange(w, device=x.device)
            return x + self.cell(cells)
        return x + self.row.weight[:h].reshape(h, 1, c) + self.column.weight[:w]
