"""Presets: a training protocol at a scale, by name.

A protocol is how models are trained and scored: ``srvp`` (the SRVP paper's: BCE, RMSProp, cosine
annealing, batch 8) or ``openstl`` (OpenSTL's benchmark: MSE, Adam with a one-cycle schedule stepped
per batch, batch 16). Each comes at three scales: ``full`` (the protocol as published; a GPU job of
days), ``quick`` (a 2-core CPU, minutes) and ``tiny`` (seconds; tests and smoke checks only).

A preset is a (protocol, scale) pair with a name: the SRVP paper's are ``paper``, ``quick`` and
``tiny`` (their names since the first release), OpenSTL's ``openstl``, ``openstl-quick`` and
``openstl-tiny``. Its YAML file holds the run's ``train`` settings at that scale (epochs, batch, rate,
...) and the protocol's ``recipe`` (loss, optimiser, schedule); models and datasets declare their own
values per preset in their files (:func:`lookup`), and a model with a recipe of its own replaces the
protocol's (:func:`protocol_recipe` gives it to a model that extends it).

A foundation module: imports only :mod:`vpbench.errors`; models, datasets and everything above import it.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

import yaml

from vpbench.errors import UserError

PROTOCOLS = {
    "srvp": "the SRVP paper's: BCE, RMSProp, cosine annealing per epoch, batch 8, 150 epochs",
    "openstl": "OpenSTL's: MSE, Adam with a one-cycle schedule per batch, batch 16, 200 epochs",
}
SCALES = ("full", "quick", "tiny")
# (protocol, scale) -> preset name
NAMES = {
    ("srvp", "full"): "paper", ("srvp", "quick"): "quick", ("srvp", "tiny"): "tiny",
    ("openstl", "full"): "openstl", ("openstl", "quick"): "openstl-quick", ("openstl", "tiny"): "openstl-tiny",
}
DEFAULT_PROTOCOL = "srvp"
RECIPE_NAMES = {"srvp": "paper", "openstl": "openstl"}  # the name runs record for each protocol's recipe


@dataclass(frozen=True)
class Preset:
    name: str
    protocol: str
    scale: str

    @property
    def fallback(self) -> str | None:
        """The preset of the same scale under the SRVP protocol, whose values a model or dataset that
        declares none for this preset uses (``openstl-quick`` -> ``quick``); None for SRVP's own."""
        return None if self.protocol == DEFAULT_PROTOCOL else NAMES[(DEFAULT_PROTOCOL, self.scale)]


PRESETS = {name: Preset(name, protocol, scale) for (protocol, scale), name in NAMES.items()}


def get(name: str) -> Preset:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


def choose(preset: str | None, protocol: str | None, device_type: str) -> Preset:
    """The preset of ``--preset`` (a name, or a scale: ``full``, ``quick``, ``tiny``; ``paper`` is
    SRVP's full scale) under ``--protocol``; without ``--preset`` the full scale on CUDA, else quick."""
    if protocol is not None and protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}")
    if preset is None:
        return PRESETS[NAMES[(protocol or DEFAULT_PROTOCOL, "full" if device_type == "cuda" else "quick")]]
    scale = "full" if preset == "paper" else preset
    if scale in SCALES:
        return PRESETS[NAMES[(protocol or DEFAULT_PROTOCOL, scale)]]
    found = get(preset)
    if protocol is not None and found.protocol != protocol:
        raise UserError(f"preset {preset!r} belongs to protocol {found.protocol!r}, not {protocol!r}; "
                         f"give a scale ({', '.join(SCALES)}) with --protocol {protocol}")
    return found


def announce(chosen: Preset, given: bool, device_type: str) -> str:
    """The line that says which preset a command runs: the one named, or the default on this device."""
    if given:
        return f"preset: {chosen.name}"
    other = "quick" if chosen.scale == "full" else NAMES[(chosen.protocol, "full")]
    return f"preset: {chosen.name} (default on {device_type.upper()}; --preset {other} to change)"


def by_protocol(srvp: Any, openstl: Any) -> dict[str, Any]:
    """A per-preset mapping with one value for every preset of each protocol."""
    return {name: srvp if protocol == "srvp" else openstl for (protocol, _), name in NAMES.items()}


def lookup(values: Mapping[str, Any], preset: str) -> Any:
    """The value declared for ``preset`` in a per-preset mapping, else for its SRVP fallback; None
    when neither is declared."""
    found = get(preset)
    if preset in values:
        return values[preset]
    return values.get(found.fallback) if found.fallback else None


@lru_cache(maxsize=None)
def _load(name: str) -> dict[str, Any]:
    text = resources.files("vpbench.presets").joinpath(f"{get(name).name}.yaml").read_text()
    return yaml.safe_load(text)


def train_settings(name: str) -> dict[str, Any]:
    """The preset's ``train`` section: epochs, batch sizes, rate, workers, samples (a fresh copy)."""
    return copy.deepcopy(_load(name)["train"])


def protocol_recipe(name: str) -> dict[str, Any]:
    """The recipe of the preset's protocol at its scale: ``recipe`` (its name), loss, optimiser, schedule."""
    return {"recipe": RECIPE_NAMES[get(name).protocol], **copy.deepcopy(_load(name)["recipe"])}
