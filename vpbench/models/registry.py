"""One registry of models, built by name (timm-style).

Every entry builds an ``nn.Module`` honouring the one contract of the suite::

    forward(frames: Tensor[B, T_in, C, H, W], horizon: int) -> Tensor[B, horizon, C, H, W] in [0, 1]

A model is one file: it registers itself with ``@register_model``, declaring its label, tags, its
hyperparameters per preset, its training recipe and its published values, so that the harness never
needs to know which model it runs and no list elsewhere names it. Built-in models are found by
importing every module of ``vpbench.models`` (:func:`vpbench.models.discover`); models from other
packages join through ``module:factory`` specs, the ``vpbench.models`` entry points and
``VPBENCH_PLUGINS`` (see :mod:`vpbench.plugins`).
"""
from __future__ import annotations

import inspect
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from torch import nn

from vpbench import presets
from vpbench.errors import UserError

# Keys the harness fills in from the dataset; a factory receives those its signature accepts.
DATA_KEYS = ("in_channels", "img_size", "input_frames", "output_frames")
Recipe = Mapping[str, Any] | str


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about one model.

    * ``defaults``: hyperparameters per preset name (``paper``, ``quick``, ..., ``openstl-quick``); a
      preset the model does not declare takes the values of the SRVP preset of the same scale, then
      ``paper``'s.
    * ``recipe``: the recipe (``train.*`` keys: loss, optimiser, schedule, rate, ...) it trains with,
      replacing the protocol's: a mapping per preset name (a preset it does not name trains with the
      protocol's recipe), one mapping for every preset, or ``"paper"`` for the protocol's everywhere. A
      recipe that only changes the protocol's starts from ``presets.protocol_recipe(preset)``.
    * ``labels``: its row label under another protocol (OpenSTL calls ST-LSTM "PredRNN").
    * ``references``: published values per reference table id (declared by the datasets): a metric
      -> value mapping, or predicted frame -> value for per-step tables.
    * ``rank``: its place in lists and tables (the paper's row order for the built-in models).
    * ``training_note``: how its training here differs from its published runs' (e.g. a loss term left out),
      shown beside its rows in every report, unless each of them was trained with the train option
      ``training_note_unless`` set (e.g. the weights that add that term).
    * ``stochastic``: its forward draws one of many possible futures (a generative model): it is evaluated on
      ``--samples K`` futures per test sequence (best of K, mean of K, spread) instead of one.
    """

    name: str
    factory: Callable[..., nn.Module]
    label: str
    tags: frozenset[str] = frozenset()  # "paper", "rnn", "ablation", "baseline", "openstl", ...
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    recipe: Recipe = "paper"
    origin: Mapping[str, str | None] = field(default_factory=lambda: {"kind": "builtin"})  # see plugins.origin_of
    labels: Mapping[str, str] = field(default_factory=dict)
    references: Mapping[str, Mapping[Any, float]] = field(default_factory=dict)
    rank: float = math.inf
    training_note: str = ""
    training_note_unless: str = ""  # a train key that, set in a run, makes its training_note not apply to it
    stochastic: bool = False

    def kwargs_for(self, preset: str) -> dict[str, Any]:
        """Default hyperparameters for ``preset``."""
        found = presets.lookup(self.defaults, preset) if preset in presets.PRESETS else self.defaults.get(preset)
        return dict(found if found is not None else self.defaults.get("paper", {}))

    def recipe_for(self, preset: str) -> dict[str, Any]:
        """The training options this model sets under ``preset`` (empty: the protocol's recipe)."""
        recipe = self.recipe
        if not isinstance(recipe, str) and any(key in presets.PRESETS for key in recipe):
            recipe = recipe.get(preset, "paper")
        if isinstance(recipe, str):
            if recipe != "paper":
                raise UserError(f"model {self.name!r} asks for recipe {recipe!r}; a recipe is 'paper' (the "
                                "protocol's) or a mapping of train options")
            return {}
        return dict(recipe)

    def label_for(self, protocol: str) -> str:
        return self.labels.get(protocol, self.label)

    def accepted_keys(self) -> set[str] | None:
        """Keyword arguments the factory accepts, or None when it takes ``**kwargs``."""
        params = inspect.signature(self.factory).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


_REGISTRY: dict[str, ModelEntry] = {}
_UNAVAILABLE: dict[str, str] = {}  # plug-in name -> the one-line reason it failed to load
_PLUGINS_LOADED = False
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # a model name is also a folder name

# Model groups: a name on the command line that expands to several models (by tag).
GROUPS: dict[str, str] = {
    "all": "every paper model (Tables 1-3) plus the persistence baseline; under --protocol openstl, every "
           "OpenSTL method plus persistence",
    "paper": "the eight models of the paper's Tables 1-3",
    "rnn": "the five recurrent cells in one encoder-forecaster",
    "ablation": "SRVP and its three ablations (Table 4)",
    "openstl": "every method of OpenSTL's benchmark that vpbench has",
}


def register_model(
    name: str,
    *,
    label: str | None = None,
    tags: tuple[str, ...] = (),
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
    recipe: Recipe = "paper",
    origin: Mapping[str, str | None] | None = None,
    labels: Mapping[str, str] | None = None,
    references: Mapping[str, Mapping[Any, float]] | None = None,
    rank: float = math.inf,
    training_note: str = "",
    training_note_unless: str = "",
    stochastic: bool = False,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a factory to the registry under ``name`` (see :class:`ModelEntry`).

    Plug-in models use it the same way; their origin (module path, package, version) is found
    from the factory's module unless given."""

    def add(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        from vpbench.plugins import origin_of

        if not NAME_PATTERN.fullmatch(name):
            raise UserError(f"invalid model name {name!r}: use letters, digits, '_', '.' and '-' only")
        if name in _REGISTRY or name in GROUPS:
            owner = "a model group" if name in GROUPS else _REGISTRY[name].origin.get("source", "a built-in model")
            raise UserError(f"model name {name!r} is already taken by {owner}; register it under another name")
        _REGISTRY[name] = ModelEntry(
            name=name, factory=factory, label=label or name, tags=frozenset(tags), defaults=defaults or {},
            recipe=recipe, origin=origin or origin_of(factory), labels=labels or {}, references=references or {},
            rank=rank, training_note=training_note, training_note_unless=training_note_unless, stochastic=stochastic,
        )
        return factory

    return add


def entries() -> dict[str, ModelEntry]:
    """Every registered model; the installed plug-ins load on the first call."""
    global _PLUGINS_LOADED
    if not _PLUGINS_LOADED:
        _PLUGINS_LOADED = True
        from vpbench.models.plugins import load_entry_points
        from vpbench.plugins import import_environment_plugins

        load_entry_points()
        import_environment_plugins()
    return _REGISTRY


def get_entry(name: str) -> ModelEntry:
    registry = entries()
    if name not in registry:
        if name in _UNAVAILABLE:
            raise UserError(_UNAVAILABLE[name])
        raise UserError(f"unknown model {name!r}; known models: {', '.join(model_names())} (see `bench list`), "
                        "or give a plug-in as module:factory")
    return registry[name]


def model_names() -> list[str]:
    """Every model, in rank order (the paper's row order first), then in registration order."""
    registry = entries()
    order = {name: i for i, name in enumerate(registry)}
    return sorted(registry, key=lambda n: (registry[n].rank, order[n]))


def group_members(group: str, protocol: str = presets.DEFAULT_PROTOCOL) -> list[str]:
    """Models of a group, in rank order (``all`` = paper models + baselines; under the openstl
    protocol, OpenSTL's methods + baselines)."""
    if group == "all":
        wanted = {"openstl" if protocol == "openstl" else "paper", "baseline"}
    else:
        wanted = {group}
    return [name for name in model_names() if entries()[name].tags & wanted]


def expand(names: str | list[str], protocol: str = presets.DEFAULT_PROTOCOL) -> list[str]:
    """Expand a comma-separated list of model names, groups and ``module:factory`` specs (registered
    on the way, see :func:`vpbench.models.plugins.load_spec`), keeping order, without repeats."""
    from vpbench.models.plugins import load_spec

    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item in GROUPS:
            chosen = group_members(item, protocol)
        elif ":" in item:
            chosen = [load_spec(item)]
        else:
            chosen = [get_entry(item).name]
        out.extend(n for n in chosen if n not in out)
    if not out:
        raise UserError("no model given; pass --models NAMES, a group (all, rnn, ablation, openstl), see `bench list`")
    return out


def model_kwargs(name: str, preset: str, data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Resolved constructor arguments: preset defaults, then the dataset's keys, then overrides."""
    entry = get_entry(name)
    accepted = entry.accepted_keys()
    kwargs = entry.kwargs_for(preset)
    kwargs.update({k: v for k, v in data.items() if accepted is None or k in accepted})
    if accepted is not None:
        unknown = sorted(set(overrides) - accepted)
        if unknown:
            raise UserError(
                f"model {name!r} takes no option {', '.join(unknown)}; it takes: {', '.join(sorted(accepted))}"
            )
    kwargs.update(overrides)
    return _tiling_patch(kwargs)


def _tiling_patch(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A preset may give ``patch_size`` as a preference list (``[8, 4]``): the first that tiles the frames
    (``img_size``; the first when the size is not known), so that a run's configuration records one number."""
    choices = kwargs.get("patch_size")
    if isinstance(choices, (list, tuple)):
        size = kwargs.get("img_size")
        tiling = [p for p in choices if size is None or all(side % p == 0 for side in size)]
        kwargs["patch_size"] = (tiling or list(choices))[0]
    return kwargs


def create(name: str, *, preset: str = "paper", **overrides: Any) -> nn.Module:
    """Build model ``name`` with the ``preset`` defaults, updated by ``overrides``.

    >>> create("convgru", hidden=32, layers=2, img_size=(64, 64))
    """
    return get_entry(name).factory(**model_kwargs(name, preset, {}, overrides))


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """The model of a resolved run configuration."""
    kwargs = {k: v for k, v in config["model"].items() if k != "name"}
    if "img_size" in kwargs:
        kwargs["img_size"] = tuple(kwargs["img_size"])
    model = get_entry(config["model"]["name"]).factory(**kwargs)
    model.registry_name = config["model"]["name"]
    return model
