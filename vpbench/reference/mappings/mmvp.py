"""OpenSTL's MMVP (openstl/models/mmvp_model.py, modules/mmvp_modules.py) into vpbench's ``mmvp``.

Its predictor's layers and their vpbench names are :data:`PREDICTOR`; its filter blocks are flat Sequentials of
(conv, BN, LReLU) x 3, vpbench's nested. Its scale fusers and the predictor's ``fuse_conv`` are never used by its
forward (:data:`UNUSED`).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from vpbench.reference.mappings import register_mapping
from vpbench.reference.mappings.links import Rules, WeightMap, renamed

PREDICTOR = [("conv_pre_1", "pre.0.0"), ("bn_pre_1", "pre.0.1"), ("conv_pre_2", "pre.1.0"), ("bn_pre_2", "pre.1.1"),
             ("conv1_1", "down1.0"), ("bn1_1", "down1.1"), ("conv3d_1.conv3d", "temporal1.conv"),
             ("conv3d_1.bn3d", "temporal1.norm"), ("conv_translate.0", "translate.0"), ("bn_translate", "translate.2"),
             ("conv2_1", "down2.0"), ("bn2_1", "down2.1"), ("temporal_layer.conv3d", "temporal2.conv"),
             ("temporal_layer.bn3d", "temporal2.norm"), ("temporal_layer.0", "temporal2.0"), ("conv3_1", "fuse.0"),
             ("bn3_1", "fuse.1"), ("conv4_1", "up.0"), ("bn4_1", "up.1")]
UNUSED = re.compile(r"^hid\.(predictor\.fuse_conv|scale_fuser_1|scale_fuser_2)\.")


def rules(scales: int, enhance_blocks: int) -> Rules:
    """OpenSTL's names -> vpbench's, for a model of ``scales`` scales and ``enhance_blocks`` enhancement blocks."""
    return [
        (r"^enc\.inconv\.", "encoder.stem.0."),
        (r"^enc\.block_rrdb\.(\d+)\.", lambda m: f"encoder.stem.{int(m[1]) + 1}."),
        (r"^enc\.pre_downsample_block\.", "encoder.down."),
        (r"^enc\.downsample_high\.", f"encoder.down.{scales - 2}."),
        (r"^enc\.downsample_low\.", f"encoder.down.{scales - 1}."),
        (r"^filter\.filter_block\.0\.(\d+)\.", lambda m: f"filter_high.{int(m[1]) // 3}.{int(m[1]) % 3}."),
        (r"^filter\.filter_block\.1\.(\d+)\.", lambda m: f"filter_low.{int(m[1]) // 3}.{int(m[1]) % 3}."),
        (r"^dec\.upsample_block_low2high\.", "decoder.up.0."),
        (r"^dec\.upsample_block\.(\d+)\.", lambda m: f"decoder.up.{int(m[1]) + 1}."),
        (r"^(decoder\.up\.\d+)\.conv\.conv\.0\.", r"\1.conv."),
        (r"^dec\.rrdb_block\.", "decoder.refine."),
        (r"^dec\.outc\.", "decoder.readout."),
        (r"^enhance\.model\.", "enhance."),
        (r"^enhance\.outconv\.", f"enhance.{enhance_blocks + 1}."),
        (r"\.RDB(\d)\.", lambda m: f".blocks.{int(m[1]) - 1}."),
        (r"(\.blocks\.\d)\.conv(\d)\.", lambda m: f"{m[1]}.convs.{int(m[2]) - 1}."),
        (r"^hid\.predictor\.conv1\.", "predictor.embed."),
        (r"^hid\.predictor\.out_conv\.", "predictor.readout."),
        *((rf"^hid\.predictor\.predictor\.{re.escape(theirs)}\.", f"predictor.{ours}.") for theirs, ours in PREDICTOR),
    ]


def unused(reference: Mapping[str, Tensor]) -> frozenset[str]:
    return frozenset(n for n in reference if UNUSED.search(n))


@register_mapping("openstl", "mmvp")
def openstl_mmvp(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor], options: Mapping[str, Any]) -> WeightMap:
    skipped = unused(reference)
    return WeightMap(renamed(reference, rules(options["scales"], options["enhance_blocks"]), ours, skip=skipped),
                     unused=skipped)
