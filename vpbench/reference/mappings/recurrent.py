"""OpenSTL's recurrent models (openstl/models/{convlstm,predrnn,predrnnpp,mim,predrnnv2,e3dlstm}_model.py) into
vpbench's ``openstl`` forms of ``convlstm``, ``stlstm``, ``causallstm``, ``mim``, ``predrnnv2`` and ``e3dlstm``.

OpenSTL's cells hold separate convolutions where vpbench's fuse them, in another gate order for some (MIM's and
the Causal LSTM's c2m: [i, g, f, o] against vpbench's [i, f, g, o], :data:`IGFO`). OpenSTL patches a frame's
channels in (py, px, C) order, vpbench in (C, py, px): the bottom layer's input convolution has its input
channels, and the readout its output channels, permuted (:func:`patch_order`). E3D-LSTM's readout, a (2, 1, 1)
3D convolution over the window's two slices, is vpbench's 1x1 convolution of the slices folded into channels.
Parameters OpenSTL defines and its forward never uses (:data:`UNUSED`) have no vpbench counterpart.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import torch
from torch import Tensor

from vpbench.reference.mappings import register_mapping
from vpbench.reference.mappings.links import Link, WeightMap, copy, gates, permuted

IGFO = (0, 2, 1, 3)  # OpenSTL's MIM and c2m convolutions: chunks [i, g, f, o] -> vpbench's [i, f, g, o]
# OpenSTL's parameters that its forward never uses: ConvLSTM's conv_o and conv_last per cell, PredRNN++'s conv_o
# per Causal LSTM, MIM's conv_last per MIM-N.
UNUSED = {"convlstm": re.compile(r"^cell_list\.\d+\.(conv_o|conv_last)\."),
          "causallstm": re.compile(r"^cell_list\.\d+\.conv_o\."),
          "mim": re.compile(r"^stlstm_layer_diff\.\d+\.conv_last\.")}


def patch_order(channels: int, patch: int) -> Tensor:
    """For each vpbench patch channel (c, py, px), OpenSTL's index of the same pixel ((py, px, c))."""
    return torch.arange(patch * patch * channels).reshape(patch, patch, channels).permute(2, 0, 1).flatten()


def peephole(ours: str, ct: str, oc: str) -> Link:
    """vpbench's [W_ci; W_cf; W_co] from MIM's ct_weight ([W_ci; W_cf] on channels) and oc_weight."""
    return Link(ours, [ct, oc], lambda c, o: torch.stack([*c.chunk(2, dim=0), o]),
                lambda g: [torch.cat([g[0], g[1]], dim=0), g[2]])


def stlstm_links(ours: str, ref: str) -> list[Link]:
    """PredRNN's ST-LSTM: OpenSTL's convolutions are in vpbench's order already."""
    return [copy(f"{ours}.x_conv.weight", f"{ref}.conv_x.0.weight"),  # [i, f, g, i', f', g', o]
            copy(f"{ours}.h_conv.weight", f"{ref}.conv_h.0.weight"),  # [i, f, g, o]
            copy(f"{ours}.m_conv.weight", f"{ref}.conv_m.0.weight"),  # [i', f', g']
            copy(f"{ours}.o_conv.weight", f"{ref}.conv_o.0.weight"),
            copy(f"{ours}.fuse.weight", f"{ref}.conv_last.weight")]


def mim_convlstm_links(ours: str, ref: str) -> list[Link]:
    """MIM-N / MIM-S (OpenSTL's MIMN, MIMBlock.MIMS): gates [i, g, f, o], peepholes ct/oc_weight."""
    return [gates(f"{ours}.x_conv.weight", f"{ref}.conv_x_concat.0.weight", IGFO),
            gates(f"{ours}.h_conv.weight", f"{ref}.conv_h_concat.0.weight", IGFO),
            peephole(f"{ours}.peephole", f"{ref}.ct_weight", f"{ref}.oc_weight")]


def causal_lstm_links(ours: str, ref: str) -> list[Link]:
    """PredRNN++'s Causal LSTM: OpenSTL's c2m convolution is [i', g', f', o], vpbench's [i', f', g', o]."""
    return [copy(f"{ours}.x_conv.weight", f"{ref}.conv_x.0.weight"),  # [i, f, g, i', f', g', o]
            copy(f"{ours}.h_conv.weight", f"{ref}.conv_h.0.weight"),  # [i, f, g, o]
            copy(f"{ours}.c_conv.weight", f"{ref}.conv_c.0.weight"),  # [i, f, g]
            copy(f"{ours}.m_conv.weight", f"{ref}.conv_m.0.weight"),  # [i', f', W_mm]
            gates(f"{ours}.k_conv.weight", f"{ref}.conv_c2m.0.weight", IGFO),
            copy(f"{ours}.om_conv.weight", f"{ref}.conv_om.0.weight"),
            copy(f"{ours}.fuse.weight", f"{ref}.conv_last.weight")]


def ghu_links(ours: str, ref: str) -> list[Link]:
    """The gradient highway unit: [p, s] in both."""
    return [copy(f"{ours}.x_conv.weight", f"{ref}.x_concat.0.weight"),
            copy(f"{ours}.z_conv.weight", f"{ref}.z_concat.0.weight")]


def mim_block_links(ours: str, block: str, diff: str) -> list[Link]:
    """A MIM block (OpenSTL's MIMBlock ``block`` and the model's MIM-N ``diff``, which vpbench holds in the block)."""
    return [gates(f"{ours}.x_conv.weight", f"{block}.conv_x_cc.0.weight", IGFO),  # OpenSTL: [i, g, f', o]
            copy(f"{ours}.h_conv.weight", f"{block}.conv_t_cc.0.weight"),  # [i, g, o] in both
            gates(f"{ours}.m_conv.weight", f"{block}.conv_s_cc.0.weight", IGFO),  # OpenSTL: [i', g', f', o]
            copy(f"{ours}.fuse.weight", f"{block}.conv_last.weight"),
            *mim_convlstm_links(f"{ours}.mim_n", diff),
            *mim_convlstm_links(f"{ours}.mim_s", block)]


