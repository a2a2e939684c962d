"""Golden file of Earthformer as its authors build it.

Writes ``tests/golden/earthformer.pt`` (read by ``tests/parity/test_parity_earthformer.py``) from a clone of
github.com/amazon-science/earth-forecasting-transformer (``--earthformer``): ``src/earthformer/cuboid_transformer/
cuboid_transformer.py`` imported as a package module by :mod:`vpbench.reference.earthformer` (which stands in its
unused einops import where einops is missing). The model's arguments are read from the authors' configuration files
(``scripts/cuboid_transformer/moving_mnist/cfg.yaml``, ``sevir/cfg_sevir.yaml``) as their training scripts read
them (one self/cross pattern name per level), then shrunk (:data:`TINY`): 4 input and 3 output frames, no
dropout; the Moving MNIST network with base_units 16 (its stem's GroupNorms have 16 groups), depths 2, 2 on
8 x 8 frames; the SEVIR network (two-stage stack stem, t+h+w positions, global vectors with their own attention)
with base_units 8, depths 1, 1, 2 global vectors, stem widths 4, 8 and scales 3, 2 on 12 x 12 frames.

For each (``mmnist``, ``sevir``), in float64: weights drawn from ``weight_seed`` by the parameters' shapes
(``helpers.parity.seeded_weights``: the file holds the shapes only), inputs and targets drawn from ``data_seed``,
``output`` (the raw output [B, T_out, H, W, C], no activation), ``loss`` (its MSE to the targets) and the
``sketch`` of every parameter's gradient; ``unreached``: the parameters the loss does not reach (SEVIR's: the last
encoder attention's update of the global vectors, which the decoder never reads). ``flops``: fvcore's count of the forward (batch 1, ones) at the tiny
Moving MNIST network; ``full``: the parameters at the authors' Moving MNIST, N-body MNIST and SEVIR
configurations.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
from golden_files import ROOT, default_dtype
from mmvp_dmvfn_predformer import fvcore_flops, save_compact
from torch import nn

sys.path.insert(0, str(ROOT / "tests"))
from helpers.parity import seeded_weights, sketch  # noqa: E402  the test draws and sketches the same way

from vpbench.reference.clones import commit_of, restored_modules  # noqa: E402
from vpbench.reference.earthformer import CONFIG_FILES, config_file_kwargs, model_class  # noqa: E402

SOURCES = ("earthformer",)
REPOSITORY = "github.com/amazon-science/earth-forecasting-transformer"
WEIGHT_SEED, DATA_SEED, SKETCH_SEED = 20261207, 20261208, 20261209
NO_DROPOUT = {"attn_drop": 0.0, "proj_drop": 0.0, "ffn_drop": 0.0}
TINY = {
    "mmnist": {"input_shape": [4, 8, 8, 1], "target_shape": [3, 8, 8, 1], "base_units": 16, "num_heads": 2,
               "enc_depth": [2, 2], "dec_depth": [2, 2], **NO_DROPOUT},
    "sevir": {"input_shape": [4, 12, 12, 1], "target_shape": [3, 12, 12, 1], "base_units": 8, "num_heads": 2,
              "enc_depth": [1, 1], "dec_depth": [1, 1], "num_global_vectors": 2,
              "initial_downsample_stack_conv_num_layers": 2, "initial_downsample_stack_conv_dim_list": [4, 8],
              "initial_downsample_stack_conv_downscale_list": [3, 2],
              "initial_downsample_stack_conv_num_conv_list": [1, 1], **NO_DROPOUT},
}
# The same networks as vpbench's options (the test builds them).
VPBENCH = {
    "mmnist": {"config": "mmnist", "in_channels": 1, "input_frames": 4, "output_frames": 3, "img_size": (8, 8),
               "base_units": 16, "heads": 2, "depth": (2, 2), "drop": 0.0, "stem_dims": (16,)},
    "sevir": {"config": "sevir", "in_channels": 1, "input_frames": 4, "output_frames": 3, "img_size": (12, 12),
              "base_units": 8, "heads": 2, "depth": (1, 1), "drop": 0.0, "global_vectors": 2, "stem_dims": (4, 8),
              "stem_scales": (3, 2), "stem_convs": (1, 1), "head_convs": (1, 1)},
}
def sequences(shape_in, shape_out, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs [2, T_in, C, H, W] and targets [2, T_out, C, H, W] (vpbench's layout), float64, from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    (t, h, w, c), (t_out, *_) = shape_in, shape_out
    return (torch.rand(2, t, c, h, w, generator=generator, dtype=torch.float64),
            torch.rand(2, t_out, c, h, w, generator=generator, dtype=torch.float64))


def run(cuboid_transformer: type, clone: Path, config: str) -> dict:
    """One network's golden entry (see the module docstring)."""
    kwargs = config_file_kwargs(clone, config, **TINY[config])
    torch.manual_seed(WEIGHT_SEED)
    model = cuboid_transformer(**kwargs)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    with torch.no_grad():
        for name, value in seeded_weights(shapes, WEIGHT_SEED).items():
            model.get_parameter(name).copy_(value)
    inputs, targets = sequences(kwargs["input_shape"], kwargs["target_shape"], DATA_SEED)
    output = model.train()(inputs.permute(0, 1, 3, 4, 2))  # the authors' layout: NTHWC
    loss = nn.functional.mse_loss(output, targets.permute(0, 1, 3, 4, 2))
    loss.backward()
    grads = {n: torch.zeros_like(p) if p.grad is None else p.grad for n, p in model.named_parameters()}
    return {"unreached": sorted(n for n, g in grads.items() if not g.any()), "parameter_shapes": shapes, "output": output.detach(), "loss": loss.detach(),
            "grad_sketch": sketch(grads, SKETCH_SEED), "vpbench": VPBENCH[config],
            "reference": {k: kwargs[k] for k in TINY[config]}}


def make_earthformer(clone: Path, out: Path) -> Path:
    with restored_modules("earthformer"):
        cuboid_transformer = model_class(clone)
        networks = {config: run(cuboid_transformer, clone, config) for config in TINY}
        tiny = cuboid_transformer(**config_file_kwargs(clone, "mmnist", **TINY["mmnist"])).eval()
        flops = fvcore_flops(tiny, torch.ones(1, *TINY["mmnist"]["input_shape"]))
        full = {}
        with default_dtype(torch.float32), torch.device("meta"):
            for config in CONFIG_FILES:
                kwargs = config_file_kwargs(clone, config)
                full[config] = {"params": sum(p.numel() for p in cuboid_transformer(**kwargs).parameters()),
                                "input_shape": kwargs["input_shape"], "target_shape": kwargs["target_shape"]}
    return save_compact(
        out / "earthformer.pt",
        reference={"repository": REPOSITORY, "commit": commit_of(clone),
                   "file": "src/earthformer/cuboid_transformer/cuboid_transformer.py (CuboidTransformerModel)"},
        networks=networks, weight_seed=WEIGHT_SEED, data_seed=DATA_SEED, sketch_seed=SKETCH_SEED, flops=flops,
        full=full, notes="output: raw [B, T_out, H, W, C], training mode without dropout; loss: its MSE; "
                         "grad_sketch: helpers.parity.sketch of each gradient; flops: the tiny mmnist forward, batch 1")


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    with default_dtype(torch.float64):
        return [make_earthformer(clones["earthformer"], out)]
