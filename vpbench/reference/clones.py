"""Importing single model files of a clone of OpenSTL (or of a code built on it, as PredFormer's) without its package.

OpenSTL's ``openstl/__init__.py`` imports every model, the training API and their requirements (Lightning,
timm, ...). :func:`load_model_class` instead makes ``openstl``, ``openstl.models``, ``openstl.modules`` and
``openstl.utils`` empty packages over the clone's folders and imports only the files a model needs, as the
package's ``__init__.py`` files would expose them. Another clone's ``openstl`` (e.g. OpenSTL's v0.3.0 branch
after its Lightning branch) replaces the first one's in ``sys.modules``.

OpenSTL's files import timm (and DMVFN's utilities torchvision) at import time; where these do not import
(torchvision wheels that do not load beside a CPU torch), stand-ins let the files load: timm's DropPath,
trunc_normal_ and to_2tuple are torch's or trivial, anything else (a timm block, torchvision's VGG) fails when built.
"""
from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from vpbench.errors import UserError

# The clones `bench speed --parts openstl` reads: option and repository of each.
SOURCES = {
    "openstl": ("--openstl", "github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning)"),
    "openstl-v030": ("--openstl-v030", "github.com/chengtan9907/OpenSTL (branch OpenSTLv0.3.0)"),
    "predformer": ("--predformer", "github.com/yyyujintang/PredFormer"),
}
STAND_INS = ("timm", "timm.layers", "timm.models", "timm.models.layers", "timm.models.convnext",
             "timm.models.mlp_mixer", "timm.models.swin_transformer", "timm.models.vision_transformer",
             "torchvision", "torchvision.models")


class Unavailable(RuntimeError):
    """A class that a stand-in cannot provide was built."""


class _DropPath(nn.Module):
    """Stochastic depth (the identity in evaluation, and when ``drop_prob`` is 0)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.drop_prob == 0:
            return x
        keep = x.new_empty(x.shape[0], *(1,) * (x.ndim - 1)).bernoulli_(1 - self.drop_prob)
        return x * keep / (1 - self.drop_prob)


def _to_2tuple(x: Any) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x, x)


class _StandIn(types.ModuleType):
    """A package and its submodules providing DropPath, trunc_normal_ and to_2tuple; any other name a class that
    fails when built."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__path__: list[str] = []
        self.trunc_normal_ = nn.init.trunc_normal_
        self.DropPath = _DropPath
        self.to_2tuple = _to_2tuple

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        module = f"{self.__name__}.{attr}"
        if module in sys.modules:
            return sys.modules[module]

        def unavailable(*args: Any, **kwargs: Any) -> None:
            raise Unavailable(f"{module} is not available: {self.__name__.partition('.')[0]} does not import here")

        return type(attr, (), {"__init__": unavailable})


def stand_ins() -> None:
    """A stand-in in ``sys.modules`` for each module of timm and torchvision that OpenSTL's files import and that
    does not import here."""
    for name in STAND_INS:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001  not installed, or torchvision beside a CPU torch
            sys.modules[name] = _StandIn(name)


def package(name: str, folder: Path) -> types.ModuleType:
    """An empty package ``name`` over ``folder`` (its ``__init__.py`` is not run). A package of that name over another
    folder is unloaded first, with its submodules."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        if list(getattr(loaded, "__path__", [])) == [str(folder)]:
            return loaded
        for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            del sys.modules[module]
    made = types.ModuleType(name)
    made.__path__ = [str(folder)]
    sys.modules[name] = made
    if "." in name:
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, made)
    return made


def import_into(target: types.ModuleType, files: tuple[str, ...]) -> None:
    """Import ``<target>.<file>`` for each file and give the package their public names, as its ``__init__.py``
    would."""
    for file in files:
        module = importlib.import_module(f"{target.__name__}.{file}")
        vars(target).update({k: v for k, v in vars(module).items() if not k.startswith("_")})


def load_model_class(path: str | Path, module: str, cls: str, parts: tuple[str, ...], utils: tuple[str, ...] = (),
                     source: str = "openstl", placeholders: tuple[str, ...] = ()) -> type[nn.Module]:
    """Class ``cls`` of ``openstl/models/<module>.py`` in the clone at ``path``, after the ``openstl/modules`` files
    ``parts`` and ``openstl/utils`` files ``utils``; each file is imported alone. ``placeholders``: names the model
    file imports from ``openstl.utils`` but never calls in training (None)."""
    option, repository = SOURCES[source]
    root = Path(path).expanduser() / "openstl"
    if not (root / "models" / f"{module}.py").is_file():
        raise UserError(f"{option} {path}: no openstl/models/{module}.py there; give the folder of a clone of "
                        f"{repository}")
    stand_ins()
    package("openstl", root)  # another clone's is unloaded
    models = package("openstl.models", root / "models")
    try:
        import_into(package("openstl.modules", root / "modules"), parts)
        import_into(package("openstl.utils", root / "utils"), utils)
        for name in placeholders:
            vars(sys.modules["openstl.utils"]).setdefault(name, None)
        model_class = getattr(importlib.import_module(f"openstl.models.{module}"), cls)
    except ImportError as err:
        raise UserError(f"{option} {path}: {module} does not import ({err}); install what it needs") from None
    setattr(models, cls, model_class)  # as openstl/models/__init__.py exports it, for the methods' files
    return model_class
