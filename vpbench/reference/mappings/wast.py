"""OpenSTL's WaST (openstl/modules/wast_modules.py, ``WaST_level1``) into vpbench's ``wast``.

The layouts are the same; the module paths differ (:data:`RULES`). OpenSTL's wavelet transforms hold their Haar
filters as buffers (``DWT.filters``, ``IDWT.filters``), which vpbench computes (:data:`DERIVED`); each block's
``layer_scale_2`` is never read by its forward, which scales both branches by ``layer_scale_1`` (:data:`UNUSED`).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from vpbench.reference.mappings import register_mapping
from vpbench.reference.mappings.links import Rules, WeightMap, renamed

RULES: Rules = [
    (r"^conv_in\.", "stem."),
    (r"^translator1\.", "translator."),
    (r"^bottleneck_translator\.", "bottleneck."),
    (r"^translator2\.concat_block\.", "fuse_translator.fuse."),
    (r"^translator2\.", "fuse_translator."),
    (r"^wavelet_embed1\.conv_0\.", "embed.pre."),
    (r"^wavelet_embed1\.conv_1\.", "embed.down."),
    (r"^wavelet_embed1\.conv_emb\.", "embed.frames."),
    (r"^wavelet_recon1\.conv_0\.", "reconstruct.low."),
    (r"^wavelet_recon1\.conv_hi\.", "reconstruct.high."),
    (r"^conv_out\.", "head."),
    (r"\.lk1\.", ".strip_h."),
    (r"\.lk2\.", ".strip_w."),
    (r"\.sk\.", ".local."),
    (r"\.(low|high)_frequency_attn\.conv1\.", r".\1_attention.squeeze.0."),
    (r"\.(low|high)_frequency_attn\.bn1\.", r".\1_attention.squeeze.1."),
    (r"\.(low|high)_frequency_attn\.conv_([hw])\.", r".\1_attention.gate_\2."),
    (r"\.temporal_mixer\.conv_pw\.", ".temporal_mixer.expand.0."),
    (r"\.temporal_mixer\.bn1\.", ".temporal_mixer.expand.1."),
    (r"\.temporal_mixer\.conv_dw\.", ".temporal_mixer.depthwise.0."),
    (r"\.temporal_mixer\.bn2\.", ".temporal_mixer.depthwise.1."),
    (r"\.temporal_mixer\.se\.conv_(reduce|expand)\.", r".temporal_mixer.excite.\1."),
    (r"\.temporal_mixer\.conv_pwl\.", ".temporal_mixer.project.0."),
    (r"\.temporal_mixer\.bn3\.", ".temporal_mixer.project.1."),
    (r"\.layer_scale_1$", ".layer_scale"),
]
DERIVED = re.compile(r"\.(DWT|IDWT)\.filters$")
UNUSED = re.compile(r"\.layer_scale_2$")


@register_mapping("openstl", "wast")
def openstl_wast(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor], options: Mapping[str, Any]) -> WeightMap:
    derived = frozenset(n for n in reference if DERIVED.search(n))
    unused = frozenset(n for n in reference if UNUSED.search(n))
    return WeightMap(renamed(reference, RULES, ours, skip=derived | unused), unused=unused, derived=derived)
