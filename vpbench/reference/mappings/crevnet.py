"""OpenSTL v0.3.0's CrevNet (openstl/models/crevnet_model.py, modules/crevnet_modules.py) into vpbench's ``crevnet``.

The autoencoder's blocks (``encoder.stack.<k>.bottleneck_block``) hold a Dropout(0) after their second convolution,
which vpbench leaves out: the layers after it move down by one. Each predictor cell's three gate convolutions of
the cell state (``in_gate``, ``remember_gate``, ``cell_gate``) and of the memory (the same with ``1``) are fused,
in that order, into one (``gates``, ``memory_gates``); ``out_gate`` is ``output_gate``, ``w1`` ``fuse``, and the
mixing gates ``att.<l>.0`` are ``mixers.<l>``.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from vpbench.reference.mappings import register_mapping
from vpbench.reference.mappings.links import Link, Rules, WeightMap, renamed, stacked

BLOCK = re.compile(r"^encoder\.stack\.(\d+)\.bottleneck_block\.(\d+)\.")
GATES = {"gates": ("in_gate", "remember_gate", "cell_gate"),
         "memory_gates": ("in_gate1", "remember_gate1", "cell_gate1")}
CELL = re.compile(r"^frame_predictor\.convlstm\.(\d+)\.(\w+)\.(weight|bias)$")


def _block_layer(match: re.Match) -> str:
    block, index = int(match[1]), int(match[2])
    dropout = 4 if block == 0 else 6  # the first block has no leading BatchNorm and ReLU
    return f"autoencoder.blocks.{block}.bottleneck.{index - 1 if index > dropout else index}."


RULES: Rules = [
    (BLOCK.pattern, _block_layer),
    (r"^frame_predictor\.convlstm\.(\d+)\.out_gate\.", r"predictor.cells.\1.output_gate."),
    (r"^frame_predictor\.convlstm\.(\d+)\.w1\.", r"predictor.cells.\1.fuse."),
    (r"^frame_predictor\.att\.(\d+)\.0\.", r"predictor.mixers.\1."),
]


@register_mapping("openstl", "crevnet")
def openstl_crevnet(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor],
                    options: Mapping[str, Any]) -> WeightMap:
    fused = {n for n in reference if CELL.match(n) and CELL.match(n)[2] in {g for gs in GATES.values() for g in gs}}
    links: list[Link] = renamed(reference, RULES, ours, skip=fused)
    cells = sorted({int(CELL.match(n)[1]) for n in fused})
    for cell in cells:
        for ours_name, gates in GATES.items():
            for tensor in ("weight", "bias"):
                refs = [f"frame_predictor.convlstm.{cell}.{gate}.{tensor}" for gate in gates]
                sizes = [reference[r].shape[0] for r in refs if r in reference]  # a missing one: check() names it
                links.append(stacked(f"predictor.cells.{cell}.{ours_name}.{tensor}", refs, sizes))
    return WeightMap(links)
