"""Channels-last convolution weights on a CPU, for the recipes that ask for them (``train.cpu_channels_last``)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from vpbench import config as cfg
from vpbench.errors import UserError
from vpbench.harness.steps import place

CPU = torch.device("cpu")


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(4, 2, 2, stride=2),
                         nn.Unflatten(2, (2, 4)), nn.Conv3d(2, 3, 3, padding=1), nn.Flatten(1), nn.Linear(192, 5))


def test_channels_last_weights_keep_their_values_and_the_outputs():
    plain, moved = small_net(), small_net()
    place(moved, CPU, {"cpu_channels_last": True})
    convs = [(m, f) for m in moved.modules()
             for t, f in ((nn.Conv2d, torch.channels_last), (nn.ConvTranspose2d, torch.channels_last),
                          (nn.Conv3d, torch.channels_last_3d)) if type(m) is t]
    assert len(convs) == 3
    for module, layout in convs:
        assert module.weight.is_contiguous(memory_format=layout) and not module.weight.is_contiguous()
    for a, b in zip(plain.state_dict().values(), moved.state_dict().values()):
        assert torch.equal(a, b)
    x = torch.rand(1, 2, 4, 4)
    torch.testing.assert_close(moved(x), plain(x), rtol=1e-5, atol=1e-6)


def test_weights_stay_contiguous_unless_the_recipe_asks():
    for train in ({}, {"cpu_channels_last": False}):
        net = place(small_net(), CPU, train)
        assert all(p.is_contiguous() for p in net.parameters())


def test_simvp_and_mmvp_recipes_ask_for_channels_last_and_the_recurrent_ones_do_not():
    assert cfg.resolve("quick", "simvp", "mmnist")["train"]["cpu_channels_last"] is True
    assert cfg.resolve("quick", "mmvp", "mmnist")["train"]["cpu_channels_last"] is True
    assert not cfg.resolve("quick", "convlstm", "mmnist")["train"].get("cpu_channels_last")


def test_a_value_that_is_not_a_boolean_is_refused():
    with pytest.raises(UserError, match="cpu_channels_last"):
        cfg.resolve("quick", "simvp", "mmnist", sets=cfg.parse_sets(["train.cpu_channels_last=sometimes"]))
