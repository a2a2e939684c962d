"""One registry of models, built by name (timm-style).

Every entry builds an ``nn.Module`` honouring the one contract of the suite::

    forward(frames: Tensor[B, T_in, C, H, W], horizon: int) -> Tensor[B, horizon, C, H, W] in [0, 1]

An entry declares its hyperparameters per preset and the training recipe it is trained with,
so the harness never needs to know which model it runs. Models from other packages join through
``module:factory`` specs and the ``vpbench.models`` entry points (see :mod:`vpbench.models.plugins`).
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from torch import nn

from vpbench.errors import UserError

# Keys the harness fills in from the dataset; a factory receives those its signature accepts.
DATA_KEYS = ("in_channels", "img_size", "input_frames", "output_frames")


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about one model."""

    name: str
    factory: Callable[..., nn.Module]
    label: str  # the row name in the paper's tables
    tags: frozenset[str] = frozenset()  # "paper", "rnn", "ablation", "baseline"
    defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # preset -> kwargs
    recipe: Mapping[str, Any] | str = "paper"  # recipe name, or train overrides, or per preset
    origin: Mapping[str, str | None] = field(default_factory=lambda: {"kind": "builtin"})  # see plugins.origin_of

    def kwargs_for(self, preset: str) -> dict[str, Any]:
        """Default hyperparameters for ``preset`` (falls back to ``paper``)."""
        return dict(self.defaults.get(preset, self.defaults.get("paper", {})))

    def recipe_for(self, preset: str) -> str | dict[str, Any]:
        """The recipe name or train overrides this model trains with under ``preset``."""
        recipe = self.recipe
        if isinstance(recipe, Mapping) and preset in recipe:
            recipe = recipe[preset]
        return dict(recipe) if isinstance(recipe, Mapping) else recipe

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

# Model groups: a name on the command line that expands to several models.
GROUPS: dict[str, str] = {
    "all": "every paper model (Tables 1-3) plus the persistence baseline",
    "paper": "the eight models of the paper's Tables 1-3",
    "rnn": "the five recurrent cells in one encoder-forecaster",
    "ablation": "SRVP and its three ablations (Table 4)",
}


def register_model(
    name: str,
    *,
    label: str | None = None,
    tags: tuple[str, ...] = (),
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
    recipe: Mapping[str, Any] | str = "paper",
    origin: Mapping[str, str | None] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator adding a factory to the registry under ``name``.

    Plug-in models use it the same way; their origin (module path, package, version) is found
    from the factory's module unless given."""

    def add(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        from vpbench.models.plugins import origin_of

        if not NAME_PATTERN.fullmatch(name):
            raise UserError(f"invalid model name {name!r}: use letters, digits, '_', '.' and '-' only")
        if name in _REGISTRY or name in GROUPS:
            owner = "a model group" if name in GROUPS else _REGISTRY[name].origin.get("source", "a built-in model")
            raise UserError(f"model name {name!r} is already taken by {owner}; register it under another name")
        _REGISTRY[name] = ModelEntry(
            name=name,
            factory=factory,
            label=label or name,
            tags=frozenset(tags),
            defaults=defaults or {},
            recipe=recipe,
            origin=origin or origin_of(factory),
        )
        return factory

    return add


def entries() -> dict[str, ModelEntry]:
    """Every registered model; the installed plug-ins' entry points load on the first call."""
    global _PLUGINS_LOADED
    if not _PLUGINS_LOADED:
        _PLUGINS_LOADED = True
        from vpbench.models.plugins import load_entry_points

        load_entry_points()
    return _REGISTRY


def get_entry(name: str) -> ModelEntry:
    registry = entries()
    if name not in registry:
        if name in _UNAVAILABLE:
            raise UserError(_UNAVAILABLE[name])
        raise UserError(f"unknown model {name!r}; known models: {', '.join(registry)} (see `bench list`), "
                        "or give a plug-in as module:factory")
    return registry[name]


def model_names() -> list[str]:
    return list(entries())


def group_members(group: str) -> list[str]:
    """Models of a group, in registration order (``all`` = paper models + baselines)."""
    wanted = {"paper", "baseline"} if group == "all" else {group}
    return [name for name, entry in entries().items() if entry.tags & wanted]


def expand(names: str | list[str]) -> list[str]:
    """Expand a comma-separated list of model names, groups and ``module:factory`` specs (registered
    on the way, see :func:`vpbench.models.plugins.load_spec`), keeping order, without repeats."""
    from vpbench.models.plugins import load_spec

    items = names.split(",") if isinstance(names, str) else list(names)
    out: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item in GROUPS:
            chosen = group_members(item)
        elif ":" in item:
            chosen = [load_spec(item)]
        else:
            chosen = [get_entry(item).name]
        out.extend(n for n in chosen if n not in out)
    if not out:
        raise UserError("no model given; pass --models NAMES, a group (all, rnn, ablation), see `bench list`")
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
    return kwargs


def create(name: str, *, preset: str = "paper", **overrides: Any) -> nn.Module:
    """Build model ``name`` with the ``preset`` defaults, updated by ``overrides``.

    >>> create("convgru", hidden=32, layers=2, img_size=(64, 64))
    """
    return get_entry(name).factory(**model_kwargs(name, preset, {}, overrides))
