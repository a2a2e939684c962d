"""Weight mappings from the reference codes' models to vpbench's, one module per model family.

Each module declares, for the models of its family, how a reference state dict (OpenSTL's, the SRVP authors',
PredFormer's, A4Bio's SimVP, the IAM4VP and VMRNN authors') becomes vpbench's (:class:`~vpbench.reference.mappings.links.WeightMap`), and
registers a builder per (code, model) with :func:`register_mapping`. ``bench import`` uses them to turn a
checkpoint into a run; the golden parity tests (``tests/parity``) load the reference's weights through the same
mappings and compare outputs and gradients, so that a mapping that is wrong fails there.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Mapping

from torch import Tensor

from vpbench.reference.mappings.links import WeightMap

# (reference state dict, vpbench's state dict, vpbench's model options) -> the model's WeightMap
Builder = Callable[[Mapping[str, Tensor], Mapping[str, Tensor], Mapping[str, Any]], WeightMap]
_MAPPINGS: dict[tuple[str, str], Builder] = {}


def register_mapping(code: str, *models: str) -> Callable[[Builder], Builder]:
    """Decorator: ``builder`` maps checkpoints of ``code`` (``openstl``, ``srvp``, ``predformer``, ``simvp``,
    ``iam4vp``, ``vmrnn``) into each of the vpbench ``models``."""
    def add(builder: Builder) -> Builder:
        for model in models:
            _MAPPINGS[(code, model)] = builder
        return builder

    return add


def mapping_for(code: str, model: str) -> Builder | None:
    return _MAPPINGS.get((code, model))


def models_of(code: str) -> list[str]:
    """The vpbench models a checkpoint of ``code`` can be imported into."""
    return [model for c, model in _MAPPINGS if c == code]


def discover() -> None:
    """Import every family module (each registers its builders)."""
    for module in pkgutil.iter_modules(__path__):
        if module.name != "links":
            importlib.import_module(f"{__name__}.{module.name}")


discover()
