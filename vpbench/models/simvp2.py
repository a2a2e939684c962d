"""SimVP v2 in OpenSTL's form (``openstl/models/simvp_model.py``, the frame of
:mod:`vpbench.models.layers.simvp_frame`) with any of OpenSTL's translators; its presets, recipes and published
values, which TAU (:mod:`vpbench.models.tau`) shares.

* SimVP v2 (Tan et al., "SimVP: Towards Simple yet Powerful Spatiotemporal Predictive Learning", 2022):
  a per-frame CNN encoder, a translator over the frames' features stacked as channels, a CNN decoder;
  T frames in, the next T out, at once. Its translator is the gated spatiotemporal attention (gSTA).
* The MetaVP study (Tan et al., "OpenSTL", NeurIPS 2023 Datasets and Benchmarks) puts MetaFormer blocks
  in its place (``translator``: convmixer, convnext, hornet, mlp, moga, poolformer, swin, uniformer, van,
  vit; see :mod:`vpbench.models.layers.metaformer_blocks`), or SimVP v1's Inception U-Net (``incepu``, the
  translator of :mod:`vpbench.models.simvp`).

Registered: ``simvp2`` (translator gsta). Each of OpenSTL's
translators trains under ``--set model.translator=NAME``; OpenSTL's Moving MNIST rate for it is
:data:`OPENSTL_LR` (the recipe carries gSTA's and TAU's 1e-3: add ``--set train.lr=...`` for the others),
and its published values are :data:`TRANSLATOR_REFERENCES`.
"""
from __future__ import annotations

from typing import Any

from vpbench import presets
from vpbench.models.layers.simvp_frame import SimVPv2
from vpbench.models.registry import register_model

# -- presets, recipes, published values ---------------------------------------------------------------------------

# OpenSTL's Moving MNIST peak rates per translator (configs/mmnist/simvp/SimVP_*.py, TAU.py).
OPENSTL_LR: dict[str, float] = {"incepu": 1e-3, "gsta": 1e-3, "tau": 1e-3, "convmixer": 1e-2, "convnext": 1e-2,
                                "hornet": 1e-3, "mlp": 1e-3, "moga": 1e-3, "poolformer": 1e-3, "swin": 1e-3,
                                "uniformer": 5e-4, "van": 1e-3, "vit": 5e-4}
# OpenSTL's Moving MNIST configuration (configs/mmnist/simvp/SimVP_gSTA.py and the others; mlp_ratio 8 and
# drop 0 are SimVP_Model's defaults).
FULL = {"spatial_hidden": 64, "temporal_hidden": 512, "spatial_layers": 4, "temporal_layers": 8, "encoder_kernel": 3,
        "decoder_kernel": 3, "mlp_ratio": 8.0, "drop": 0.0, "drop_path": 0.0}
# Small enough to train 100 steps on a 2-core CPU in a minute or two: 8 x T channels (every translator's
# widths divide by its 8 heads or groups), 4 blocks.
QUICK = {"spatial_hidden": 8, "temporal_hidden": 32, "spatial_layers": 4, "temporal_layers": 4, "mlp_ratio": 4.0}
TINY = {"spatial_hidden": 4, "temporal_hidden": 16, "spatial_layers": 2, "temporal_layers": 2, "mlp_ratio": 2.0,
        "kernels": [3, 5], "groups": 4}  # the kernels and groups of incepu
QUICK_LR = 5e-3  # a short one-cycle run learns more at 5e-3 than at OpenSTL's 1e-3


def simvp2_presets(translator: str) -> dict[str, dict[str, Any]]:
    """Hyperparameters per preset: OpenSTL's Moving MNIST configuration at full scale under both protocols
    (the SRVP protocol has no other for SimVP v2)."""
    scales = {"paper": FULL, "quick": QUICK, "tiny": TINY,
              "openstl": FULL, "openstl-quick": QUICK, "openstl-tiny": TINY}
    return {preset: {"translator": translator, **options} for preset, options in scales.items()}


