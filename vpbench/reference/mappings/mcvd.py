"""The authors' MCVD denoiser (voletiv/mcvd-pytorch, ``models/better/ncsnpp_more.py`` ``UNetMore_DDPM`` with
``arch: unetmore``) into vpbench's ``mcvd``.

The authors keep every module of the UNet in one list (``unet.all_modules.<i>``) and walk it by index; vpbench names
them (``denoiser.embed``, ``stem``, ``down``, ``middle``, ``up``, ``head_norm``, ``head``) and registers them in
the same order, so the i-th reference module is vpbench's i-th module unit. Inside a unit the parameters are renamed
(:data:`RULES`); the attention's ``NIN`` projections ([in, out] matrices) are vpbench's 1x1 convolutions ([out, in,
1, 1]). The noise schedules (``sigmas``, ``betas``, ``alphas``, ``alphas_prev``) are derived, not loaded.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from vpbench.reference.mappings import register_mapping
from vpbench.reference.mappings.links import Link, Rules, WeightMap, copy, rename

REFERENCE_UNIT = re.compile(r"^unet\.all_modules\.(\d+)\.(.+)$")
OUR_UNIT = re.compile(r"^(denoiser\.(?:embed\.\d+|stem|down\.\d+\.\d+|middle\.\d+|up\.\d+\.\d+|head_norm|head))\.(.+)$")
DERIVED = frozenset({"unet.sigmas", "betas", "alphas", "alphas_prev"})
RULES: Rules = [
    (r"^actnorm0\.Dense_0\.", "norm0.emb."),
    (r"^actnorm1\.Dense_0\.", "norm1.emb."),
    (r"^Conv_0\.", "conv0."),
    (r"^Conv_1\.", "conv1."),
    (r"^Conv_2\.", "skip."),
    (r"^GroupNorm_0\.", "norm."),
    (r"^Norm_0\.", "norm."),
    (r"^NIN_0\.", "q."),
    (r"^NIN_1\.", "k."),
    (r"^NIN_2\.", "v."),
    (r"^NIN_3\.", "out."),
    (r"\.W$", ".weight"),
    (r"\.b$", ".bias"),
]


def projection(ours: str, ref: str) -> Link:
    """A NIN matrix W [in, out] as a 1x1 convolution's weight [out, in, 1, 1]."""
    return Link(ours, [ref], lambda w: w.t()[:, :, None, None], lambda g: [g[:, :, 0, 0].t()])


def ordered_units(names: Mapping[str, Any], pattern: re.Pattern) -> list[str]:
    """The module units of a state dict in their order (first appearance)."""
    return list(dict.fromkeys(m.group(1) for m in map(pattern.match, names) if m))


@register_mapping("mcvd", "mcvd")
def authors_mcvd(reference: Mapping[str, Tensor], ours: Mapping[str, Tensor], options: Mapping[str, Any]) -> WeightMap:
    references = sorted(ordered_units(reference, REFERENCE_UNIT), key=int)
    units = ordered_units(ours, OUR_UNIT)
    if len(references) != len(units):
        raise ValueError(f"the reference UNet has {len(references)} modules, vpbench's {len(units)}: another "
                         "configuration (ngf, ch_mult, res_blocks, attn_resolutions)?")
    unit_of = dict(zip(references, units))
    links = []
    for name in reference:
        match = REFERENCE_UNIT.match(name)
        if match is None:
            continue
        inner = rename(match.group(2), RULES)
        mine = f"{unit_of[match.group(1)]}.{inner}"
        links.append(projection(mine, name) if name.endswith(".W") else copy(mine, name))
    return WeightMap(links, derived=DERIVED & set(reference))
