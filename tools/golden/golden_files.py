"""Writing golden files: what every generator of this folder shares.

The reference code itself is imported from the user's clones by vpbench's loader (``vpbench.reference.clones``,
``vpbench.reference.openstl_clone``); this module only holds what turns a reference run into a golden file.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import torch

ROOT = Path(__file__).resolve().parents[2]  # the checkout


def save(path: Path, **content: Any) -> Path:
    """``torch.save`` of ``content`` with every floating tensor in it kept as it is (float64)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(content, path)
    return path


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter's gradient by name (zeros where the loss did not reach it)."""
    return {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone()
            for n, p in model.named_parameters()}


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Tensors made without a dtype (e.g. OpenSTL's zero states) in ``dtype``."""
    saved = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)
