"""Importing code from a user's clone of a reference repository, without installing it or running its packages.

Reference repositories are not installable packages, and their package ``__init__.py`` files import far more than
one model needs (every model, Lightning, timm, ...). Here:

* :func:`load_file` imports one file of a clone as a module of its own;
* :func:`package` makes a folder of a clone a package without running its ``__init__.py``, so that its files import
  each other (:func:`import_into` then gives it the public names of the files it needs, as its ``__init__.py`` would),
  and :func:`folder_module` imports one file of a folder whose files import their siblings relatively;
* :func:`stand_in` puts a :class:`StandIn` in ``sys.modules`` for a module that does not import here (timm,
  torchvision beside a CPU torch) and that the files import without using it: it provides the names given to it,
  and any other name is a class that raises :class:`Unavailable` when built;
* :func:`restored_modules` undoes what an import did to ``sys.modules``, and :func:`commit_of` names the clone's commit.

Used by the timings against reference code (:mod:`vpbench.reference.srvp`, :mod:`vpbench.reference.openstl`) and by
the golden-file generators of ``tools/golden``; OpenSTL's clones: :mod:`vpbench.reference.openstl_clone`.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, Iterator

PRIVATE = "_vpbench_clone_"  # prefix of the names a clone's single files and folders are imported under


class Unavailable(RuntimeError):
    """A class of a :class:`StandIn` was built: the module it stands in for does not import here."""


class StandIn(types.ModuleType):
    """A package standing in for ``name``: the attributes ``provides``, its submodules in ``sys.modules``, and for
    any other public name a class that raises :class:`Unavailable` when built."""

    def __init__(self, name: str, **provides: Any) -> None:
        super().__init__(name)
        self.__path__: list[str] = []
        vars(self).update(provides)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        module = f"{self.__name__}.{attr}"
        if module in sys.modules:
            return sys.modules[module]
        top = self.__name__.partition(".")[0]

        def unavailable(*args: Any, **kwargs: Any) -> None:
            raise Unavailable(f"{module} is not available: {top} does not import here")

        return type(attr, (), {"__init__": unavailable})


def stand_in(name: str, **provides: Any) -> types.ModuleType:
    """Module ``name`` as it imports, or where it does not (not installed, or broken, as torchvision's wheels beside a
    CPU torch) a :class:`StandIn` providing ``provides``, with a stand-in for each package above it that is not
    loaded."""
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001  not installed, or fails when imported
        pass
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if prefix == name or prefix not in sys.modules:
            sys.modules[prefix] = StandIn(prefix, **provides) if prefix == name else StandIn(prefix)
            if i > 1:
                setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], sys.modules[prefix])
    return sys.modules[name]


def _under(module: str, names: tuple[str, ...]) -> bool:
    return any(module == name or module.startswith(f"{name}.") for name in names)


def unload(*names: str) -> None:
    """Remove the modules ``names`` and their submodules from ``sys.modules``."""
    for module in [m for m in sys.modules if _under(m, names)]:
        del sys.modules[module]


@contextlib.contextmanager
def restored_modules(*names: str) -> Iterator[None]:
    """``sys.modules`` entries of the modules ``names`` and their submodules as they were, after the block: what it
    imported under those names is unloaded, what it replaced is put back."""
    saved = {m: module for m, module in sys.modules.items() if _under(m, names)}
    try:
        yield
    finally:
        unload(*names)
        sys.modules.update(saved)


def package(name: str, folder: Path) -> types.ModuleType:
    """An empty package ``name`` over ``folder`` (its ``__init__.py`` is not run), and above it, where they are not
    loaded, packages over the folders above. A package of that name over another folder is unloaded first, with its
    submodules."""
    folder = Path(folder)
    loaded = sys.modules.get(name)
    if loaded is not None:
        if list(getattr(loaded, "__path__", [])) == [str(folder)]:
            return loaded
        unload(name)
    parent, _, child = name.rpartition(".")
    if parent and parent not in sys.modules:
        package(parent, folder.parent)
    made = types.ModuleType(name)
    made.__path__ = [str(folder)]
    sys.modules[name] = made
    if parent:
        setattr(sys.modules[parent], child, made)
    return made


def import_into(target: types.ModuleType, files: tuple[str, ...]) -> None:
    """Import ``<target>.<file>`` for each file and give the package their public names, as its ``__init__.py``
    would."""
    for file in files:
        module = importlib.import_module(f"{target.__name__}.{file}")
        vars(target).update({k: v for k, v in vars(module).items() if not k.startswith("_")})


def private_name(path: Path) -> str:
    """The name a file or folder of a clone is imported under: one per path, so that two clones never mix."""
    return PRIVATE + hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:12]


def load_file(clone: Path, relative: str, name: str | None = None) -> types.ModuleType:
    """``clone/relative`` (a .py file) imported as module ``name`` (default: :func:`private_name`)."""
    path = (Path(clone) / relative).resolve()
    name = name or private_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def folder_module(folder: Path, module: str) -> types.ModuleType:
    """``folder/<module>.py`` imported as a module of a package over ``folder`` (named by :func:`private_name`), so
    that the files of a folder without ``__init__.py`` import their siblings relatively (``from .Blocks import *``)."""
    folder = Path(folder).resolve()
    return importlib.import_module(f"{package(private_name(folder), folder).__name__}.{module}")


def commit_of(clone: Path) -> str | None:
    """The clone's commit: git's HEAD, or the ``.commit`` file of an exported copy; None if it names none."""
    out = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True)
    if out.returncode == 0 and out.stdout.strip():
        return out.stdout.strip()
    recorded = Path(clone) / ".commit"
    return recorded.read_text().strip() or None if recorded.is_file() else None
