"""Earthformer (Gao, Shi, Wang, Zhu, Wang, Li & Yeung, *Earthformer: Exploring Space-Time Transformers for Earth
System Forecasting*, NeurIPS 2022), as the authors build it (github.com/amazon-science/earth-forecasting-transformer:
``src/earthformer/cuboid_transformer/cuboid_transformer.py``, ``CuboidTransformerModel``; configurations in
``scripts/cuboid_transformer/{moving_mnist,nbody,sevir}/cfg*.yaml``).

A hierarchical encoder-decoder Transformer over channels-last [B, T, H, W, C] (blocks in
:mod:`vpbench.models.layers.cuboid_attention`)::

    x       = stem(frames)                         per-frame stages of (3x3 conv, GroupNorm, LeakyReLU(0.1)) x n
                                                   and a patch merge (H, W / s)
    x      += pos(t) + pos(h, w)                   learned embeddings ("t+hw"; SEVIR's "t+h+w")
    mem_l   = encoder(x)                           per level l: cuboid self-attention blocks (axial: cuboids
                                                   (T, 1, 1), (1, H, 1), (1, 1, W), each with its FFN), then a
                                                   patch merge (H, W / 2, channels x 2) to the next level
    z       = proj(pos(0))                         the decoder's queries: zeros + positions of the T_out frames
                                                   at the top level (the authors' z_init "zeros")
    z       = decoder(z, mem_l)                    top level down: cross-attention to mem_l (1 x 1 windows: each
                                                   position reads its own column of input frames), self-attention
                                                   blocks alternating with cross-attention blocks, then a
                                                   nearest upsample and 3x3 conv to the level below
    out     = readout(head(z))                     per-frame stages of (upsample, conv, GroupNorm, LeakyReLU)
                                                   back to H x W, a linear map to C

With ``global_vectors`` K > 0 (SEVIR), K learned vectors join the encoder's attention (paper Sec. 3: they read
every position, every cuboid reads them, and they read each other); the decoder does not use them, as in the
authors' SEVIR configuration. Frames are [B, T_in, C, H, W] in [0, 1]; the output has no activation in the
authors' code and vpbench clamps it to [0, 1] with a straight-through gradient. A horizon beyond ``output_frames``
is reached by feeding the last ``input_frames`` frames (inputs and predictions) back.

``config`` picks the authors' configuration (``mmnist``, ``nbody``: the same network; ``sevir``); every other
argument left at None takes that configuration's value. Not built: shifted or dilated windows, the authors'
``padding_type`` other than ``zeros``, gated FFNs, global-vector FFNs, the decoder's use of global vectors and
the block layout without intermediate FFNs (none is in these configurations).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from vpbench import presets
from vpbench.errors import UserError
from vpbench.models.layers.cuboid_attention import (
    CuboidCrossAttention,
    CuboidCrossBlock,
    CuboidSelfAttention,
    CuboidSelfBlock,
    FrameUpsample,
    PatchMerge,
    PositionEmbedding,
)
from vpbench.models.layers.output_range import clamp_straight_through
from vpbench.models.registry import register_model

# The authors' configurations (their cfg.yaml files' model sections).
MOVING_MNIST: dict[str, Any] = {
    "base_units": 64, "depth": (4, 4), "heads": 4, "drop": 0.1, "position": "t+hw", "global_vectors": 0,
    "stem_dims": None, "stem_scales": (2,), "stem_convs": (2,), "head_convs": (1,), "norm_groups": 16,
    "cross_window": 1,
}
SEVIR: dict[str, Any] = {
    "base_units": 128, "depth": (1, 1), "heads": 4, "drop": 0.1, "position": "t+h+w", "global_vectors": 8,
    "stem_dims": (16, 64, 128), "stem_scales": (3, 2, 2), "stem_convs": (2, 2, 2), "head_convs": (2, 2, 2),
    "norm_groups": None, "cross_window": 1,
}
CONFIGS = {"mmnist": MOVING_MNIST, "nbody": MOVING_MNIST, "sevir": SEVIR}  # N-body MNIST: Moving MNIST's network
LEAKY_SLOPE = 0.1


def conv_stage(in_dim: int, out_dim: int, convs: int, groups: int | None) -> nn.Sequential:
    """``convs`` x (3x3 conv, GroupNorm of ``groups`` groups (None: out_dim / 4), LeakyReLU 0.1), the first
    from ``in_dim``. [N, C_in, H, W] -> [N, out_dim, H, W]."""
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(in_dim if i == 0 else out_dim, out_dim, 3, padding=1),
                   nn.GroupNorm(groups or max(1, out_dim // 4), out_dim), nn.LeakyReLU(LEAKY_SLOPE)]
    return nn.Sequential(*layers)


def per_frame(convs: nn.Module, x: Tensor) -> Tensor:
    """2-D layers applied to every frame of channels-last x [B, T, H, W, C]."""
    b, t = x.shape[:2]
    return convs(x.flatten(0, 1).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).unflatten(0, (b, t))


class StemStage(nn.Module):
    """Convs then a (1, s, s) patch merge: [B, T, H, W, C] -> [B, T, H/s, W/s, dim]."""

    def __init__(self, in_dim: int, dim: int, scale: int, convs: int, groups: int | None) -> None:
        super().__init__()
        self.convs = conv_stage(in_dim, dim, convs, groups)
        self.merge = PatchMerge(dim, dim, (1, scale, scale))

    def forward(self, x: Tensor) -> Tensor:
        return self.merge(per_frame(self.convs, x))


class HeadStage(nn.Module):
    """Nearest upsample to ``size`` with a 3x3 conv, then convs: [B, T, h, w, in_dim] -> [B, T, H, W, dim]."""

    def __init__(self, in_dim: int, dim: int, size: tuple[int, int], convs: int, groups: int | None) -> None:
        super().__init__()
        self.upsample = FrameUpsample(in_dim, in_dim, size)
        self.convs = conv_stage(in_dim, dim, convs, groups)

    def forward(self, x: Tensor) -> Tensor:
        return per_frame(self.convs, self.upsample(x))


def axial(sides: Sequence[int]) -> list[tuple[tuple[int, int, int], tuple[str, str, str]]]:
    """The axial pattern: attention along time, then rows, then columns of a (T, H, W) grid."""
    t, h, w = sides
    return [((t, 1, 1), ("l", "l", "l")), ((1, h, 1), ("l", "l", "l")), ((1, 1, w), ("l", "l", "l"))]


class Earthformer(nn.Module):
    """Earthformer (see the module docstring). Shapes: [B, T_in, C, H, W] -> [B, horizon, C, H, W]."""

    def __init__(self, *, in_channels: int = 1, input_frames: int = 10, output_frames: int = 10,
                 img_size: Sequence[int] = (64, 64), config: str = "mmnist", base_units: int | None = None,
                 depth: Sequence[int] | None = None, heads: int | None = None, drop: float | None = None,
                 position: str | None = None, global_vectors: int | None = None,
                 stem_dims: Sequence[int] | None = None, stem_scales: Sequence[int] | None = None,
                 stem_convs: Sequence[int] | None = None, head_convs: Sequence[int] | None = None,
                 norm_groups: int | None = -1, cross_window: int | None = None) -> None:
        super().__init__()
        if config not in CONFIGS:
            raise UserError(f"Earthformer has no configuration {config!r}; choose model.config from {', '.join(CONFIGS)}")
        given = {"base_units": base_units, "depth": depth, "heads": heads, "drop": drop, "position": position,
                 "global_vectors": global_vectors, "stem_dims": stem_dims, "stem_scales": stem_scales,
                 "stem_convs": stem_convs, "head_convs": head_convs, "cross_window": cross_window}
        c = {**CONFIGS[config], **{k: v for k, v in given.items() if v is not None}}
        if norm_groups != -1:  # None is a value here: out_dim / 4 groups
            c["norm_groups"] = norm_groups
        c["stem_dims"] = c["stem_dims"] or (c["base_units"],)  # the authors' one-stage stem is base_units wide
        check(c, in_channels, input_frames, output_frames)
        self.input_frames, self.output_frames, self.img_size = input_frames, output_frames, tuple(img_size)
        base, levels, drop = c["base_units"], len(c["depth"]), c["drop"]
        dims = [base * 2 ** i for i in range(levels)]
        stem_in = [in_channels, *c["stem_dims"][:-1]]
        self.stem = nn.ModuleList(StemStage(i, o, s, n, c["norm_groups"]) for i, o, s, n in
                                  zip(stem_in, c["stem_dims"], c["stem_scales"], c["stem_convs"]))
        sides = [tuple(img_size)]
        for stage in self.stem:
            sides.append(stage.merge.out_sides((1, *sides[-1]))[1:])
        head_dims = list(reversed(c["stem_dims"]))  # the authors' "large channel" head: SEVIR's [128, 64, 16]
        self.head = nn.ModuleList(HeadStage(i, o, size, n, c["norm_groups"]) for i, o, size, n in
                                  zip([base, *head_dims[:-1]], head_dims, reversed(sides[:-1]), c["head_convs"]))
        self.readout = nn.Linear(head_dims[-1], in_channels)
        grids = [(input_frames, *sides[-1])]
        for _ in range(levels - 1):
            grids.append((input_frames, -(-grids[-1][1] // 2), -(-grids[-1][2] // 2)))
        self.input_position = PositionEmbedding(base, grids[0], c["position"])
        self.global_vectors = nn.Parameter(torch.zeros(c["global_vectors"], base)) if c["global_vectors"] else None
        use_globals = c["global_vectors"] > 0

        def self_block(dim: int, grid: Sequence[int], out_grid: Sequence[int], globals_: bool) -> CuboidSelfBlock:
            """Axial attention over ``out_grid`` with the cuboids of ``grid`` (the decoder's: of the memory's
            T_in frames, as the authors build it; clipped to T_out where shorter)."""
            attentions = [CuboidSelfAttention(dim, c["heads"], size, strategy, out_grid, global_vectors=globals_,
                                              global_self_attention=globals_, attn_drop=drop, proj_drop=drop)
                          for size, strategy in axial(grid)]
            return CuboidSelfBlock(attentions, dim, nn.GELU, drop)

        self.encoder = nn.ModuleList(nn.ModuleList(self_block(dim, grid, grid, use_globals) for _ in range(n))
                                     for dim, grid, n in zip(dims, grids, c["depth"]))
        self.downsample = nn.ModuleList(PatchMerge(dims[i], dims[i + 1], (1, 2, 2)) for i in range(levels - 1))
        self.global_downsample = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(levels - 1)) \
            if use_globals else None
        out_grids = [(output_frames, *grid[1:]) for grid in grids]
        self.query_position = PositionEmbedding(dims[-1], out_grids[-1], c["position"])
        self.query_proj = nn.Linear(dims[-1], dims[-1])
        window = c["cross_window"]

        def cross_block(dim: int, grid: Sequence[int]) -> CuboidCrossBlock:
            k = min(window, grid[1], grid[2])
            attention = CuboidCrossAttention(dim, c["heads"], (k, k), 1, ("l", "l", "l"), output_frames,
                                             input_frames, input_frames + output_frames, attn_drop=drop, proj_drop=drop)
            return CuboidCrossBlock([attention], dim, nn.GELU, drop)

        # The top level starts with a cross-attention and has one self-attention block fewer (the authors'
        # dec_use_first_self_attn False).
        self.decoder_self = nn.ModuleList(
            nn.ModuleList(self_block(dim, grid, out_grid, False) for _ in range(n - (level == levels - 1)))
            for level, (dim, grid, out_grid, n) in enumerate(zip(dims, grids, out_grids, c["depth"])))
        self.decoder_cross = nn.ModuleList(nn.ModuleList(cross_block(dim, grid) for _ in range(n))
                                           for dim, grid, n in zip(dims, grids, c["depth"]))
        self.upsample = nn.ModuleList(FrameUpsample(dims[i + 1], dims[i], grids[i][1:]) for i in range(levels - 1))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The authors' initialisation: linear maps Kaiming-normal (fan in, linear gain), convs Kaiming-normal
        (fan out, leaky ReLU 0.1), biases 0, norms 1 and 0; embeddings, position biases and global vectors
        truncated normal (std 0.02)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="linear")
            elif isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=LEAKY_SLOPE, mode="fan_out", nonlinearity="leaky_relu")
            if isinstance(module, (nn.Linear, nn.Conv2d)) and module.bias is not None:
                nn.init.zeros_(module.bias)
        if self.global_vectors is not None:
            nn.init.trunc_normal_(self.global_vectors, std=0.02)

    def encode(self, x: Tensor) -> list[Tensor]:
        """The encoder's memory per level, [B, T_in, H_l, W_l, C_l], from the stem's output [B, T_in, H, W, C]."""
        g = None if self.global_vectors is None else self.global_vectors.expand(x.shape[0], -1, -1)
        memory = []
        for level, blocks in enumerate(self.encoder):
            for block in blocks:
                if g is None:
                    x = block(x)
                else:
                    x, g = block(x, g)
            memory.append(x)
            if level < len(self.downsample):
                x = self.downsample[level](x)
                if g is not None:
                    g = self.global_downsample[level](g)
        return memory

    def decode(self, memory: list[Tensor]) -> Tensor:
        """[B, T_out, H, W, C] at the stem's resolution from the memory."""
        top = memory[-1]
        z = self.query_proj(self.query_position(top.new_zeros(1, self.output_frames, *top.shape[2:])))
        z = z.expand(top.shape[0], -1, -1, -1, -1)
        for level in reversed(range(len(memory))):
            selfs, crosses = self.decoder_self[level], self.decoder_cross[level]
            first = len(crosses) - len(selfs)  # 1 at the top level: its first cross-attention comes alone
            for i, cross in enumerate(crosses):
                if i >= first:
                    z = selfs[i - first](z)
                z = cross(z, memory[level])
            if level > 0:
                z = self.upsample[level - 1](z)
        return z

    def raw(self, frames: Tensor) -> Tensor:
        """The next ``output_frames`` frames before the clamp (the authors' output): [B, T_in, C, H, W] ->
        [B, T_out, C, H, W]."""
        b, t, _, height, width = frames.shape
        if t != self.input_frames or (height, width) != self.img_size:
            raise UserError(f"Earthformer was built for {self.input_frames} frames of {self.img_size[0]} x "
                            f"{self.img_size[1]} (input_frames, img_size), got {t} of {height} x {width}")
        x = frames.permute(0, 1, 3, 4, 2)
        for stage in self.stem:
            x = stage(x)
        z = self.decode(self.encode(self.input_position(x)))
        for stage in self.head:
            z = stage(z)
        return self.readout(z).permute(0, 1, 4, 2, 3).contiguous()

    def forward(self, frames: Tensor, horizon: int) -> Tensor:
        """[B, T_in, C, H, W] -> [B, horizon, C, H, W] in [0, 1]: blocks of ``output_frames``, each reading the
        last ``input_frames`` frames known or predicted."""
        if horizon < 1:
            raise UserError(f"horizon must be at least 1 frame, got {horizon}")
        chunks, window = [], frames
        while sum(c.shape[1] for c in chunks) < horizon:
            chunks.append(clamp_straight_through(self.raw(window)))
            window = torch.cat([window, chunks[-1]], dim=1)[:, -self.input_frames:].contiguous()  # as a fresh input
        return torch.cat(chunks, dim=1)[:, :horizon]

