"""Single files of a clone of OpenSTL (or of a code built on it, as PredFormer's), imported without its package.

OpenSTL's ``openstl/__init__.py`` imports every model, the training API and their requirements (Lightning, timm,
...). :func:`load_model_class` instead makes ``openstl``, ``openstl.models``, ``openstl.modules`` and
``openstl.utils`` empty packages over the clone's folders and imports only the files a model needs, as the
package's ``__init__.py`` files would expose them; :func:`tau_regulariser` takes a function of a method file the
same way. Another clone's ``openstl`` (e.g. OpenSTL's v0.3.0 branch after its Lightning branch) replaces the first
one's in ``sys.modules``.

OpenSTL's files import timm (and DMVFN's utilities torchvision) at import time. Where these do not import, stand-ins
let the files load (:func:`timm_stand_ins`): timm's DropPath, trunc_normal_ and to_2tuple are torch's or trivial,
anything else (a timm block, torchvision's VGG) fails when built. Models built from timm's blocks need the timm that
OpenSTL pins, 0.6.11: :func:`openstl_timm` imports its model files alone, as timm's package does not import beside a
CPU torch (it imports torchvision) or on Python 3.11 (one of its models fails).
"""
from __future__ import annotations

import contextlib
import enum
import functools
import importlib
import importlib.machinery
import re
import sys
import types
from pathlib import Path
from typing import Any, Callable, Iterator

from torch import Tensor, nn

from vpbench.errors import UserError
from vpbench.reference.clones import Unavailable, import_into, package, restored_modules, stand_in, unload

# The clones `bench speed --parts openstl` reads: option and repository of each.
SOURCES = {
    "openstl": ("--openstl", "github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning)"),
    "openstl-v030": ("--openstl-v030", "github.com/chengtan9907/OpenSTL (branch OpenSTLv0.3.0)"),
    "predformer": ("--predformer", "github.com/yyyujintang/PredFormer"),
    "vmrnn": ("--vmrnn", "github.com/yyyujintang/VMRNN-PyTorch"),
    "iam4vp": ("--iam4vp", "github.com/seominseok0429/Implicit-Stacked-Autoregressive-Model-for-Video-Prediction"),
    "mamba": ("--mamba", "github.com/state-spaces/mamba (its pure-PyTorch selective scan, for VMRNN on a CPU)"),
    "earthformer": ("--earthformer", "github.com/amazon-science/earth-forecasting-transformer"),
    "mcvd": ("--mcvd", "github.com/voletiv/mcvd-pytorch"),
}
# The modules of timm OpenSTL's files import (timm.layers: timm >= 0.8's path of timm.models.layers)
TIMM = ("timm", "timm.layers", "timm.models", "timm.models.layers", "timm.models.convnext", "timm.models.mlp_mixer",
        "timm.models.swin_transformer", "timm.models.vision_transformer")
# The modules of torchvision OpenSTL's files (DMVFN's VGG) and timm 0.6.11's model files import
TORCHVISION = ("torchvision", "torchvision.models", "torchvision.models.feature_extraction", "torchvision.datasets",
               "torchvision.transforms", "torchvision.ops", "torchvision.ops.misc")
TIMM_VERSION = "0.6.11"  # OpenSTL's requirement: timm<=0.6.11
WAST_TIMM_VERSION = "0.9.12"  # a timm of WaST's time (its modules need timm >= 0.9)


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


def timm_stand_ins() -> None:
    """Each module of timm and torchvision that OpenSTL's files import, as it imports or as a stand-in (timm's with
    its DropPath, trunc_normal_ and to_2tuple)."""
    for name in TIMM:
        stand_in(name, DropPath=_DropPath, trunc_normal_=nn.init.trunc_normal_, to_2tuple=_to_2tuple)
    for name in TORCHVISION:
        stand_in(name)


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
    timm_stand_ins()
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


def tau_regulariser(path: str | Path) -> Callable[[Tensor, Tensor], Tensor]:
    """``TAU.diff_div_reg`` of OpenSTL's ``openstl/methods/tau.py`` (pred, target [B, T, C, H, W] -> scalar).

    The file is imported alone, after :func:`load_model_class` has loaded ``SimVP_Model``; the SimVP method
    class it derives from (which imports Lightning) is an empty placeholder: the regulariser never reads ``self``."""
    methods = package("openstl.methods", Path(path).expanduser() / "openstl" / "methods")
    if "openstl.methods.simvp" not in sys.modules:
        simvp = types.ModuleType("openstl.methods.simvp")
        simvp.SimVP = type("SimVP", (), {})  # type: ignore[attr-defined]
        sys.modules["openstl.methods.simvp"] = methods.simvp = simvp  # type: ignore[attr-defined]
    try:
        tau = importlib.import_module("openstl.methods.tau")
    except ImportError as err:
        raise UserError(f"--openstl {path}: openstl/methods/tau.py does not import ({err})") from None
    return functools.partial(tau.TAU.diff_div_reg, None)


