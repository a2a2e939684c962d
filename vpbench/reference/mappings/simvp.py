"""SimVP in OpenSTL's frame with each translator (openstl/models/simvp_model.py, modules/simvp_modules.py, layers/),
TAU, and A4Bio's SimVP (github.com/A4Bio/SimVP, model.py) into vpbench's ``simvp2``, ``tau`` and ``simvp``.

The layouts are the same but for MogaNet's and the others' layer scales ([1, C, 1, 1] in OpenSTL, read as the
same values in vpbench's shape) and HorNet's linear MLP; Swin's index and mask buffers are derived by vpbench
(:data:`DERIVED`).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from vpbench.reference.mappings import register_mapping
from vpbench.reference.mappings.links import Rules, WeightMap, renamed

# OpenSTL's frame (simvp_model.py Encoder/Decoder of ConvSC, each a BasicConv2d whose ``conv`` is a Sequential of
# the conv and PixelShuffle when up-sampling) -> vpbench's (simvp_frame.py ConvSC: conv, shuffle, norm).
FRAME: Rules = [
    (r"^enc\.enc\.(\d+)\.conv\.conv\.", r"encoder.\1.conv."),
    (r"^dec\.dec\.(\d+)\.conv\.conv\.(0\.)?", r"decoder.\1.conv."),
    (r"^(enc|dec)\.\1\.(\d+)\.conv\.norm\.", lambda m: f"{'encoder' if m[1] == 'enc' else 'decoder'}.{m[2]}.norm."),
    (r"^dec\.readout\.", "readout."),
]
# MidIncepNet (enc/dec of gInception_ST: conv1, layers.k.{conv,norm}) -> the Inception U-Net translator (down/up
# Inception: reduce, branches.k.{0,1}).
INCEPU: Rules = [
    (r"^hid\.enc\.", "translator.down."),
    (r"^hid\.dec\.", "translator.up."),
    (r"\.conv1\.", ".reduce."),
    (r"\.layers\.(\d+)\.conv\.", r".branches.\1.0."),
    (r"\.layers\.(\d+)\.norm\.", r".branches.\1.1."),
]
# MidMetaNet.enc.i (MetaBlock: block, reduction) -> MetaTranslator.blocks.i.
META: Rules = [(r"^hid\.enc\.", "translator.blocks.")]
# Large-kernel attention units (SpatialAttention / TemporalAttention / VAN Attention: proj_1, spatial_gating_unit
# of conv0, conv_spatial, conv1 [+ TAU's fc], proj_2) and VAN's MixMlp (fc1, dwconv.dwconv, fc2).
ATTENTION_UNIT: Rules = [
    (r"\.attn\.proj_1\.", ".mixer.proj_in."),
    (r"\.attn\.proj_2\.", ".mixer.proj_out."),
    (r"\.attn\.spatial_gating_unit\.conv0\.", ".mixer.attention.kernel.local."),
    (r"\.attn\.spatial_gating_unit\.conv_spatial\.", ".mixer.attention.kernel.dilated."),
    (r"\.attn\.spatial_gating_unit\.conv1\.", ".mixer.attention.kernel.pointwise."),
    (r"\.attn\.spatial_gating_unit\.fc\.", ".mixer.attention.excitation."),
    (r"\.mlp\.dwconv\.dwconv\.", ".mlp.dwconv."),
    (r"\.layer_scale_(\d)$", r".layer_scale_\1.weight"),
]
BLOCK_RULES: dict[str, Rules] = {
    "gsta": ATTENTION_UNIT, "tau": ATTENTION_UNIT, "van": ATTENTION_UNIT,
    "convmixer": [],  # conv_dw, norm_1, conv_pw, norm_2 on both sides
    "convnext": [(r"\.block\.gamma$", ".block.layer_scale.weight")],
    "hornet": [(r"\.gnconv\.", ".mixer."), (r"\.gamma(\d)$", r".layer_scale_\1.weight"),
               (r"\.pwconv(\d)\.", r".mlp.module.fc\1.")],
    "mlp": [(r"\.mlp_tokens\.", ".mixer.mlp."), (r"\.mlp_channels\.", ".mlp.")],
    "moga": [(r"\.attn\.proj_1\.", ".mixer.proj_in."), (r"\.attn\.proj_2\.", ".mixer.proj_out."),
             (r"\.attn\.value\.DW_conv(\d)\.", r".mixer.value.dw\1."),
             (r"\.attn\.value\.PW_conv\.", ".mixer.value.pointwise."),
             (r"\.attn\.(gate\.|sigma$)", r".mixer.\1"), (r"\.layer_scale_(\d)$", r".layer_scale_\1.weight")],
    "poolformer": [(r"\.layer_scale_(\d)$", r".layer_scale_\1.weight")],
    "swin": [(r"\.attn\.", ".mixer.attention.")],
    # CBlock: conv1, attn (a 5x5 depthwise conv), conv2 -> mixer.0, 1, 2; SABlock: attn (qkv, proj), gamma_k.
    "uniformer": [(r"\.conv1\.", ".mixer.0."), (r"\.attn\.(weight|bias)$", r".mixer.1.\1"), (r"\.conv2\.", ".mixer.2."),
                  (r"\.attn\.", ".mixer."), (r"\.gamma_(\d)$", r".layer_scale_\1.weight")],
    "vit": [(r"\.attn\.", ".mixer.")],
}
DERIVED = re.compile(r"\.(relative_position_index|attn_mask)$")  # Swin's: vpbench derives the index; OpenSTL never
#                                                                  uses the mask

# A4Bio's SimVP (model.py) -> vpbench's ``simvp`` (form a4bio). ConvSC wraps a BasicConv2d (``.conv``) holding
# ``conv`` and ``norm``; an Inception holds ``conv1`` and GroupConv2d ``layers`` (each ``conv``, ``norm``);
# Mid_Xnet's ``enc``/``dec`` are the translator's ``down``/``up``.
A4BIO: Rules = [
    (r"^enc\.enc\.(\d+)\.conv\.(conv|norm)\.", r"encoder.\1.\2."),
    (r"^dec\.dec\.(\d+)\.conv\.(conv|norm)\.", r"decoder.\1.\2."),
    (r"^dec\.readout\.", r"readout."),
    (r"^hid\.enc\.", r"translator.down."),
    (r"^hid\.dec\.", r"translator.up."),
    (r"^(translator\.\w+\.\d+)\.conv1\.", r"\1.reduce."),
    (r"^(translator\.\w+\.\d+)\.layers\.(\d+)\.conv\.", r"\1.branches.\2.0."),
    (r"^(translator\.\w+\.\d+)\.layers\.(\d+)\.norm\.", r"\1.branches.\2.1."),
]


def rules_for(translator: str) -> Rules:
    """OpenSTL's SimVP frame with ``translator`` -> vpbench's names."""
    return FRAME + (INCEPU if translator == "incepu" else META + BLOCK_RULES[translator])


def frame_map(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor], rules: Rules) -> WeightMap:
    derived = frozenset(n for n in reference if DERIVED.search(n))
    return WeightMap(renamed(reference, rules, ours, skip=derived), derived=derived)


@register_mapping("openstl", "simvp2", "tau")
def openstl_simvp2(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor], options: Mapping[str, Any]) -> WeightMap:
    return frame_map(reference, ours, rules_for(options["translator"]))


@register_mapping("openstl", "simvp")
def openstl_simvp(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor], options: Mapping[str, Any]) -> WeightMap:
    """OpenSTL's SimVP+IncepU: vpbench's ``simvp`` in its ``openstl`` form."""
    return frame_map(reference, ours, rules_for("incepu"))


@register_mapping("simvp", "simvp")
def a4bio_simvp(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor], options: Mapping[str, Any]) -> WeightMap:
    """A4Bio's SimVP: vpbench's ``simvp`` in its ``a4bio`` form."""
    return WeightMap(renamed(reference, A4BIO, ours))