def simvp2_recipe(loss: str, lr: float) -> dict[str, dict[str, Any]]:
    """OpenSTL's training (the authors' own: MSE of the raw output, ``mse_raw``, or TAU's loss; Adam without weight
    decay, one-cycle schedule per batch peaking at ``lr``, batch 16) under both protocols; the smaller scales peak at
    :data:`QUICK_LR` with their own batch sizes. The recipe golden ``tests/golden/recipe_simvp.pt`` holds it against
    OpenSTL's SimVP method."""
    own = {"loss": loss, "optimizer": "adam", "weight_decay": 0.0, "scheduler": "onecycle"}
    recipes = {"paper": {**own, "lr": lr, "batch_size": 16}, "quick": {**own, "lr": QUICK_LR},
               "tiny": {**own, "lr": QUICK_LR}}
    for name, rate in (("openstl", lr), ("openstl-quick", QUICK_LR), ("openstl-tiny", QUICK_LR)):
        recipes[name] = {**presets.protocol_recipe(name), "loss": loss, "lr": rate}
    return recipes


def _row(params: float, flops: float, fps: float, mse: float, mae: float, ssim: float, psnr: float) -> dict:
    return {"mse": mse, "mae": mae, "ssim": ssim, "psnr": psnr, "params": params, "flops": flops, "fps": fps}


# OpenSTL's MetaVP table on Moving MNIST (docs/en/model_zoos/video_benchmarks.md:109-136; MSE and MAE per frame
# summed over pixels on [0, 1]): each translator in OpenSTL's SimVP frame after 200 and 2,000 epochs. The rows of
# simvp2 (gSTA), tau and simvp (IncepU) are their registered references; the others wait for a report that
# runs `simvp2` with `--set model.translator=NAME`.
TRANSLATOR_REFERENCES: dict[str, dict[str, dict[str, float]]] = {
    translator: {"openstl-mmnist-200": _row(*size, *epochs200), "openstl-mmnist-2000": _row(*size, *epochs2000)}
    for translator, size, epochs200, epochs2000 in (
        ("incepu", (58.0e6, 19.4e9, 209), (32.15, 89.05, 0.9268, 21.84), (21.15, 64.15, 0.9536, 23.99)),
        ("gsta", (46.8e6, 16.5e9, 282), (26.69, 77.19, 0.9402, 22.78), (15.05, 49.80, 0.9675, 25.97)),
        ("vit", (46.1e6, 16.9e9, 290), (35.15, 95.87, 0.9139, 21.67), (19.74, 61.65, 0.9539, 24.59)),
        ("swin", (46.1e6, 16.4e9, 294), (29.70, 84.05, 0.9331, 22.22), (19.11, 59.84, 0.9584, 24.53)),
        ("uniformer", (44.8e6, 16.5e9, 296), (30.38, 85.87, 0.9308, 22.13), (18.01, 57.52, 0.9609, 24.92)),
        ("mlp", (38.2e6, 14.7e9, 334), (29.52, 83.36, 0.9338, 22.22), (18.85, 59.86, 0.9589, 24.58)),
        ("convmixer", (3.9e6, 5.5e9, 658), (32.09, 88.93, 0.9259, 21.93), (22.30, 67.37, 0.9507, 23.73)),
        ("poolformer", (37.1e6, 14.1e9, 341), (31.79, 88.48, 0.9271, 22.03), (20.96, 64.31, 0.9539, 24.15)),
        ("convnext", (37.3e6, 14.1e9, 344), (26.94, 77.23, 0.9397, 22.74), (17.58, 55.76, 0.9617, 25.06)),
        ("van", (44.5e6, 16.0e9, 288), (26.10, 76.11, 0.9417, 22.89), (16.21, 53.57, 0.9646, 25.49)),
        ("hornet", (45.7e6, 16.3e9, 287), (29.64, 83.26, 0.9331, 22.26), (17.40, 55.70, 0.9624, 25.14)),
        ("moga", (46.8e6, 16.5e9, 255), (25.57, 75.19, 0.9429, 22.99), (15.67, 51.84, 0.9661, 25.70)),
        ("tau", (44.7e6, 16.0e9, 283), (24.60, 71.93, 0.9454, 23.19), (15.69, 51.46, 0.9661, 25.71)),
    )
}

register_model("simvp2", label="SimVP v2", labels={"openstl": "SimVP+gSTA"}, tags=("openstl", "rnn-free"), rank=210,
               defaults=simvp2_presets("gsta"), recipe=simvp2_recipe("mse_raw", OPENSTL_LR["gsta"]),
               references=TRANSLATOR_REFERENCES["gsta"])(SimVPv2)
