"""Model registry: ``vpbench.models.create(name, **overrides)``.

Every module of this package is imported once (:func:`discover`), and the models it declares with
``@register_model`` register themselves; nothing else lists them.
"""
import importlib
import pkgutil

from vpbench.models.registry import (
    GROUPS,
    ModelEntry,
    create,
    entries,
    expand,
    get_entry,
    group_members,
    model_names,
    register_model,
)


def discover() -> None:
    """Import every module of ``vpbench.models`` (its built-in models register on import)."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


discover()

__all__ = [
    "GROUPS",
    "ModelEntry",
    "create",
    "entries",
    "expand",
    "get_entry",
    "group_members",
    "model_names",
    "register_model",
]
