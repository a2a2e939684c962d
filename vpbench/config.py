"""Presets (YAML in ``vpbench/presets``) and their resolution into one run's configuration.

A run's configuration has four sections, resolved in this order (later wins):

* ``train``: preset ``train`` -> the dataset's ``train`` -> the model's recipe -> ``--set train.*``
  -> ``--epochs``;
* ``dataset``: the dataset's default frames -> the preset's ``datasets.<name>`` -> ``--set dataset.*``;
* ``model``: the model's defaults for the preset -> the dataset's shape -> ``--set model.*``;
* ``preset``, ``seed``.
"""
from __future__ import annotations

import copy
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Mapping

import yaml

from vpbench.datasets import dataset_entry
from vpbench.errors import UserError
from vpbench.models import registry

PRESETS = ("quick", "paper", "tiny")
SECTIONS = ("train", "dataset", "model")

# Every training key, with a check of its value: (description, test).
TRAIN_KEYS: dict[str, tuple[str, Any]] = {
    "epochs": ("an integer >= 0", lambda v: isinstance(v, int) and v >= 0),
    "batch_size": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
    "eval_batch_size": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
    "lr": ("a number > 0", lambda v: _number(v) and v > 0),
    "optimizer": ("rmsprop, adam, adamw or sgd", lambda v: v in ("rmsprop", "adam", "adamw", "sgd")),
    "momentum": ("a number in [0, 1)", lambda v: _number(v) and 0 <= v < 1),
    "weight_decay": ("a number >= 0", lambda v: _number(v) and v >= 0),
    "loss": ("a registered loss (bce, mse, ...)", lambda v: isinstance(v, str)),
    "scheduler": ("cosine, onecycle or none", lambda v: v in ("cosine", "onecycle", "none")),
    "eta_min": ("a number >= 0", lambda v: _number(v) and v >= 0),
    "t_max_epochs": ("an integer >= 1 or null", lambda v: v is None or (isinstance(v, int) and v >= 1)),
    "num_workers": ("an integer >= 0", lambda v: isinstance(v, int) and v >= 0),
    "grad_clip": ("a number > 0 or null", lambda v: v is None or (_number(v) and v > 0)),
    "samples": ("an integer >= 0", lambda v: isinstance(v, int) and v >= 0),
}
DATASET_COUNT_KEYS = ("input_frames", "output_frames", "train_sequences", "val_sequences", "test_sequences")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@lru_cache(maxsize=None)
def _load(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    text = resources.files("vpbench.presets").joinpath(f"{name}.yaml").read_text()
    return yaml.safe_load(text)


def load_preset(name: str) -> dict[str, Any]:
    """The preset's YAML as a dict (a fresh copy)."""
    return copy.deepcopy(_load(name))


def default_preset(device: str) -> str:
    """``paper`` on CUDA, ``quick`` on CPU."""
    return "paper" if device.startswith("cuda") else "quick"


def parse_sets(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``["train.lr=1e-4", "model.hidden=64"]`` -> ``{"train": {"lr": 1e-4}, "model": {"hidden": 64}}``."""
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for item in items:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or section not in SECTIONS or not name:
            raise UserError(f"--set {item!r}: expected SECTION.KEY=VALUE with SECTION one of {', '.join(SECTIONS)}")
        out[section][name] = _parse_value(item, raw.strip())
    return out


def _parse_value(item: str, raw: str) -> Any:
    """Numbers as Python reads them (``1e-4`` is a float, unlike YAML 1.1), anything else as YAML."""
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        raise UserError(f"--set {item!r}: the value is not valid YAML") from None


def dataset_config(preset: Mapping[str, Any], name: str, sets: Mapping[str, Any]) -> dict[str, Any]:
    """The dataset section: default frames, the preset's values, then ``--set dataset.*``."""
    entry = dataset_entry(name)
    section = dict(preset.get("datasets", {}).get(name, {}))
    section.pop("train", None)
    config = {"input_frames": entry.frames[0], "output_frames": entry.frames[1], **section}
    unknown = sorted(set(sets) - set(config))
    if unknown:
        raise UserError(f"dataset {name!r} has no option {', '.join(unknown)}; it has: {', '.join(sorted(config))}")
    config.update(sets)
    for key in DATASET_COUNT_KEYS:
        value = config.get(key)
        if key in config and not (isinstance(value, int) and value >= 1):
            raise UserError(f"invalid value dataset.{key}={value!r}: must be an integer >= 1")
    return config


def train_config(preset_name: str, preset: Mapping[str, Any], model: str, dataset: str,
                 sets: Mapping[str, Any], epochs: int | None) -> dict[str, Any]:
    """The train section for ``model`` on ``dataset``."""
    recipe = registry.get_entry(model).recipe_for(preset_name)
    if isinstance(recipe, str):
        recipes = preset.get("recipes", {})
        if recipe not in recipes:
            raise UserError(f"model {model!r} asks for recipe {recipe!r}, which preset {preset_name!r} does not define")
        recipe = {"recipe": recipe, **recipes[recipe]}
    config = {**preset["train"], **preset.get("datasets", {}).get(dataset, {}).get("train", {}), **recipe}
    config.update(sets)
    if epochs is not None:
        config["epochs"] = epochs
    for key, value in config.items():
        if key == "recipe":
            continue
        if key not in TRAIN_KEYS:
            raise UserError(f"unknown training option train.{key}; known: {', '.join(TRAIN_KEYS)}")
        description, check = TRAIN_KEYS[key]
        if not check(value):
            raise UserError(f"invalid value train.{key}={value!r}: must be {description}")
    return config


def resolve(preset_name: str, model: str, dataset: str, *, seed: int = 0, epochs: int | None = None,
            sets: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The full configuration of one run (JSON/YAML-serialisable)."""
    sets = sets or {s: {} for s in SECTIONS}
    preset = load_preset(preset_name)
    data = dataset_config(preset, dataset, sets.get("dataset", {}))
    spec = dataset_entry(dataset).spec(data)
    model_kwargs = registry.model_kwargs(model, preset_name, spec.model_keys(), sets.get("model", {}))
    if "img_size" in model_kwargs:
        model_kwargs["img_size"] = list(model_kwargs["img_size"])
    return {
        "preset": preset_name,
        "seed": int(seed),
        "dataset": {"name": dataset, **data},
        "model": {"name": model, **model_kwargs},
        "train": train_config(preset_name, preset, model, dataset, sets.get("train", {}), epochs),
    }
