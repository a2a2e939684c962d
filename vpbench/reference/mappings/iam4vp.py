"""The authors' IAM4VP (github.com/seominseok0429/Implicit-Stacked-Autoregressive-Model-for-Video-Prediction,
``model.py`` ``IAM4VP``) into vpbench's ``iam4vp``.

The layouts are the same; the module paths differ (:data:`RULES`). The authors build ``N_T + 1`` translator blocks
(``hid.st_block.0 .. N_T``) and their forward runs the first ``N_T``: the last block is :data:`unused <UNUSED>`.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from vpbench.reference.mappings import register_mapping
from vpbench.reference.mappings.links import Rules, WeightMap, renamed

RULES: Rules = [
    (r"^mask_token$", "mask_tokens"),
    (r"^time_mlp\.linear1\.", "time_mlp.0."),
    (r"^time_mlp\.linear2\.", "time_mlp.2."),
    (r"^readout\.", "head."),
    (r"^dec\.readout\.", "merge."),
    (r"^enc\.enc\.", "encoder."),
    (r"^lp\.enc\.", "feedback_encoder."),
    (r"^dec\.dec\.", "decoder."),
    (r"\.conv\.conv\.(0\.)?", ".conv."),
    (r"\.conv\.norm\.", ".norm."),
    (r"^hid\.st_block\.", "translator."),
    (r"\.gamma$", ".layer_scale"),
    (r"\.mlp\.1\.", ".time.1."),
    (r"\.pwconv([12])\.", r".mlp.fc\1."),
    (r"\.res_conv\.", ".shortcut."),
    (r"\.dwconv\.", ".mixer."),
    (r"^attn\.proj_1\.", "attention.proj_in."),
    (r"^attn\.proj_2\.", "attention.proj_out."),
    (r"^attn\.spatial_gating_unit\.", "attention.attention."),
    (r"\.mixer\.conv0\.", ".mixer.kernel.local."),
    (r"\.mixer\.conv_spatial\.", ".mixer.kernel.dilated."),
    (r"\.mixer\.conv1\.", ".mixer.kernel.pointwise."),
    (r"\.attention\.conv0\.", ".attention.kernel.local."),
    (r"\.attention\.conv_spatial\.", ".attention.kernel.dilated."),
    (r"\.attention\.conv1\.", ".attention.kernel.pointwise."),
]
BLOCK = re.compile(r"^hid\.st_block\.(\d+)\.")


@register_mapping("iam4vp", "iam4vp")
def authors_iam4vp(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor], options: Mapping[str, Any]) -> WeightMap:
    last = max((int(m.group(1)) for m in map(BLOCK.match, reference) if m), default=None)  # None: not IAM4VP's
    unused = frozenset(n for n in reference if (m := BLOCK.match(n)) and int(m.group(1)) == last)
    return WeightMap(renamed(reference, RULES, ours, skip=unused), unused=unused)
