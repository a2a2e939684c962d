"""Resolution of one run's configuration from its preset, its model and its dataset.

A run's configuration has these sections, each resolved in this order (later wins):

* ``train``: the preset's ``train`` section (epochs, batch, rate at its scale) -> the dataset's training
  options for the preset -> the recipe (the model's own for the preset, else the protocol's) ->
  ``--set train.*`` -> ``--epochs``;
* ``dataset``: the dataset's option defaults for the preset -> ``--set dataset.*``;
* ``model``: the model's defaults for the preset -> the dataset's shape -> ``--set model.*``;
* ``metrics``: the registered metrics to compute (``names``, ``--metrics``; default every one) and the perceptual
  ones (``--set metrics.*``);
* ``logger``: the experiment trackers a run also writes to (``use``, from ``bench run --logger``) and where
  their logs go (``dir``; default: the run folder) (``--set logger.*``);
* ``preset``, ``seed``.

Models and datasets declare their values in their own files; a preset holds only its protocol's
training settings (see :mod:`vpbench.presets`).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from vpbench import presets
from vpbench.datasets import dataset_entry
from vpbench.errors import UserError
from vpbench.losses import loss_names
from vpbench.metrics.perceptual import metrics_config
from vpbench.models import registry

PRESETS = tuple(presets.PRESETS)
SECTIONS = ("train", "dataset", "model", "metrics", "logger")
RUN_KEYS = ("preset", "seed", "dataset", "model", "train")  # what defines a run; "runtime" does not

# Every training key, with a check of its value: (description, test).
TRAIN_KEYS: dict[str, tuple[str, Any]] = {
    "recipe": ("the name of the recipe", lambda v: isinstance(v, str)),
    "epochs": ("an integer >= 0", lambda v: isinstance(v, int) and v >= 0),
    "batch_size": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
    "eval_batch_size": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
    "lr": ("a number > 0", lambda v: _number(v) and v > 0),
    "optimizer": ("rmsprop, adam, adamw or sgd", lambda v: v in ("rmsprop", "adam", "adamw", "sgd")),
    "momentum": ("a number in [0, 1)", lambda v: _number(v) and 0 <= v < 1),
    "weight_decay": ("a number >= 0", lambda v: _number(v) and v >= 0),
    "loss": ("a registered loss", lambda v: v in loss_names()),
    "scheduler": ("cosine, onecycle, warmup_cosine or none",
                  lambda v: v in ("cosine", "onecycle", "warmup_cosine", "none")),
    # warmup_cosine's linear warmup from 0, as a fraction of all steps (Earthformer's; see vpbench.harness.recipes).
    "warmup_fraction": ("a number in [0, 1)", lambda v: _number(v) and 0 <= v < 1),
    "eta_min": ("a number >= 0", lambda v: _number(v) and v >= 0),
    "t_max_epochs": ("an integer >= 1 or null", lambda v: v is None or (isinstance(v, int) and v >= 1)),
    "num_workers": ("an integer >= 0", lambda v: isinstance(v, int) and v >= 0),
    # Convolution weights in channels-last layout on a CPU (measured faster for some models; harness.steps.place).
    "cpu_channels_last": ("true or false", lambda v: isinstance(v, bool)),
    "grad_clip": ("a number > 0 or null", lambda v: v is None or (_number(v) and v > 0)),
    # One optimiser step per window of consecutive frames (DMVFN's references; see vpbench.harness.steps).
    "window_frames": ("an integer >= 2 or null", lambda v: v is None or (isinstance(v, int) and v >= 2)),
    "window_grads": ("reset or accumulate", lambda v: v in ("reset", "accumulate")),
    # DMVFN's VGG-19 perceptual term, from torchvision's ImageNet VGG-19 state dict (vpbench.models.layers.vgg).
    "vgg_weights": ("a file path or null", lambda v: v is None or (isinstance(v, str) and bool(v.strip()))),
    # Scheduled sampling of OpenSTL's recurrent models (loss mse_all_frames; see vpbench.models.layers.openstl_stack).
    "sampling": ("none, linear or reverse", lambda v: v in ("none", "linear", "reverse")),
    "sampling_stop_iter": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
    "sampling_changing_rate": ("a number > 0", lambda v: _number(v) and v > 0),
    "r_sampling_step_1": ("an integer >= 0", lambda v: isinstance(v, int) and v >= 0),
    "r_sampling_step_2": ("an integer >= 1", lambda v: isinstance(v, int) and v >= 1),
    "r_exp_alpha": ("a number > 0", lambda v: _number(v) and v > 0),
    "samples": ("an integer >= 0", lambda v: isinstance(v, int) and v >= 0),
    # WaST's loss and stochastic-depth schedule (loss wast; see vpbench.models.wast).
    "frequency_weight": ("a number >= 0", lambda v: _number(v) and v >= 0),
    "drop_path_late": ("a number in [0, 1)", lambda v: _number(v) and 0 <= v < 1),
    "drop_path_start_step": ("an integer >= 0", lambda v: isinstance(v, int) and v >= 0),
}


# Every logger key, with a check of its value; the tracker names themselves are checked by the harness.
LOGGER_KEYS: dict[str, tuple[str, Any]] = {
    "use": ("a list of logger names", lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v)),
    "dir": ("a folder path or null", lambda v: v is None or (isinstance(v, str) and bool(v.strip()))),
}


def logger_config(sets: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``logger`` section: no tracker and logs in the run folder, then ``--set logger.*``."""
    config = {"use": [], "dir": None, **(sets or {})}
    for key, value in config.items():
        if key not in LOGGER_KEYS:
            raise UserError(f"unknown logger option logger.{key}; known: {', '.join(LOGGER_KEYS)}")
        description, check = LOGGER_KEYS[key]
        if not check(value):
            raise UserError(f"invalid value logger.{key}={value!r}: must be {description}")
    return config


