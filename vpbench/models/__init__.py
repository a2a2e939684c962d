"""Models: the registry (``create(name, **overrides)``, ``build_model(config)``), one file per model family,
shared blocks in :mod:`vpbench.models.layers`, and plug-in models from outside the package.

Every module of this package is imported once (:func:`discover`), and the models it declares with
``@register_model`` register themselves; nothing else lists them. Every model maps ``frames [B, T_in, C, H, W]``
and a horizon to ``[B, horizon, C, H, W]`` in [0, 1]. May import the foundation modules (errors, presets,
losses, plugins); never datasets, metrics, the harness or anything above.
"""
import importlib
import pkgutil

from vpbench.models.registry import (
    GROUPS,
    ModelEntry,
    build_model,
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
    "build_model",
    "create",
    "entries",
    "expand",
    "get_entry",
    "group_members",
    "model_names",
    "register_model",
]
