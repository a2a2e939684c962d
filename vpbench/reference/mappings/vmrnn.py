"""The authors' VMRNN-D (github.com/yyyujintang/VMRNN-PyTorch: openstl/models/VMRNN_model.py ``VMRNN_D_Model``,
openstl/modules/VMRNN_modules.py, vmamba.py) into vpbench's ``vmrnn``.

``Downsample``/``Upsample`` hold the VMRNN cells (``layers``, each with its blocks ``VSBs``) and the patch
merging/expanding, as SwinLSTM's; a block's norm is ``ln_1``, its fusing Linear ``linear`` and its SS2D
``self_attention`` (the four directions' projections, steps, A and D stacked: ``x_proj_weight``, ``dt_projs_*``,
``A_logs``, ``Ds``). The up-sampling ``patch_embed`` and the fusing Linear of every block but a cell's first are
never used (:data:`UNUSED`).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from vpbench.reference.mappings import register_mapping
from vpbench.reference.mappings.links import Rules, WeightMap, renamed

RULES: Rules = [
    (r"^Downsample\.patch_embed\.", "embed."),
    (r"^Downsample\.layers\.(\d+)\.VSBs\.", r"down.\1.blocks."),
    (r"^Downsample\.downsample\.", "merges."),
    (r"^Upsample\.layers\.(\d+)\.VSBs\.", r"up.\1.blocks."),
    (r"^Upsample\.upsample\.", "expands."),
    (r"^Upsample\.Unembed\.Conv\.", "inflate.conv."),
    (r"\.ln_1\.", ".norm."),
    (r"\.linear\.", ".fuse."),
    (r"\.self_attention\.", ".mixer."),
    (r"\.mixer\.conv2d\.", ".mixer.conv."),
    (r"\.x_proj_weight$", ".x_proj"),
    (r"\.dt_projs_weight$", ".dt_proj_weight"),
    (r"\.dt_projs_bias$", ".dt_proj_bias"),
    (r"\.A_logs$", ".A_log"),
    (r"\.Ds$", ".skip"),
]
UNUSED = re.compile(r"^Upsample\.patch_embed\.|\.VSBs\.([1-9]\d*)\.linear\.")


@register_mapping("vmrnn", "vmrnn")
def authors_vmrnn(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor], options: Mapping[str, Any]) -> WeightMap:
    unused = frozenset(n for n in reference if UNUSED.search(n))
    return WeightMap(renamed(reference, RULES, ours, skip=unused), unused=unused)
