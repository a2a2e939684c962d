"""OpenSTL's SwinLSTM-D (openstl/models/swinlstm_model.py, modules/swinlstm_modules.py on timm 0.6.11's Swin
blocks) into vpbench's ``swinlstm`` (vpbench/models/swinlstm.py, layers/swin_blocks.py).

``Downsample``/``Upsample`` hold the SwinLSTM cells (``layers``, each with its blocks ``STBs``) and the patch
merging/expanding (``downsample``/``upsample``); a block's fusing Linear is ``red``, its MLP ``fc1``, ``fc2``.
OpenSTL's up-sampling ``patch_embed`` and the fusing Linear of its odd blocks are never used (:data:`UNUSED`);
the attention's relative-position index and mask are derived by vpbench (:data:`DERIVED`).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from vpbench.reference.mappings import register_mapping
from vpbench.reference.mappings.links import Rules, WeightMap, renamed

RULES: Rules = [
    (r"^Downsample\.patch_embed\.", "embed."),
    (r"^Downsample\.layers\.(\d+)\.STBs\.", r"down.\1.blocks."),
    (r"^Downsample\.downsample\.", "merges."),
    (r"^Upsample\.layers\.(\d+)\.STBs\.", r"up.\1.blocks."),
    (r"^Upsample\.upsample\.", "expands."),
    (r"^Upsample\.Unembed\.Conv\.", "inflate.conv."),
    (r"\.red\.", ".fuse."),
    (r"\.mlp\.fc1\.", ".mlp.0."),
    (r"\.mlp\.fc2\.", ".mlp.2."),
]
UNUSED = re.compile(r"^Upsample\.patch_embed\.|\.STBs\.\d*[13579]\.red\.")
DERIVED = re.compile(r"\.(relative_position_index|attn_mask)$")


@register_mapping("openstl", "swinlstm")
def openstl_swinlstm(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor],
                     options: Mapping[str, Any]) -> WeightMap:
    unused = frozenset(n for n in reference if UNUSED.search(n))
    derived = frozenset(n for n in reference if DERIVED.search(n))
    return WeightMap(renamed(reference, RULES, ours, skip=unused | derived), unused=unused, derived=derived)
