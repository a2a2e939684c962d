"""OpenSTL v0.3.0's DMVFN (openstl/models/dmvfn_model.py, modules/dmvfn_modules.py) into vpbench's ``dmvfn``:
an MVFB's conv0, convblock, conv_sq, lastconv are coarse, body, squeeze, head; its conv1 and convblock1 (one
conv-PReLU each) the fine branch."""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from vpbench.reference.mappings import register_mapping
from vpbench.reference.mappings.links import Rules, WeightMap, renamed

RULES: Rules = [
    (r"^stu\.", "blocks."),
    (r"^routing\.routing\.", "router.features."),
    (r"^l1\.", "router.linear."),
    (r"\.conv0\.", ".coarse."),
    (r"\.convblock\.", ".body."),
    (r"\.conv_sq\.", ".squeeze."),
    (r"\.conv1\.0\.", ".fine.0."),
    (r"\.convblock1\.0\.", ".fine.1."),
    (r"\.lastconv\.", ".head."),
]


@register_mapping("openstl", "dmvfn")
def openstl_dmvfn(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor], options: Mapping[str, Any]) -> WeightMap:
    return WeightMap(renamed(reference, RULES, ours))
