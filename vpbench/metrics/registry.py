"""The metric registry: a metric is one function, registered by name, computed for every predicted frame.

``register_metric(name, fn, *, higher_is_better, label=None)`` makes ``fn`` a metric of ``bench run``,
``bench eval`` and ``bench report``::

    fn(pred, target, context) -> np.ndarray [N, T]   # one value per sequence and predicted frame

``pred`` and ``target`` are float arrays [N, T, C, H, W] in [0, 1] (targets are the dataset's 8-bit or
float frames scaled to [0, 1]; predictions are the model's, clamped to [0, 1]); ``context``
(:class:`MetricContext`) carries what a metric may need beyond the frames: the dataset's name, its physical
scale and units (``context.physical(frames)``), its channel names, latitude weights where it has them, and
dataset-specific arrays such as a climatology (``context.extra``).

Built-in metrics register the same way (:mod:`vpbench.metrics.frames`). Metrics from outside the package join
like models and datasets (:mod:`vpbench.plugins`): ``VPBENCH_PLUGINS=mymodule`` (a module whose import calls
``register_metric``), the entry-point group ``vpbench.metrics`` (an entry point names the function; it is
registered under the entry point's name), and ``--metrics module:function`` on the command line.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from vpbench import plugins
from vpbench.errors import UserError

GROUP = "vpbench.metrics"
MetricFn = Callable[[np.ndarray, np.ndarray, "MetricContext"], np.ndarray]


@dataclass(frozen=True)
class MetricContext:
    """What a metric may know of the data beyond the frames.

    ``offset`` and ``scale`` (one value, or one per channel) map frames in [0, 1] to physical values:
    ``physical = offset + scale * frame`` in ``units`` (8-bit frames: offset 0, scale 255, units ``"0-255"``).
    ``eight_bit``: the data are 8-bit frames, and the built-in metrics score predictions quantised to 8 bits
    as saved images are (the paper's convention); False for data of physical values (weather, radar), whose
    MSE and MAE are then in physical units on the unquantised predictions.
    ``lat_weights``: [H] weights of the rows (cos latitude normalised to mean 1) for gridded global data, else
    None. ``extra``: named arrays a dataset provides for its own metrics (e.g. ``climatology``, [C, H, W] in
    physical units)."""

    dataset: str
    channels: tuple[str, ...] = ()
    units: str = "0-255"
    eight_bit: bool = True
    offset: float | tuple[float, ...] = 0.0
    scale: float | tuple[float, ...] = 255.0
    lat_weights: np.ndarray | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def physical(self, frames: np.ndarray) -> np.ndarray:
        """Frames [..., C, H, W] in [0, 1] -> physical values (float64)."""
        shape = (-1, 1, 1)
        offset = np.asarray(self.offset, np.float64).reshape(shape if np.ndim(self.offset) else ())
        scale = np.asarray(self.scale, np.float64).reshape(shape if np.ndim(self.scale) else ())
        return offset + scale * np.asarray(frames, np.float64)


@dataclass(frozen=True)
class MetricEntry:
    """A registered metric. ``applies``: whether it means anything for a dataset's context (None: for every
    dataset); a metric that does not apply is left out of the default selection."""

    name: str
    fn: MetricFn
    higher_is_better: bool
    label: str
    origin: Mapping[str, Any]
    applies: Callable[[MetricContext], bool] | None = None

    def applies_to(self, context: MetricContext) -> bool:
        return self.applies is None or bool(self.applies(context))


PERCEPTUAL_HIGHER_IS_BETTER = {"lpips": False, "fvd": False}  # vpbench.metrics.perceptual, from weight files
PERCEPTUAL_LABELS = {"lpips": "LPIPS", "fvd": "FVD"}
_METRICS: dict[str, MetricEntry] = {}
_UNAVAILABLE: dict[str, str] = {}  # broken entry points: name -> their one-line error
_loaded = False


def register_metric(name: str, fn: MetricFn, *, higher_is_better: bool, label: str | None = None,
                    applies: Callable[[MetricContext], bool] | None = None) -> MetricFn:
    """Register ``fn`` as metric ``name`` (returns ``fn``, so that it works as a plain call or after a def).
    ``applies(context)``: for a metric of some data only (weather, radar), whether a dataset's context is such
    data; the default selection (no ``--metrics``) leaves the metric out elsewhere."""
    if not name or not name.replace("_", "").isalnum() or not name[0].isalpha():
        raise UserError(f"metric name {name!r}: use letters, digits and underscores, starting with a letter")
    if not callable(fn):
        raise UserError(f"metric {name!r}: {type(fn).__name__} is not callable; register a function "
                        "fn(pred, target, context) -> array [N, T]")
    known = _METRICS.get(name)
    if known is not None and known.fn is not fn:
        raise UserError(f"metric {name!r} is already registered (by {known.origin.get('source', 'vpbench')}); "
                        "choose another name")
    _METRICS[name] = MetricEntry(name, fn, bool(higher_is_better), label or name, plugins.origin_of(fn), applies)
    return fn


def _load() -> None:
    """The built-in metrics (every module of :mod:`vpbench.metrics` is imported: its metrics register on import;
    nothing lists them), then the plug-ins (entry points, ``VPBENCH_PLUGINS``), once per process."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    package = __name__.rpartition(".")[0]
    for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
        importlib.import_module(f"{package}.{module.name}")

    plugins.load_entry_points(GROUP, "metric", _adopt, _UNAVAILABLE)
    plugins.import_environment_plugins()


