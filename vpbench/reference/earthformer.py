"""The authors' Earthformer (github.com/amazon-science/earth-forecasting-transformer), read from a user's clone:
its ``CuboidTransformerModel`` class and its arguments as the authors' training scripts build them from their
configuration files, optionally at vpbench's sizes. Used by ``bench speed --parts openstl --earthformer PATH``
(:mod:`vpbench.reference.openstl`'s pair) and by the golden generator ``tools/golden/earthformer.py``.

vpbench never ships or fetches the code. Its one import that vpbench's environment may lack, einops (unused by the
model), is stood in where it is not installed.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Mapping

import yaml
from torch import nn

from vpbench.datasets.base import DataSpec
from vpbench.errors import UserError
from vpbench.reference.clones import package, stand_in

CONFIG_FILES = {"mmnist": "moving_mnist/cfg.yaml", "nbody": "nbody/cfg.yaml", "sevir": "sevir/cfg_sevir.yaml"}
# The training scripts' pattern keys and the model arguments they become (one name per level).
PATTERN_KEYS = {"self_pattern": "enc_attn_patterns", "cross_self_pattern": "dec_self_attn_patterns",
                "cross_pattern": "dec_cross_attn_patterns"}
MODULE = "earthformer.cuboid_transformer.cuboid_transformer"


def model_class(clone: str | Path) -> type[nn.Module]:
    """``CuboidTransformerModel`` from the clone (its package imported without running its ``__init__.py``)."""
    source = Path(clone).expanduser() / "src" / "earthformer"
    if not (source / "cuboid_transformer" / "cuboid_transformer.py").is_file():
        raise UserError(f"--earthformer {clone}: no src/earthformer/cuboid_transformer/cuboid_transformer.py there; "
                        "give the folder of a clone of github.com/amazon-science/earth-forecasting-transformer")
    stand_in("einops")
    package("earthformer", source)
    return importlib.import_module(MODULE).CuboidTransformerModel


def config_file_kwargs(clone: str | Path, config: str, **overrides: Any) -> dict[str, Any]:
    """``CuboidTransformerModel``'s arguments from the authors' configuration file of ``config`` (``mmnist``,
    ``nbody``, ``sevir``), updated by ``overrides``, as their training scripts read the file."""
    path = Path(clone).expanduser() / "scripts" / "cuboid_transformer" / CONFIG_FILES[config]
    model = {**yaml.safe_load(path.read_text())["model"], **overrides}
    levels = len(model["enc_depth"])
    for key, argument in PATTERN_KEYS.items():
        value = model.pop(key)
        model[argument] = [value] * levels if isinstance(value, str) else value
    return model


def vpbench_kwargs(clone: str | Path, options: Mapping[str, Any], spec: DataSpec) -> dict[str, Any]:
    """The arguments of the authors' model equal to vpbench's ``earthformer`` built with ``options`` (its factory's
    arguments) on ``spec``'s frames; a UserError where their code cannot express the options."""
    config = options["config"]
    base = options.get("base_units") or config_file_kwargs(clone, config)["base_units"]
    given = {k: v for k, v in options.items() if v is not None}
    shape = {"input_shape": [spec.input_frames, spec.height, spec.width, spec.channels],
             "target_shape": [spec.output_frames, spec.height, spec.width, spec.channels]}
    overrides: dict[str, Any] = {**shape, "base_units": base}
    for ours, theirs in (("depth", ("enc_depth", "dec_depth")), ("heads", ("num_heads",)),
                         ("drop", ("attn_drop", "proj_drop", "ffn_drop")), ("position", ("pos_embed_type",)),
                         ("global_vectors", ("num_global_vectors",))):
        if ours in given:
            overrides.update({key: list(given[ours]) if ours == "depth" else given[ours] for key in theirs})
    if "cross_window" in given:
        overrides["cross_pattern"] = f"cross_{given['cross_window']}x{given['cross_window']}"
    kwargs = config_file_kwargs(clone, config, **overrides)
    stem = {k: given[k] for k in ("stem_dims", "stem_scales", "stem_convs", "head_convs") if k in given}
    if kwargs["initial_downsample_type"] == "conv":
        one_stage = all(len(stem.get(k, [0])) == 1 for k in ("stem_scales", "stem_convs", "head_convs"))
        if not one_stage or tuple(stem.get("stem_dims", [base])) != (base,) or options.get("norm_groups") not in (-1, 16):
            raise UserError("the authors' one-stage stem (Moving MNIST, N-body MNIST) is base_units wide with 16 "
                            f"GroupNorm groups; vpbench's options {stem} and norm_groups {options.get('norm_groups')} "
                            "have no counterpart there")
        kwargs.update({"initial_downsample_scale": stem.get("stem_scales", [kwargs["initial_downsample_scale"]])[0],
                       "initial_downsample_conv_layers": stem.get("stem_convs", [kwargs["initial_downsample_conv_layers"]])[0],
                       "final_upsample_conv_layers": stem.get("head_convs", [kwargs["final_upsample_conv_layers"]])[0]})
    else:
        dims = list(stem.get("stem_dims", kwargs["initial_downsample_stack_conv_dim_list"]))
        convs = list(stem.get("stem_convs", kwargs["initial_downsample_stack_conv_num_conv_list"]))
        if list(stem.get("head_convs", convs[::-1])) != convs[::-1] or options.get("norm_groups") not in (-1, None):
            raise UserError("the authors' stack stem (SEVIR) has head convs equal to the stem's in reverse and "
                            "GroupNorms of width / 4 groups; vpbench's head_convs and norm_groups differ")
        kwargs.update({"initial_downsample_stack_conv_num_layers": len(dims),
                       "initial_downsample_stack_conv_dim_list": dims,
                       "initial_downsample_stack_conv_downscale_list":
                           list(stem.get("stem_scales", kwargs["initial_downsample_stack_conv_downscale_list"])),
                       "initial_downsample_stack_conv_num_conv_list": convs})
    return kwargs


def authors_model(clone: str | Path, options: Mapping[str, Any], spec: DataSpec) -> nn.Module:
    """The authors' model equal to vpbench's ``earthformer`` built with ``options`` on ``spec``'s frames."""
    return model_class(clone)(**vpbench_kwargs(clone, options, spec))