def _number(value: Any) -> bool:
    """A finite int or float (not a bool): inf and NaN are never a valid setting."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_preset(name: str) -> dict[str, Any]:
    """The preset ``name``: its ``name``, ``protocol``, ``scale`` and ``train`` settings (a fresh copy)."""
    preset = presets.get(name)
    return {"name": name, "protocol": preset.protocol, "scale": preset.scale, "train": presets.train_settings(name)}


def default_preset(device: str) -> str:
    """``paper`` on CUDA, ``quick`` on CPU (the SRVP protocol)."""
    return presets.choose(None, None, device).name


def parse_sets(items: Iterable[str], metrics: str | None = None,
               samples: int | None = None) -> dict[str, dict[str, Any]]:
    """``["train.lr=1e-4", "model.hidden=64"]`` -> ``{"train": {"lr": 1e-4}, "model": {"hidden": 64}}``;
    ``metrics`` (``--metrics NAMES``) as ``metrics.names=NAMES``, ``samples`` (``--samples K``) as
    ``metrics.samples=K``."""
    out: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    if metrics is not None:
        out["metrics"]["names"] = metrics
    if samples is not None:
        out["metrics"]["samples"] = samples
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


def dataset_config(preset: Mapping[str, Any], name: str, sets: Mapping[str, Any],
                   data_dir: str | Path | None = None) -> dict[str, Any]:
    """The dataset section: the dataset's defaults for ``preset`` (from :func:`load_preset`), then ``--set``,
    then what the dataset reads from ``data_dir`` (arrays of your own: their lengths and shape)."""
    return dataset_entry(name).config(preset["name"], sets, data_dir)


def train_config(preset: Mapping[str, Any], model: str, dataset: str, sets: Mapping[str, Any],
                 epochs: int | None) -> dict[str, Any]:
    """The train section for ``model`` on ``dataset``."""
    recipe = registry.get_entry(model).recipe_for(preset["name"])
    config = {**preset["train"], **dataset_entry(dataset).train_for(preset["name"]),
              **({**recipe, "recipe": model} if recipe else presets.protocol_recipe(preset["name"]))}
    config.update(sets)
    if epochs is not None:
        config["epochs"] = epochs
    for key, value in config.items():
        if key not in TRAIN_KEYS:
            raise UserError(f"unknown training option train.{key}; known: {', '.join(TRAIN_KEYS)}")
        description, check = TRAIN_KEYS[key]
        if not check(value):
            if key == "loss":
                description = f"a registered loss ({', '.join(loss_names())})"
            raise UserError(f"invalid value train.{key}={value!r}: must be {description}")
    return config


def resolve(preset_name: str, model: str, dataset: str, *, seed: int = 0, epochs: int | None = None,
            sets: Mapping[str, Mapping[str, Any]] | None = None, data_dir: str | Path | None = None) -> dict[str, Any]:
    """The full configuration of one run (JSON/YAML-serialisable)."""
    sets = sets or {s: {} for s in SECTIONS}
    preset = load_preset(preset_name)
    entry = dataset_entry(dataset)
    data = dataset_config(preset, entry.name, sets.get("dataset", {}), data_dir)
    spec = entry.spec(data)
    model_kwargs = registry.model_kwargs(model, preset_name, spec.model_keys(), sets.get("model", {}))
    if "img_size" in model_kwargs:
        model_kwargs["img_size"] = list(model_kwargs["img_size"])
    return {
        "preset": preset_name,
        "seed": int(seed),
        "dataset": {"name": entry.name, **data},
        "model": {"name": model, **model_kwargs},
        "train": train_config(preset, model, entry.name, sets.get("train", {}), epochs),
        "metrics": metrics_config(sets.get("metrics", {})),  # what is measured: not what defines a run
        "logger": logger_config(sets.get("logger", {})),  # where progress is also shown: not what defines a run
    }


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, Mapping) else {f"{prefix}{k}": v})
    return out


def difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """How configuration ``b`` differs from ``a`` in what defines a run: ``key: a -> b, ...`` (3 at most)."""
    fa, fb = _flat({k: a.get(k) for k in RUN_KEYS}), _flat({k: b.get(k) for k in RUN_KEYS})
    keys = sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))
    return ", ".join(f"{k}: {fa.get(k)!r} -> {fb.get(k)!r}" for k in keys[:3]) + (" ..." if len(keys) > 3 else "")