def cell_links(family: str, layers: int, prefix: str = "cells.") -> list[Link]:
    """vpbench's cells (``<prefix><i>``) from OpenSTL's cells of a recurrent model of ``layers`` layers."""
    if family == "convlstm":
        return [link for i in range(layers) for link in (  # [i, f, g, o] in both
            copy(f"{prefix}{i}.x_conv.weight", f"cell_list.{i}.conv_x.0.weight"),
            copy(f"{prefix}{i}.h_conv.weight", f"cell_list.{i}.conv_h.0.weight"))]
    if family == "stlstm":
        return [link for i in range(layers) for link in stlstm_links(f"{prefix}{i}", f"cell_list.{i}")]
    if family == "causallstm":  # vpbench's GHU is cell 1, so Causal LSTM i > 0 is cell i + 1
        links = ghu_links(f"{prefix}1", "gradient_highway")
        return links + [link for i in range(layers)
                        for link in causal_lstm_links(f"{prefix}{i + (i > 0)}", f"cell_list.{i}")]
    if family == "mim":
        links = stlstm_links(f"{prefix}0", "stlstm_layer.0")
        return links + [link for i in range(1, layers) for link in
                        mim_block_links(f"{prefix}{i}", f"stlstm_layer.{i}", f"stlstm_layer_diff.{i - 1}")]
    raise ValueError(f"no OpenSTL stack {family!r}")


def stack_links(family: str, in_channels: int, patch_size: int, layers: int) -> list[Link]:
    """Every vpbench parameter of a RecurrentStack from OpenSTL's: the cells, the first layer's input channels and
    the readout's output channels in vpbench's patch order."""
    order = patch_order(in_channels, patch_size)
    links = cell_links(family, layers)
    first = next(i for i, link in enumerate(links) if link.ours == "cells.0.x_conv.weight")
    links[first] = permuted(links[first], order, dim=1)
    return links + [permuted(copy("readout.weight", "conv_last.weight"), order, dim=0)]


def unused(family: str, reference: Mapping[str, Tensor]) -> frozenset[str]:
    pattern = UNUSED.get(family)
    return frozenset(n for n in reference if pattern is not None and pattern.search(n))


@register_mapping("openstl", "convlstm", "stlstm", "causallstm", "mim")
def openstl_stack(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor], options: Mapping[str, Any]) -> WeightMap:
    family = options["name"]
    links = stack_links(family, options["in_channels"], options["patch_size"], options["layers"])
    return WeightMap(links, unused(family, reference))


def predrnnv2_links(in_channels: int, patch_size: int, layers: int) -> list[Link]:
    """PredRNN.V2: ST-LSTMs (OpenSTL's order is vpbench's), the decoupling adapter, the patch-ordered readout."""
    order = patch_order(in_channels, patch_size)
    links = [permuted(copy("readout.weight", "conv_last.weight"), order, dim=0), copy("adapter.weight", "adapter.weight")]
    for i in range(layers):
        cell = stlstm_links(f"cells.{i}", f"cell_list.{i}")
        if i == 0:
            cell[0] = permuted(cell[0], order, dim=1)
        links += cell
    return links


@register_mapping("openstl", "predrnnv2")
def openstl_predrnnv2(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor],
                      options: Mapping[str, Any]) -> WeightMap:
    return WeightMap(predrnnv2_links(options["in_channels"], options["patch_size"], options["layers"]))


def e3dlstm_links(in_channels: int, patch_size: int, layers: int, readout_shape: tuple[int, ...]) -> list[Link]:
    """E3D-LSTM: 3D convolutions under vpbench's names; the readout [p*p*C, M, 2, 1, 1] folded into channels."""
    order = patch_order(in_channels, patch_size)
    readout = permuted(Link("readout.weight", ["conv_last.weight"], lambda w: w.flatten(1, 2),
                            lambda g: [g.reshape(readout_shape)]), order, dim=0)
    links = [readout]
    for i in range(layers):
        ref = f"cell_list.{i}"
        x_conv = copy(f"cells.{i}.x_conv.conv.weight", f"{ref}.conv_x.0.conv3d.weight")
        links += [permuted(x_conv, order, dim=1) if i == 0 else x_conv,
                  copy(f"cells.{i}.h_conv.conv.weight", f"{ref}.conv_h.0.conv3d.weight"),
                  copy(f"cells.{i}.m_conv.conv.weight", f"{ref}.conv_gm.0.conv3d.weight"),
                  copy(f"cells.{i}.co_conv.conv.weight", f"{ref}.conv_new_cell.0.conv3d.weight"),
                  copy(f"cells.{i}.mo_conv.conv.weight", f"{ref}.conv_new_gm.0.conv3d.weight"),
                  copy(f"cells.{i}.fuse.conv.weight", f"{ref}.conv_last.conv3d.weight"),
                  copy(f"cells.{i}.norm.weight", f"{ref}._norm_c_t.weight"),
                  copy(f"cells.{i}.norm.bias", f"{ref}._norm_c_t.bias")]
    return links


@register_mapping("openstl", "e3dlstm")
def openstl_e3dlstm(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor], options: Mapping[str, Any]) -> WeightMap:
    shape = tuple(reference["conv_last.weight"].shape) if "conv_last.weight" in reference else ()
    return WeightMap(e3dlstm_links(options["in_channels"], options["patch_size"], options["layers"], shape))