def check(c: dict[str, Any], in_channels: int, input_frames: int, output_frames: int) -> None:
    """UserErrors for configurations the network cannot be built with."""
    stages = {len(c[k]) for k in ("stem_dims", "stem_scales", "stem_convs", "head_convs")}
    if len(stages) != 1 or min(c["stem_convs"]) < 1:
        raise UserError("Earthformer's stem_dims, stem_scales, stem_convs and head_convs need one entry per stem "
                        f"stage and stem_convs >= 1, got {c['stem_dims']}, {c['stem_scales']}, {c['stem_convs']}, "
                        f"{c['head_convs']}")
    if c["stem_dims"][-1] != c["base_units"] or c["base_units"] % c["heads"]:
        raise UserError(f"Earthformer's last stem_dims entry must equal base_units ({c['base_units']}) and "
                        f"base_units divide by heads ({c['heads']}), got stem_dims {c['stem_dims']}")
    if c["position"] not in ("t+hw", "t+h+w") or min(c["depth"]) < 1 or c["global_vectors"] < 0:
        raise UserError(f"Earthformer needs position 't+hw' or 't+h+w', depths >= 1 and global_vectors >= 0, got "
                        f"{c['position']!r}, {c['depth']}, {c['global_vectors']}")
    if min(in_channels, input_frames, output_frames) < 1:
        raise UserError(f"Earthformer needs in_channels, input_frames and output_frames >= 1, got {in_channels}, "
                        f"{input_frames}, {output_frames}")


