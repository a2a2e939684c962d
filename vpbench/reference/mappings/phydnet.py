"""OpenSTL's PhyDNet (openstl/models/phydnet_model.py, modules/phydnet_modules.py) into vpbench's ``phydnet``.

The layouts are the same; only the module paths differ. PhyCell's F is conv1 -> bn1 (GroupNorm) -> conv2 and its
gate ``convgate``; the dcgan blocks hold ``main`` (conv, norm, LeakyReLU); decoder_D's last layer ``upc3`` is a
bare transposed convolution. Its encoder holds the model's PhyCell and ConvLSTM, so its state dict names them a
second time (:data:`SHARED`): those copies are checked equal and not loaded.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from vpbench.reference.mappings import register_mapping
from vpbench.reference.mappings.links import MappingError, Rules, WeightMap, renamed


def _minus_one(prefix: str) -> Callable[[re.Match], str]:
    return lambda m: f"{prefix}.{int(m[1]) - 1}."


RULES: Rules = [
    (r"^phycell\.cell_list\.0\.F\.conv1\.", "phycell.physics.0."),
    (r"^phycell\.cell_list\.0\.F\.bn1\.", "phycell.physics.1."),
    (r"^phycell\.cell_list\.0\.F\.conv2\.", "phycell.physics.2."),
    (r"^phycell\.cell_list\.0\.convgate\.", "phycell.gain."),
    (r"^convcell\.cell_list\.", "convlstm."),
    (r"^encoder\.decoder_D\.upc3\.", "decoder.2."),
    (r"^encoder\.encoder_E\.c(\d)\.main\.", _minus_one("encoder")),
    (r"^encoder\.encoder_Ep\.c(\d)\.main\.", _minus_one("physics_encoder")),
    (r"^encoder\.encoder_Er\.c(\d)\.main\.", _minus_one("residual_encoder")),
    (r"^encoder\.decoder_Dp\.upc(\d)\.main\.", _minus_one("physics_decoder")),
    (r"^encoder\.decoder_Dr\.upc(\d)\.main\.", _minus_one("residual_decoder")),
    (r"^encoder\.decoder_D\.upc(\d)\.main\.", _minus_one("decoder")),
]
# The moment matrices of the moment loss (OpenSTL's K2M): vpbench derives its own.
DERIVED = re.compile(r"^k2m\.")
# The encoder holds the model's PhyCell and ConvLSTM (the same modules): its state dict names them twice.
SHARED = re.compile(r"^encoder\.(phycell|convcell)\.")


@register_mapping("openstl", "phydnet")
def openstl_phydnet(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor], options: Mapping[str, Any]) -> WeightMap:
    shared = frozenset(n for n in reference if SHARED.search(n))
    differ = [n for n in shared if n[len("encoder."):] not in reference
              or not torch.equal(reference[n], reference[n[len("encoder."):]])]
    if differ:
        raise MappingError([], differ[:1])
    derived = frozenset(n for n in reference if DERIVED.search(n)) | shared
    return WeightMap(renamed(reference, RULES, ours, skip=derived), derived=derived)
