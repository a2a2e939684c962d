"""Mapping OpenSTL's cell weights into vpbench's cells (names, fused convolutions, gate order), and their
gradients back, for the parity tests of the cells and of OpenSTL's whole recurrent models."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

IGFO = (0, 2, 1, 3)  # OpenSTL's MIM and c2m convolutions: chunks [i, g, f, o] -> vpbench's [i, f, g, o]


class Link:
    """One vpbench parameter made from reference parameters, and its gradient mapped back."""

    def __init__(self, ours: str, refs: Sequence[str], load: Callable[..., Tensor],
                 back: Callable[[Tensor], Sequence[Tensor]]) -> None:
        self.ours, self.refs, self.load, self.back = ours, tuple(refs), load, back


def copy(ours: str, ref: str) -> Link:
    return Link(ours, [ref], lambda w: w, lambda g: [g])


def gates(ours: str, ref: str, order: Sequence[int]) -> Link:
    """A fused convolution whose output chunks are the reference's, reordered (``order`` is an involution)."""
    def reorder(w: Tensor) -> Tensor:
        chunks = w.chunk(len(order), dim=0)
        return torch.cat([chunks[j] for j in order], dim=0)
    assert all(order[order[j]] == j for j in range(len(order)))
    return Link(ours, [ref], reorder, lambda g: [reorder(g)])


def peephole(ours: str, ct: str, oc: str) -> Link:
    """vpbench's [W_ci; W_cf; W_co] from MIM's ct_weight ([W_ci; W_cf] on channels) and oc_weight."""
    return Link(ours, [ct, oc], lambda c, o: torch.stack([*c.chunk(2, dim=0), o]),
                lambda g: [torch.cat([g[0], g[1]], dim=0), g[2]])


def load(cells: nn.ModuleList, links: Sequence[Link], golden: dict) -> None:
    """The reference weights into ``cells``; every vpbench and every used reference parameter covered."""
    sd = golden["state_dict"]
    ours = {l.ours: (l.load(*(sd[r] for r in l.refs)) if l.refs else torch.zeros_like(cells.get_parameter(l.ours)))
            for l in links}
    cells.load_state_dict(ours, strict=True)
    covered = {r for l in links for r in l.refs} | set(golden["unused"])
    assert covered == set(sd), f"reference parameters not mapped: {sorted(set(sd) - covered)}"


def to_reference(links: Sequence[Link], golden: dict) -> Callable[[dict[str, Tensor]], dict[str, Tensor]]:
    """vpbench's gradients under the reference's names; zeros for the parameters OpenSTL never uses."""
    def mapped(grads: dict[str, Tensor]) -> dict[str, Tensor]:
        out = {r: torch.zeros_like(golden["state_dict"][r]) for r in golden["unused"]}
        for l in links:
            out.update(zip(l.refs, l.back(grads[l.ours])))
        return out
    return mapped


def stlstm_links(ours: str, ref: str) -> list[Link]:
    """PredRNN's ST-LSTM: OpenSTL's convolutions are in vpbench's order already."""
    return [copy(f"{ours}.x_conv.weight", f"{ref}.conv_x.0.weight"),  # [i, f, g, i', f', g', o]
            copy(f"{ours}.h_conv.weight", f"{ref}.conv_h.0.weight"),  # [i, f, g, o]
            copy(f"{ours}.m_conv.weight", f"{ref}.conv_m.0.weight"),  # [i', f', g']
            copy(f"{ours}.o_conv.weight", f"{ref}.conv_o.0.weight"),
            copy(f"{ours}.fuse.weight", f"{ref}.conv_last.weight")]


def mim_convlstm_links(ours: str, ref: str) -> list[Link]:
    """MIM-N / MIM-S (OpenSTL's MIMN, MIMBlock.MIMS): gates [i, g, f, o], peepholes ct/oc_weight."""
    return [gates(f"{ours}.x_conv.weight", f"{ref}.conv_x_concat.0.weight", IGFO),
            gates(f"{ours}.h_conv.weight", f"{ref}.conv_h_concat.0.weight", IGFO),
            peephole(f"{ours}.peephole", f"{ref}.ct_weight", f"{ref}.oc_weight")]
