"""The authors' Earthformer (github.com/amazon-science/earth-forecasting-transformer, ``CuboidTransformerModel``)
into vpbench's ``earthformer``.

The layouts are the same; the module paths differ (:data:`RULES`). The stem and head of the authors' "conv" type
(``initial_encoder.conv_block``, ``final_decoder.conv_block``) and of their "stack_conv" type (``*_list.{i}``) both
become vpbench's stages ``stem.{i}`` / ``head.{i}``. The relative-position index buffers are derived by vpbench.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from vpbench.reference.mappings import register_mapping
from vpbench.reference.mappings.links import Rules, WeightMap, renamed

RULES: Rules = [
    (r"^initial_encoder\.conv_block\.", "stem.0.convs."),
    (r"^initial_encoder\.patch_merge\.", "stem.0.merge."),
    (r"^initial_encoder\.conv_block_list\.(\d+)\.", r"stem.\1.convs."),
    (r"^initial_encoder\.patch_merge_list\.(\d+)\.", r"stem.\1.merge."),
    (r"^final_decoder\.conv_block\.", "head.0.convs."),
    (r"^final_decoder\.upsample\.", "head.0.upsample."),
    (r"^final_decoder\.conv_block_list\.(\d+)\.", r"head.\1.convs."),
    (r"^final_decoder\.upsample_list\.(\d+)\.", r"head.\1.upsample."),
    (r"^dec_final_proj\.", "readout."),
    (r"^init_global_vectors$", "global_vectors"),
    (r"^enc_pos_embed\.", "input_position."),
    (r"^dec_pos_embed\.", "query_position."),
    (r"^z_proj\.", "query_proj."),
    (r"\.T_embed\.", ".frame."),
    (r"\.HW_embed\.", ".cell."),
    (r"\.H_embed\.", ".row."),
    (r"\.W_embed\.", ".column."),
    (r"^encoder\.blocks\.", "encoder."),
    (r"^encoder\.down_layers\.", "downsample."),
    (r"^encoder\.down_layer_global_proj\.", "global_downsample."),
    (r"^decoder\.self_blocks\.", "decoder_self."),
    (r"^decoder\.cross_blocks\.", "decoder_cross."),
    (r"^decoder\.upsample_layers\.", "upsample."),
    (r"\.attn_l\.", ".attentions."),
    (r"\.ffn_l\.(\d+)\.ffn_1\.", r".ffns.\1.fc1."),
    (r"\.ffn_l\.(\d+)\.ffn_2\.", r".ffns.\1.fc2."),
    (r"\.ffn_l\.(\d+)\.layer_norm\.", r".ffns.\1.norm."),
    (r"\.relative_position_bias_table$", ".position_bias.table"),
    (r"\.l2g_q_net\.", ".local_to_global_q."),
    (r"\.l2g_global_kv_net\.", ".local_to_global_kv."),
    (r"\.g2l_global_q_net\.", ".global_to_local_q."),
    (r"\.g2l_k_net\.", ".global_to_local_k."),
    (r"\.g2l_v_net\.", ".global_to_local_v."),
    (r"\.g2g_global_qkv_net\.", ".global_qkv."),
    (r"\.global_vec_norm\.", ".global_norm."),
]
DERIVED = re.compile(r"\.relative_position_index$")


@register_mapping("earthformer", "earthformer")
def authors_earthformer(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor],
                        options: Mapping[str, Any]) -> WeightMap:
    derived = frozenset(n for n in reference if DERIVED.search(n))
    return WeightMap(renamed(reference, RULES, ours, skip=derived), derived=derived)
