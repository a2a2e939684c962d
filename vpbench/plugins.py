"""Models and datasets from outside the package: ``module:factory`` specs, entry points and
``VPBENCH_PLUGINS``.

Three ways in, for models (entry-point group ``vpbench.models``) and datasets (``vpbench.datasets``):

* a ``module:factory`` spec on the command line (``--models mylab.nets:make``, ``--dataset
  mylab.data:make``) imports ``module`` (installed, on PYTHONPATH or in the current folder);
* an installed package's entry points, loaded when the registry is first used; one that fails to load
  is left out with a one-line warning, and naming it gives that line as the error, so a broken
  package never breaks the others;
* ``VPBENCH_PLUGINS=mylab.nets,mylab.data``: modules imported when a registry is first used, whose
  ``@register_model`` / ``@register_dataset`` declarations then register (a folder of your own
  models on PYTHONPATH, no packaging needed).

Whatever registers from outside vpbench is marked external with its module path, package and version
(:func:`origin_of`).
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

ENVIRONMENT = "VPBENCH_PLUGINS"
log = logging.getLogger("vpbench.plugins")
_env_imported = False


@lru_cache(maxsize=None)
def _distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def origin_of(obj: Callable[..., Any]) -> dict[str, str | None]:
    """``{"kind": "builtin"}`` for vpbench's own factories; for others ``{"kind": "external", "source":
    "module:factory", "package": DIST_NAME, "version": DIST_VERSION}`` (package None when the module
    belongs to no installed distribution; version then its ``__version__``, if any)."""
    module = getattr(obj, "__module__", None) or type(obj).__module__
    top = module.partition(".")[0]
    if top == "vpbench":
        return {"kind": "builtin"}
    qualname = getattr(obj, "__qualname__", type(obj).__qualname__)
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


def import_module(module: str, what: str) -> Any:
    """``importlib.import_module``, its failures as one-line UserErrors naming ``what``."""
    if os.getcwd() not in sys.path:  # as `python -m` would: a module in the current folder is found
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(module)
    except UserError as err:  # e.g. its @register_model takes a name already in use
        raise UserError(f"{what}: {err}") from None
    except ModuleNotFoundError as err:
        if err.name and (module == err.name or module.startswith(f"{err.name}.")):
            raise UserError(f"{what}: no module named {module!r}; install its package, add its folder to "
                            "PYTHONPATH or run from the folder that holds it") from None
        raise UserError(f"{what}: importing {module!r} failed: {first_line(err)}") from None
    except Exception as err:
        raise UserError(f"{what}: importing {module!r} failed: {first_line(err)}") from None


def resolve(module: str, attr: str | None, what: str) -> Any:
    """Import ``module`` and return its attribute ``attr`` (dotted), as one-line UserErrors."""
    if not module or not attr:
        raise UserError(f"{what}: expected module:factory, e.g. mylab.nets:make_model")
    obj = import_module(module, what)
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(f"{what}: module {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def spec_name(spec: str) -> str:
    """The registry (and folder) name of an undecorated ``module:factory`` spec."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", spec.replace(":", "."))


def load_entry_points(group: str, kind: str, adopt: Callable[[Any, str, str], str],
                      unavailable: dict[str, str]) -> None:
    """Register every installed entry point of ``group`` (of a ``kind``: model, dataset) through
    ``adopt(factory, name, what)``; a broken one is recorded in ``unavailable`` (name -> its one-line
    error) and warned about."""
    for ep in metadata.entry_points(group=group):
        package = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "an unnamed package"
        what = f"plug-in {kind} {ep.name!r} ({ep.value} from {package})"
        try:
            adopt(resolve(ep.module, ep.attr, what), ep.name, what)
        except UserError as err:
            unavailable[ep.name] = f"{err}; fix or uninstall that package"
            log.warning("vpbench: warning: skipped %s", unavailable[ep.name])


def import_environment_plugins() -> None:
    """Import the modules named in ``VPBENCH_PLUGINS`` (comma-separated), once per process."""
    global _env_imported
    if _env_imported:
        return
    _env_imported = True
    for module in filter(None, (m.strip() for m in os.environ.get(ENVIRONMENT, "").split(","))):
        import_module(module, f"{ENVIRONMENT} module {module!r}")
