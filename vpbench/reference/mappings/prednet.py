"""OpenSTL v0.3.0's PredNet (openstl/models/prednet_model.py) into vpbench's ``prednet``.

OpenSTL keeps one ModuleList per kind of convolution, named by the kind: the ConvLSTM's gates ``i``, ``f``, ``c``
and ``o`` (one convolution each per layer), ``Ahat`` (layer l's prediction at index 2l, its ReLU at 2l + 1) and
``A`` (the next layer's target, the same way). vpbench fuses each layer's four gates into one convolution
(``gates.<l>``: i, f, c, o stacked along the output channels); ``predictions`` and ``targets`` are plain lists.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from vpbench.reference.mappings import register_mapping
from vpbench.reference.mappings.links import Link, WeightMap, copy, stacked

GATES = ("i", "f", "c", "o")  # the order of vpbench's fused gates
CONV = re.compile(r"^(A|Ahat)\.(\d+)\.(weight|bias)$")
VPBENCH_LISTS = {"Ahat": "predictions", "A": "targets"}


@register_mapping("openstl", "prednet")
def openstl_prednet(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor],
                    options: Mapping[str, Any]) -> WeightMap:
    links: list[Link] = []
    for name in reference:
        found = CONV.match(name)
        if found:
            kind, index, tensor = found.groups()
            links.append(copy(f"{VPBENCH_LISTS[kind]}.{int(index) // 2}.{tensor}", name))
    layers = sorted({int(n.split(".")[1]) for n in reference if n.split(".")[0] in GATES})
    for layer in layers:
        for tensor in ("weight", "bias"):
            refs = [f"{gate}.{layer}.{tensor}" for gate in GATES]
            sizes = [reference[r].shape[0] for r in refs if r in reference]  # a missing one: check() names it
            links.append(stacked(f"gates.{layer}.{tensor}", refs, sizes))
    return WeightMap(links)
