"""OpenSTL's MAU (openstl/models/mau_model.py, modules/mau_modules.py) into vpbench's ``mau``.

Each of a cell's four convolutions is a Sequential (conv, LayerNorm); the encoder's and decoder's layers are named
``encoder_t_conv-1``, ``encoder_t<i>``, ``c_decoder<i>`` in their Sequentials; ``srcnn`` is the readout. OpenSTL's
``merge`` and ``conv_last_sr`` are never used by its forward (:data:`UNUSED`).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from vpbench.reference.mappings import register_mapping
from vpbench.reference.mappings.links import Rules, WeightMap, renamed

RULES: Rules = [
    (r"^cell_list\.", "cells."),
    (r"\.conv_t_next\.", ".t_gate_conv."),
    (r"\.conv_s_next\.", ".s_query_conv."),
    (r"\.conv_t\.", ".t_conv."),
    (r"\.conv_s\.", ".s_conv."),
    (r"^encoders\.(\d+)\.encoder_t(?:_conv)?-?\d+\.", r"encoders.\1.0."),
    (r"^decoders\.(\d+)\.c_decoder\d+\.", r"decoders.\1.0."),
    (r"^srcnn\.0\.", "readout."),
]
UNUSED = re.compile(r"^(merge|conv_last_sr)\.")


@register_mapping("openstl", "mau")
def openstl_mau(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor], options: Mapping[str, Any]) -> WeightMap:
    unused = frozenset(n for n in reference if UNUSED.search(n))
    return WeightMap(renamed(reference, RULES, ours, skip=unused), unused=unused)