# Presets: the authors' Moving MNIST network at full scale (model.config picks the others); the smaller scales
# shrink it for a CPU.
QUICK = {"config": "mmnist", "base_units": 16, "depth": [1, 1], "heads": 4}  # lists: as a run's config.yaml holds them
EARTHFORMER_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"config": "mmnist"}, "openstl": {"config": "mmnist"},
    "quick": QUICK, "tiny": {**QUICK, "base_units": 8, "heads": 2, "norm_groups": 4},
}
EARTHFORMER_PRESETS.update({"openstl-quick": EARTHFORMER_PRESETS["quick"],
                            "openstl-tiny": EARTHFORMER_PRESETS["tiny"]})
QUICK_LR = 3.0e-3
# quick: 4 epochs, not the preset's 3: after 3 its predictions were near-uniform (pixel std 0.34 of the ground
# truth's; MSE 2252.9, SSIM 0.325), after 4 0.375 (MSE 2199.2, SSIM 0.351; Moving MNIST, seed 0, 2026-12-07)
QUICK_EPOCHS = 4


def earthformer_recipe() -> dict[str, dict[str, Any]]:
    """The authors' training (their Moving MNIST cfg.yaml and training script): MSE, AdamW at lr 1e-3 with weight
    decay 1e-5 (SEVIR's: 0), gradients clipped to norm 1, a linear warmup over the first 20% of the steps then a
    cosine down to 1e-3 lr, stepped every batch; batch 32 (16 x 2 accumulated micro-batches there, one batch
    here). They exempt norms and biases from the weight decay; vpbench decays every parameter (at 1e-5). Under
    both protocols; the smaller scales peak at :data:`QUICK_LR`. Epochs are the preset's (the authors: 100, with
    early stopping), but :data:`QUICK_EPOCHS` at the quick scale."""
    own = {"loss": "mse", "optimizer": "adamw", "weight_decay": 1.0e-5, "scheduler": "warmup_cosine",
           "warmup_fraction": 0.2, "grad_clip": 1.0}
    recipes: dict[str, dict[str, Any]] = {}
    for name, lr in (("paper", 1.0e-3), ("quick", QUICK_LR), ("tiny", QUICK_LR), ("openstl", 1.0e-3),
                     ("openstl-quick", QUICK_LR), ("openstl-tiny", QUICK_LR)):
        protocol = presets.protocol_recipe(name) if name.startswith("openstl") else {}
        recipes[name] = {**protocol, **own, "lr": lr, "eta_min": 1.0e-3 * lr}
    recipes["paper"]["batch_size"] = recipes["openstl"]["batch_size"] = 32
    recipes["quick"]["epochs"] = QUICK_EPOCHS
    return recipes


register_model("earthformer", label="Earthformer", tags=("rnn-free",), rank=297, defaults=EARTHFORMER_PRESETS,
               recipe=earthformer_recipe())(Earthformer)
