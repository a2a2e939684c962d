"""Models from outside the package: ``module:factory`` specs and ``vpbench.models`` entry points.

A plug-in model is a factory (function or class) that returns an ``nn.Module`` honouring the
contract of :mod:`vpbench.models.registry`. It declares its name, label, tags, per-preset
defaults and recipe exactly as built-in models do, with ``@register_model`` from
``vpbench.models``; since its module lies outside vpbench, its entry is marked external with its
module path, package and version (:func:`origin_of`). An undecorated factory works too: it is
named after its entry point, or after its spec with ``:`` read as ``.``, and has no defaults.

Two ways in, both through :func:`vpbench.models.registry.expand` and ``get_entry``:

* ``bench run --models mylab.nets:make_model`` imports ``mylab.nets`` (installed, on PYTHONPATH
  or in the current folder) and registers the factory if its import did not;
* a package declaring ``[project.entry-points."vpbench.models"]`` with ``name = "module:factory"``
  has its models in ``bench list`` once installed. Entry points load when the registry is first
  used; one that fails to load is left out with a one-line warning on stderr, and naming it gives
  that line as the error, so a broken package never breaks the others.
"""
from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from functools import lru_cache
from importlib import metadata
from typing import Any, Callable

from vpbench.errors import UserError
from vpbench.models import registry

GROUP = "vpbench.models"
log = logging.getLogger(__name__)


@lru_cache(maxsize=None)
def _distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def origin_of(factory: Callable[..., Any]) -> dict[str, str | None]:
    """``{"kind": "builtin"}`` for vpbench's own models; for others ``{"kind": "external", "source":
    "module:factory", "package": DIST_NAME, "version": DIST_VERSION}`` (package None when the module
    belongs to no installed distribution; version then its ``__version__``, if any)."""
    module = getattr(factory, "__module__", None) or type(factory).__module__
    top = module.partition(".")[0]
    if top == "vpbench":
        return {"kind": "builtin"}
    qualname = getattr(factory, "__qualname__", type(factory).__qualname__)
    packages = _distributions().get(top)
    return {
        "kind": "external",
        "source": f"{module}:{qualname}",
        "package": packages[0] if packages else None,
        "version": metadata.version(packages[0]) if packages else getattr(sys.modules.get(top), "__version__", None),
    }


def first_line(err: BaseException) -> str:
    """``Type: first line of the message``, for one-line errors."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _resolve(module: str, attr: str | None, what: str) -> Any:
    """Import ``module`` and return its attribute ``attr`` (dotted), as one-line UserErrors."""
    if not attr:
        raise UserError(f"{what}: expected module:factory, e.g. mylab.nets:make_model")
    try:
        obj: Any = importlib.import_module(module)
    except UserError as err:  # e.g. its @register_model takes a name already in use
        raise UserError(f"{what}: {err}") from None
    except ModuleNotFoundError as err:
        if err.name and (module == err.name or module.startswith(f"{err.name}.")):
            raise UserError(f"{what}: no module named {module!r}; install its package, add its folder to "
                            "PYTHONPATH or run from the folder that holds it") from None
        raise UserError(f"{what}: importing {module!r} failed: {first_line(err)}") from None
    except Exception as err:
        raise UserError(f"{what}: importing {module!r} failed: {first_line(err)}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(f"{what}: module {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


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


def spec_name(spec: str) -> str:
    """The registry (and folder) name of an undecorated ``module:factory`` spec."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", spec.replace(":", "."))


def load_spec(spec: str) -> str:
    """Import ``module:factory`` and return the name its model is registered under."""
    module, _, attr = spec.partition(":")
    what = f"model spec {spec!r}"
    if not module:
        raise UserError(f"{what}: expected module:factory, e.g. mylab.nets:make_model")
    if os.getcwd() not in sys.path:  # as `python -m` would: a module in the current folder is found
        sys.path.append(os.getcwd())
    return _adopt(_resolve(module, attr, what), spec_name(spec), what)


def load_entry_points() -> None:
    """Register the models of every installed ``vpbench.models`` entry point; record the broken ones."""
    for ep in metadata.entry_points(group=GROUP):
        package = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "an unnamed package"
        what = f"plug-in model {ep.name!r} ({ep.value} from {package})"
        try:
            _adopt(_resolve(ep.module, ep.attr, what), ep.name, what)
        except UserError as err:
            registry._UNAVAILABLE[ep.name] = f"{err}; fix or uninstall that package"
            log.warning("vpbench: warning: skipped %s", registry._UNAVAILABLE[ep.name])
