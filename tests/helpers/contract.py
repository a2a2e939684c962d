"""The suite's one contract, checked on a resolved configuration: a model of a preset and dataset maps
[1, T_in, C, H, W] inputs to [1, T_out, C, H, W] predictions in [0, 1]."""
from __future__ import annotations

import torch

from vpbench import config as cfg
from vpbench.models import build_model


def assert_contract(model_name: str, preset: str, dataset: str) -> None:
    torch.manual_seed(0)
    config = cfg.resolve(preset, model_name, dataset)
    model = build_model(config).eval()
    t_in, t_out = config["dataset"]["input_frames"], config["dataset"]["output_frames"]
    shape = (config["model"]["in_channels"], *config["model"]["img_size"])
    with torch.no_grad():
        out = model(torch.rand(1, t_in, *shape), t_out)
    assert out.shape == (1, t_out, *shape)
    assert out.min() >= 0 and out.max() <= 1
