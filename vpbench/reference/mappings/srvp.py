"""The SRVP authors' EncoderDecoder (github.com/yuseonk/SRVP, model/SRVP.py, Modules.py, Attention.py, ConvGRU.py)
into vpbench's ``srvp`` (and its ConvGRU cells into ``convgru``'s).

Module by module (:func:`srvp_table`): the official separate 1x1 projections and the GRU's input convolutions are
stacked along their output channels into vpbench's fused convolutions. The official model shares one ConvNet
among the N frames (``LinearProjection`` appends the same module N times), so its state dict names the same
tensors N times (``enc_sc.lpconv.layers.0`` ... ``layers.N-1``); ``layers.0`` is the one read, the others are
checked equal to it and not loaded (:data:`SHARED`).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import torch
from torch import Tensor

from vpbench.reference.mappings import register_mapping
from vpbench.reference.mappings.links import MappingError, WeightMap, stacked

Table = list[tuple[str, tuple[str, ...]]]  # (vpbench module, official modules stacked along dim 0 into it)
FRAME_NET = "enc_sc.lpconv.layers.0"  # Eq. 6's ConvNet: conv, BN, ReLU, conv, BN, ReLU
SHARED = re.compile(r"^enc_sc\.lpconv\.layers\.(\d+)\.(.+)$")


def convgru_table(ours: str = "", theirs: str = "") -> Table:
    """vpbench's ConvGRUCell ``ours`` from the official Conv2DGRUCell ``theirs`` (module paths, "" for the cell
    itself): x_conv = [i2h; xg] = [W_xz; W_xr; W_xg] (the official splits i2h + h2h into z, then r);
    h_conv = h2h = [W_hz; W_hr]; hg_conv = hg."""
    def at(prefix: str, name: str) -> str:
        return f"{prefix}.{name}" if prefix else name

    return [(at(ours, "x_conv"), (at(theirs, "i2h"), at(theirs, "xg"))),
            (at(ours, "h_conv"), (at(theirs, "h2h"),)),
            (at(ours, "hg_conv"), (at(theirs, "hg"),))]


def cross_table(ours: str, theirs: str) -> Table:
    """vpbench's CrossAttention ``ours`` from the official module ``theirs`` (``step1`` or ``step2``).

    proj_t projects A^T into [Q_T, K_T, V_T] and proj_s projects A^S into [Q_S, K_S, V_S]. The official
    ta_to_sa(A^T, A^S, A^S) takes its query from A^T and its key and value from A^S (spatially fused,
    attn(Q_T, K_S, V_S)); sa_to_ta(A^S, A^T, A^T) the other way round (attn(Q_S, K_T, V_T))."""
    return [(f"{ours}.proj_t", (f"{theirs}.ta_to_sa.Wq", f"{theirs}.sa_to_ta.Wk", f"{theirs}.sa_to_ta.Wv")),
            (f"{ours}.proj_s", (f"{theirs}.sa_to_ta.Wq", f"{theirs}.ta_to_sa.Wk", f"{theirs}.ta_to_sa.Wv"))]


def srvp_table(layers: int) -> Table:
    """vpbench's SRVP from the official EncoderDecoder, module by module."""
    table: Table = []
    for ours, theirs in (("encoder", "encoder"), ("forecaster", "forecast")):
        for i in range(layers):
            table += convgru_table(f"{ours}.{i}", f"{theirs}.cell{i}")
    return table + [
        # SA (step1): spatial self-attention and cross-attention; its temporal attention has no weights.
        ("sa.spatial.qkv", ("step1.sa.Wq", "step1.sa.Wk", "step1.sa.Wv")),
        *cross_table("sa.cross", "step1"),
        # RFA: h'^E (enc_sc, Eqs. 6-8), h'^D (step2.dec_sc, Eqs. 9-10), then SA-style attention (step2).
        ("rfa.temporal_corr.conv1", (f"{FRAME_NET}.0",)),
        ("rfa.temporal_corr.bn1", (f"{FRAME_NET}.1",)),
        ("rfa.temporal_corr.conv2", (f"{FRAME_NET}.3",)),
        ("rfa.temporal_corr.bn2", (f"{FRAME_NET}.4",)),
        ("rfa.temporal_corr.add_norm.norm", ("enc_sc.norm.norm",)),
        ("rfa.spatial_corr.add_norm.norm", ("step2.dec_sc.norm.norm",)),
        ("rfa.spatial_corr.conv.0", ("step2.dec_sc.conv2d.0",)),
        ("rfa.spatial.qkv", ("step2.sa.Wq", "step2.sa.Wk", "step2.sa.Wv")),
        ("rfa.context_conv.0", ("step2.c_conv.0",)),
        ("rfa.refined_conv.0", ("step2.r_conv.0",)),
        *cross_table("rfa.cross", "step2"),
        ("rfa.spatial_fused_conv.0", ("step2.sf_conv.0",)),
        ("rfa.temporal_fused_conv.0", ("step2.tf_conv.0",)),
        # Eq. 11 over [h^D, F1, F2]: the official concatenation order is vpbench's.
        ("output.0", ("output_layer.0",)),
    ]


def _suffixes(official: Mapping[str, Tensor], module: str) -> list[str]:
    """The tensor names (weight, bias, running_mean, ...) of ``module`` in an official state dict."""
    start = f"{module}."
    return [k[len(start):] for k in official if k.startswith(start) and "." not in k[len(start):]]


def table_map(table: Table, official: Mapping[str, Tensor]) -> WeightMap:
    """The links of ``table`` for every tensor the official state dict has of each module; the frame ConvNet's
    copies beyond the first are not loaded (:data:`SHARED`)."""
    def sizes(names: list[str]) -> list[int]:
        return [official[n].shape[0] if n in official and official[n].dim() else 0 for n in names]

    links = [stacked(f"{mine}.{suffix}", refs, sizes(refs)) for mine, theirs in table
             for suffix in _suffixes(official, theirs[0]) for refs in [[f"{t}.{suffix}" for t in theirs]]]
    copies = frozenset(k for k in official if (m := SHARED.match(k)) and m[1] != "0")
    return WeightMap(links, derived=copies)


def shared_copies_differ(official: Mapping[str, Tensor]) -> list[str]:
    """The copies of the shared frame ConvNet that differ from ``layers.0``'s (none in a checkpoint of the code)."""
    return [k for k in official if (m := SHARED.match(k)) and m[1] != "0"
            and not torch.equal(official[k], official.get(f"{FRAME_NET}.{m[2]}", official[k].new_empty(0)))]


@register_mapping("srvp", "srvp")
def authors_srvp(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor], options: Mapping[str, Any]) -> WeightMap:
    differ = shared_copies_differ(reference)
    if differ:
        raise MappingError([], differ[:1])
    return table_map(srvp_table(options["layers"]), reference)
