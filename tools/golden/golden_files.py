"""Importing reference code from a user's clone, and writing golden files.

Reference repositories are not installable packages, and their package ``__init__`` files import
far more than one model needs (timm, which imports torchvision; lightning; ...). ``load_file``
imports a single file of a clone as a module of a private package, with named modules stubbed out
when the file imports them but the model never uses them.
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
from typing import Any, Iterable, Iterator

import torch


def commit_of(clone: Path) -> str | None:
    """The clone's checked-out commit, if it is a git checkout."""
    out = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or None if out.returncode == 0 else None


def stub_modules(names: Iterable[str]) -> None:
    """Empty modules under ``names`` (and their parents), unless importable; their attributes are stubs."""
    for name in names:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
            continue
        except Exception:  # noqa: BLE001  not installed, or broken (torchvision beside the CPU torch)
            pass
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            sub = ".".join(parts[:i])
            if sub not in sys.modules or not getattr(sys.modules[sub], "_golden_stub", False):
                module = _Stub(sub)
                sys.modules[sub] = module
                if i > 1:
                    setattr(sys.modules[".".join(parts[: i - 1])], parts[i - 1], module)


class _Stub(types.ModuleType):
    """A module whose every attribute is a stub (a class that fails if instantiated)."""

    _golden_stub = True
    __path__: list[str] = []

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return type(attr, (), {"__init__": _unused(f"{self.__name__}.{attr}")})


def _unused(name: str):
    def init(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"{name} is a stub: the golden-file script stubbed it out")

    return init


def load_package(clone: Path, package: str, alias: str | None = None) -> types.ModuleType:
    """The folder ``clone/package`` as an (empty-__init__) package, so that its files import each other.

    Its own ``__init__.py`` is not run. ``alias``: the name to register it under (default: ``package``)."""
    name = alias or package.replace("/", ".")
    folder = (clone / package).resolve()
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        sub = ".".join(parts[:i])
        if sub not in sys.modules:
            module = types.ModuleType(sub)
            module.__path__ = [str((clone / "/".join(parts[:i])).resolve())] if not alias else []
            sys.modules[sub] = module
    sys.modules[name].__path__ = [str(folder)]
    return sys.modules[name]


def load_file(clone: Path, relative: str, name: str | None = None) -> types.ModuleType:
    """Import ``clone/relative`` (a .py file) as module ``name`` (default: a private name)."""
    path = (clone / relative).resolve()
    name = name or f"_golden_{hashlib.sha256(str(path).encode()).hexdigest()[:10]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


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


@contextlib.contextmanager
def openstl_modules(clone: Path, files: tuple[str, ...],
                    nn_module: types.ModuleType | None = None) -> Iterator[dict[str, types.ModuleType]]:
    """``openstl.modules`` holding only ``files`` (module files of ``openstl/modules``) while OpenSTL's model files
    import it; ``nn_module`` replaces their ``nn``. Yields the loaded module files by name."""
    loaded, package = {}, types.ModuleType("openstl.modules")
    for name in files:
        loaded[name] = load_file(clone, f"openstl/modules/{name}.py")
        if nn_module is not None:
            loaded[name].nn = nn_module
        for attr, value in vars(loaded[name]).items():
            if isinstance(value, type) and issubclass(value, torch.nn.Module):
                setattr(package, attr, value)
    saved = {k: sys.modules.get(k) for k in ("openstl", "openstl.modules")}
    sys.modules.setdefault("openstl", types.ModuleType("openstl"))
    sys.modules["openstl.modules"] = package
    try:
        yield loaded
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
