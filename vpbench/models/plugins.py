"""Models from outside the package: ``module:factory`` specs and ``vpbench.models`` entry points.

A plug-in model is a factory (function or class) that returns an ``nn.Module`` honouring the
contract of :mod:`vpbench.models.registry`. It declares its name, label, tags, per-preset
defaults and recipe exactly as built-in models do, with ``@register_model`` from
``vpbench.models``; since its module lies outside vpbench, its entry is marked external with its
module path, package and version. An undecorated factory works too: it is named after its entry
point, or after its spec with ``:`` read as ``.``, and has no defaults. See :mod:`vpbench.plugins`.
"""
from __future__ import annotations

from typing import Any

import vpbench.models.registry as registry
from vpbench import plugins
from vpbench.errors import UserError
from vpbench.plugins import first_line, origin_of, spec_name

GROUP = "vpbench.models"
__all__ = ["first_line", "load_entry_points", "load_spec", "origin_of", "spec_name"]


def _adopt(factory: Any, name: str, what: str) -> str:
    """The registry name of ``factory``: its own ``@register_model`` name, else ``name``."""
    for entry in registry.entries().values():
        if entry.factory is factory:
            return entry.name
    if not callable(factory):
        raise UserError(f"{what}: an object of type {type(factory).__name__} is not a factory; point at a "
                        "function or class that returns an nn.Module")
    try:
        registry.register_model(name)(factory)
    except UserError as err:
        raise UserError(f"{what}: {err}") from None
    return name


def load_spec(spec: str) -> str:
    """Import ``module:factory`` and return the name its model is registered under."""
    module, _, attr = spec.partition(":")
    what = f"model spec {spec!r}"
    return _adopt(plugins.resolve(module, attr, what), spec_name(spec), what)


def load_entry_points() -> None:
    """Register the models of every installed ``vpbench.models`` entry point; record the broken ones."""
    plugins.load_entry_points(GROUP, "model", _adopt, registry._UNAVAILABLE)