def prednet_loss_class(path: str | Path) -> type:
    """``TrainLossCalculator`` of OpenSTL v0.3.0's ``openstl/methods/prednet.py`` (its PredNet loss), after
    :func:`load_model_class` has loaded ``PredNet_Model``. The file is imported alone: the ``Base_method`` class it
    derives from (which imports the training API) is an empty placeholder, tqdm and timm's utilities stand in
    where they do not import (the loss uses none of them)."""
    methods = package("openstl.methods", Path(path).expanduser() / "openstl" / "methods")
    if "openstl.methods.base_method" not in sys.modules:
        base = types.ModuleType("openstl.methods.base_method")
        base.Base_method = type("Base_method", (), {})  # type: ignore[attr-defined]
        sys.modules["openstl.methods.base_method"] = methods.base_method = base  # type: ignore[attr-defined]
    for name in ("tqdm", "timm.utils"):
        stand_in(name)
    try:
        return importlib.import_module("openstl.methods.prednet").TrainLossCalculator
    except ImportError as err:
        raise UserError(f"--openstl-v030 {path}: openstl/methods/prednet.py does not import ({err})") from None


def timm_folder(version_wanted: str = TIMM_VERSION, needed_by: str = "OpenSTL's timm blocks") -> tuple[Path, str]:
    """The folder and version of the timm package on the path (not imported); a UserError unless it is of the
    series (major.minor) of ``version_wanted``."""
    spec = importlib.machinery.PathFinder.find_spec("timm")
    folder = Path(spec.origin).parent if spec is not None and spec.origin else None
    version_file = folder / "version.py" if folder is not None else None
    found = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", version_file.read_text()) \
        if version_file is not None and version_file.is_file() else None
    version = found.group(1) if found else None
    series = version_wanted.rsplit(".", 1)[0] + "."
    if version is None or not version.startswith(series):
        raise UserError(f"{needed_by} need timm {version_wanted} (found {version or 'none'}): pip install --no-deps "
                        f"--target DIR timm=={version_wanted} and put DIR on PYTHONPATH")
    return folder, version


@contextlib.contextmanager
def openstl_timm() -> Iterator[str]:
    """timm 0.6.x importable for the block, as OpenSTL's timm blocks need it (:func:`timm_folder`): its
    ``timm.models`` package without its ``__init__.py`` files (only the model files imported are run),
    ``timm.layers`` (OpenSTL-Lightning's import path, timm >= 0.8's) pointing at its ``timm.models.layers``, and
    stand-ins for the torchvision modules its files import where torchvision does not import. Yields timm's version.
    OpenSTL's files are imported afresh in the block (none imported beside timm's stand-ins is used), and unloaded
    after it with timm's modules and the stand-ins."""
    folder, version = timm_folder(needed_by=f"OpenSTL's timm blocks (OpenSTL pins timm<={TIMM_VERSION})")
    with restored_modules("timm", "torchvision", "openstl"):
        unload("timm", "openstl")  # stand-ins, what a failed import of timm's package left, files that imported them
        for name in TORCHVISION:
            stand_in(name)
        # timm's data transforms read InterpolationMode's members when they are imported
        stand_in("torchvision.transforms.functional",
                 InterpolationMode=enum.Enum("InterpolationMode", "NEAREST BILINEAR BICUBIC BOX HAMMING LANCZOS"))
        package("timm.models", folder / "models")
        sys.modules["timm"].__version__ = version
        sys.modules["timm.layers"] = importlib.import_module("timm.models.layers")
        yield version


@contextlib.contextmanager
def wast_timm() -> Iterator[str]:
    """timm 0.9.x importable for the block, as OpenSTL's WaST modules need it (they import ``timm.layers`` and
    ``timm.models._efficientnet_blocks``, which timm 0.6 lacks): its ``timm`` and ``timm.models`` packages without
    their ``__init__.py`` files (``timm.layers`` and the files imported are run), and stand-ins for the torchvision
    modules its files import where torchvision does not import. Yields timm's version; OpenSTL's files imported in
    the block are unloaded after it with timm's modules and the stand-ins."""
    folder, version = timm_folder(WAST_TIMM_VERSION, "OpenSTL's WaST modules")
    with restored_modules("timm", "torchvision", "openstl"):
        unload("timm", "openstl")
        for name in TORCHVISION:
            stand_in(name)
        package("timm", folder)
        package("timm.models", folder / "models")
        sys.modules["timm"].__version__ = version
        yield version


@functools.lru_cache(maxsize=None)
def wast_modules(path: str | Path) -> types.ModuleType:
    """OpenSTL's ``openstl/modules/wast_modules.py`` (``WaST_level1``, ``HighFocalFrequencyLoss``) from the clone at
    ``path``, imported alone under :func:`wast_timm` (kept after: the module, not ``sys.modules``, holds it). A
    :class:`~vpbench.reference.clones.Unavailable` where timm 0.9, pywt or einops do not import."""
    root = Path(path).expanduser() / "openstl"
    if not (root / "modules" / "wast_modules.py").is_file():
        raise UserError(f"--openstl {path}: no openstl/modules/wast_modules.py there; give the folder of a clone of "
                        f"{SOURCES['openstl'][1]}")
    try:
        with wast_timm():
            package("openstl", root)
            package("openstl.modules", root / "modules")
            return importlib.import_module("openstl.modules.wast_modules")
    except (UserError, ImportError) as err:
        raise Unavailable(f"OpenSTL's WaST modules do not import here ({err})") from None


@contextlib.contextmanager
def cuda_is_identity() -> Iterator[None]:
    """``Tensor.cuda`` and ``Module.cuda`` as the identity for the block: WaST's loss puts its filters and mask on
    CUDA when built and called."""
    saved = Tensor.cuda, nn.Module.cuda
    Tensor.cuda = nn.Module.cuda = lambda self, *args, **kwargs: self  # type: ignore[method-assign]
    try:
        yield
    finally:
        Tensor.cuda, nn.Module.cuda = saved  # type: ignore[method-assign]
