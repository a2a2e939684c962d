"""The authors' PredFormer (github.com/yyyujintang/PredFormer, PredFormer_Model, Quadruplet-TSST) into vpbench's
``predformer``: a PredFormerLayer's four transformers (ts_temporal, ts_space, st_space, st_temporal) are
``blocks.0..3``; a GatedTransformer's layers are lists of (PreNorm(Attention), PreNorm(SwiGLU), DropPath,
DropPath)."""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from vpbench.reference.mappings import register_mapping
from vpbench.reference.mappings.links import Rules, WeightMap, renamed

RULES: Rules = [
    (r"^to_patch_embedding\.1\.", "embed."),
    (r"^mlp_head\.0\.", "head_norm."),
    (r"^mlp_head\.1\.", "head."),
    (r"^blocks\.(\d+)\.ts_temporal_transformer\.", r"layers.\1.blocks.0."),
    (r"^blocks\.(\d+)\.ts_space_transformer\.", r"layers.\1.blocks.1."),
    (r"^blocks\.(\d+)\.st_space_transformer\.", r"layers.\1.blocks.2."),
    (r"^blocks\.(\d+)\.st_temporal_transformer\.", r"layers.\1.blocks.3."),
    (r"\.layers\.(\d+)\.0\.norm\.", r".attn_norms.\1."),
    (r"\.layers\.(\d+)\.0\.fn\.to_qkv\.", r".attns.\1.qkv."),
    (r"\.layers\.(\d+)\.0\.fn\.to_out\.", r".attns.\1.out."),
    (r"\.layers\.(\d+)\.1\.norm\.", r".ff_norms.\1."),
    (r"\.layers\.(\d+)\.1\.fn\.", r".ffs.\1."),
]


@register_mapping("predformer", "predformer")
def authors_predformer(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor],
                       options: Mapping[str, Any]) -> WeightMap:
    return WeightMap(renamed(reference, RULES, ours))
