"""How a reference code's weights become vpbench's: links from reference tensors to vpbench tensors.

A :class:`Link` makes one vpbench tensor from one or more reference tensors (``load``: a copy, a reordering of
fused gates, a stack, a permutation of patch channels, a reshape) and maps the vpbench tensor's gradient back to
the reference tensors' (``back``), so that the golden parity tests compare gradients by the reference's names.
A :class:`WeightMap` is every link of one model, with the reference tensors that have no vpbench counterpart:
``unused`` (parameters the reference's forward never uses) and ``derived`` (buffers vpbench computes itself).
Families whose layouts are the same and only the module paths differ are written as renaming :data:`Rules`
(:func:`renamed`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor

Rules = list[tuple[str, "str | Callable[[re.Match], str]"]]


class Link:
    """One vpbench tensor ``ours`` made from the reference tensors ``refs`` (``load(*tensors)``), and its gradient
    mapped back to them (``back(grad) -> one tensor per reference``)."""

    def __init__(self, ours: str, refs: Sequence[str], load: Callable[..., Tensor],
                 back: Callable[[Tensor], Sequence[Tensor]]) -> None:
        self.ours, self.refs, self.load, self.back = ours, tuple(refs), load, back


def copy(ours: str, ref: str) -> Link:
    """The same tensor under another name."""
    return Link(ours, [ref], lambda w: w, lambda g: [g])


def reshaped(ours: str, ref: str, our_shape: Sequence[int], ref_shape: Sequence[int]) -> Link:
    """The same values in another shape (e.g. a layer scale [1, C, 1, 1] read as [C])."""
    return Link(ours, [ref], lambda w: w.reshape(our_shape), lambda g: [g.reshape(ref_shape)])


def gates(ours: str, ref: str, order: Sequence[int]) -> Link:
    """A fused convolution whose output chunks are the reference's, reordered (``order`` is an involution)."""
    assert all(order[order[j]] == j for j in range(len(order)))

    def reorder(w: Tensor) -> Tensor:
        chunks = w.chunk(len(order), dim=0)
        return torch.cat([chunks[j] for j in order], dim=0)

    return Link(ours, [ref], reorder, lambda g: [reorder(g)])


def stacked(ours: str, refs: Sequence[str], sizes: Sequence[int]) -> Link:
    """The reference tensors concatenated along dim 0 (``sizes``: their lengths there), e.g. separate
    projections into one fused one."""
    if len(refs) == 1:
        return copy(ours, refs[0])
    return Link(ours, refs, lambda *w: torch.cat(w), lambda g: list(g.split(list(sizes))))


def permuted(link: Link, order: Tensor, dim: int) -> Link:
    """``link`` with vpbench's tensor taking the reference's slices along ``dim`` in ``order`` (a reference tensor
    of another length there is a ValueError: a checkpoint of another patch size or channel count)."""
    inverse = torch.argsort(order)

    def load(*w: Tensor) -> Tensor:
        tensor = link.load(*w)
        if tensor.shape[dim] != len(order):
            raise ValueError(f"{link.refs[0]} has {tensor.shape[dim]} channels along dimension {dim} where "
                             f"{link.ours} has {len(order)} (another patch size or number of channels?)")
        return tensor.index_select(dim, order)

    return Link(link.ours, link.refs, load, lambda g: link.back(g.index_select(dim, inverse)))


def rename(name: str, rules: Rules) -> str:
    """vpbench's name of the reference tensor ``name``: every rule applied in turn."""
    for pattern, replacement in rules:
        name = re.sub(pattern, replacement, name)
    return name


def renamed(reference: Mapping[str, Tensor], rules: Rules, ours: Mapping[str, Tensor] | None = None,
            skip: Iterable[str] = ()) -> list[Link]:
    """A link per reference tensor (but ``skip``), renamed by ``rules``; with ``ours`` (vpbench's state dict),
    each is reshaped to vpbench's shape where the two differ only in sizes of 1 (a layer scale [1, C, 1, 1] read
    as [C]: the same values in the same order); any other difference is left for the caller to report."""
    skipped = set(skip)
    links = []
    for name, value in reference.items():
        if name in skipped:
            continue
        mine = rename(name, rules)
        target = ours.get(mine) if ours is not None else None
        if target is not None and tuple(target.shape) != tuple(value.shape) and _squeezed(target) == _squeezed(value):
            links.append(reshaped(mine, name, target.shape, value.shape))
        else:
            links.append(copy(mine, name))
    return links


def _squeezed(tensor: Tensor) -> tuple[int, ...]:
    """The shape without its sizes of 1: two tensors whose squeezed shapes agree differ only in layout."""
    return tuple(d for d in tensor.shape if d != 1)


class MappingError(ValueError):
    """Reference tensors a mapping needs are missing, or the reference has tensors it does not know."""

    def __init__(self, missing: Sequence[str], unexpected: Sequence[str]) -> None:
        self.missing, self.unexpected = sorted(missing), sorted(unexpected)
        parts = [f"{what} {', '.join(names[:4])}{f' and {len(names) - 4} more' if len(names) > 4 else ''}"
                 for what, names in (("missing", self.missing), ("unexpected", self.unexpected)) if names]
        super().__init__("; ".join(parts))


@dataclass
class WeightMap:
    """Every link of one model, and the reference tensors without a vpbench counterpart: ``unused`` (parameters
    the reference's forward never uses) and ``derived`` (buffers vpbench computes itself, not loaded)."""

    links: list[Link]
    unused: frozenset[str] = field(default_factory=frozenset)
    derived: frozenset[str] = field(default_factory=frozenset)

    def check(self, reference: Mapping[str, Tensor]) -> None:
        """A :class:`MappingError` when a reference tensor the links read is missing, or one is left over."""
        read = {r for link in self.links for r in link.refs}
        missing = read - set(reference)
        unexpected = set(reference) - read - self.unused - self.derived
        duplicates = [name for name, count in _counts(link.ours for link in self.links).items() if count > 1]
        if duplicates:
            raise AssertionError(f"two links make {duplicates[0]}")
        if missing or unexpected:
            raise MappingError(sorted(missing), sorted(unexpected))

    def to_vpbench(self, reference: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The reference's state dict as vpbench's (checked first: see :meth:`check`)."""
        self.check(reference)
        return {link.ours: link.load(*(reference[r] for r in link.refs)) for link in self.links}

    def to_reference(self, ours: Mapping[str, Tensor], reference: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """vpbench's tensors (e.g. gradients: parameters only) by the reference's names and layouts, for the links
        whose vpbench tensor ``ours`` has; zeros for the unused parameters."""
        out = {name: torch.zeros_like(reference[name]) for name in self.unused if name in reference}
        for link in self.links:
            if link.ours in ours:
                out.update(zip(link.refs, link.back(ours[link.ours])))
        return out


def _counts(names: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return counts