def _adopt(fn: Any, name: str, what: str) -> str:
    """An entry point's function: its own registration, else registered under the entry point's name (lower
    is better unless the function says ``higher_is_better = True``)."""
    for entry in _METRICS.values():
        if entry.fn is fn:
            return entry.name
    try:
        register_metric(name, fn, higher_is_better=bool(getattr(fn, "higher_is_better", False)),
                        label=getattr(fn, "label", None))
    except UserError as err:
        raise UserError(f"{what}: {err}") from None
    return name


def metric_names() -> list[str]:
    """Every registered metric, the built-in ones first, in registration order."""
    _load()
    return list(_METRICS)


def higher_is_better(name: str) -> bool | None:
    """Whether a higher value of stored metric ``name`` is better: the registered metric's, the perceptual
    metrics' (computed from weight files, not registered), or None for a metric not known here (a run's plug-in
    that this process has not loaded)."""
    _load()
    if name in _METRICS:
        return _METRICS[name].higher_is_better
    return PERCEPTUAL_HIGHER_IS_BETTER.get(name)


def label_of(name: str) -> str:
    """The label a table or plot gives stored metric ``name`` (its own name when not registered here)."""
    _load()
    return _METRICS[name].label if name in _METRICS else PERCEPTUAL_LABELS.get(name, name)


def get_metric(name: str) -> MetricEntry:
    _load()
    if name in _UNAVAILABLE:
        raise UserError(_UNAVAILABLE[name])
    if name not in _METRICS:
        raise UserError(f"unknown metric {name!r}; the metrics are: {', '.join(_METRICS)} (or module:function)")
    return _METRICS[name]


def load_spec(spec: str) -> str:
    """``module:function``: import it and return the name its metric is registered under (its own
    ``register_metric`` name, else the function's name)."""
    module, _, attr = spec.partition(":")
    what = f"metric spec {spec!r}"
    fn = plugins.resolve(module, attr, what)
    return _adopt(fn, attr.rpartition(".")[2], what)


def select(spec: str | Sequence[str] | None) -> list[str]:
    """The metrics ``--metrics`` names (comma-separated names and ``module:function`` specs); every registered
    metric when None."""
    _load()
    if spec is None:
        return metric_names()
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not items:
        raise UserError(f"--metrics is empty; the metrics are: {', '.join(_METRICS)}")
    names = [load_spec(item) if ":" in item else get_metric(item).name for item in items]
    return list(dict.fromkeys(names))
