"""Earthformer: the cuboid decomposition, what each attention lets a position read, the authors' schedule,
recipes and options. Its contract and horizons are tested with the other RNN-free models
(tests/models/test_simvp_mimovp.py), its fidelity to the authors' code in tests/parity/test_parity_earthformer.py."""
from __future__ import annotations

import math

import pytest
import torch

from vpbench import config as cfg
from vpbench.errors import UserError
from vpbench.harness.recipes import Schedule, warmup_cosine
from vpbench.models import create, get_entry
from vpbench.models.layers.cuboid_attention import CuboidCrossAttention, CuboidSelfAttention, from_cuboids, to_cuboids

pytestmark = pytest.mark.usefixtures("one_thread")


def grid(t: int = 2, h: int = 4, w: int = 6, c: int = 1) -> torch.Tensor:
    """[1, T, H, W, C] whose value is its flat index."""
    return torch.arange(t * h * w * c, dtype=torch.float64).reshape(1, t, h, w, c)


def test_local_cuboids_hold_neighbours_and_dilated_ones_positions_spread_across_the_side():
    x = grid()
    local = to_cuboids(x, (1, 2, 3), ("l", "l", "l"))
    assert local.shape == (1, 2 * 2 * 2, 6, 1)
    assert local[0, 0, :, 0].tolist() == [0, 1, 2, 6, 7, 8]  # rows 0-1, columns 0-2 of frame 0
    assert local[0, 1, :, 0].tolist() == [3, 4, 5, 9, 10, 11]  # the next cuboid along the width
    dilated = to_cuboids(x, (1, 2, 3), ("l", "d", "d"))
    assert dilated[0, 0, :, 0].tolist() == [0, 2, 4, 12, 14, 16]  # rows 0 and 2, columns 0, 2, 4
    for strategy in (("l", "l", "l"), ("l", "d", "d"), ("d", "l", "d")):
        assert torch.equal(from_cuboids(to_cuboids(x, (2, 2, 3), strategy), (2, 2, 3), strategy, (2, 4, 6)), x)


def influence(layer, x: torch.Tensor, at: tuple[int, int, int], *extra) -> torch.Tensor:
    """Where the layer's output changes [T, H, W] when x changes at ``at``."""
    y = x.clone()
    y[(0, *at)] += torch.linspace(-1, 1, x.shape[-1], dtype=x.dtype)  # not a constant: the norm would remove it
    out = layer(x, *extra)
    changed = layer(y, *extra)
    out, changed = (out[0], changed[0]) if isinstance(out, tuple) else (out, changed)
    return (changed - out).abs().sum(-1)[0] > 1e-12


def test_axial_cuboids_read_along_one_axis_each():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 4, 5, 8, dtype=torch.float64)
    for size, line in (((3, 1, 1), (slice(None), 2, 3)), ((1, 4, 1), (1, slice(None), 3)),
                       ((1, 1, 5), (1, 2, slice(None)))):
        layer = CuboidSelfAttention(8, 2, size, ("l", "l", "l"), (3, 4, 5)).double()
        expected = torch.zeros(3, 4, 5, dtype=torch.bool)
        expected[line] = True
        assert torch.equal(influence(layer, x, (1, 2, 3)), expected), size


def test_global_vectors_read_every_position_and_every_position_reads_them():
    torch.manual_seed(0)
    layer = CuboidSelfAttention(8, 2, (3, 1, 1), ("l", "l", "l"), (3, 4, 5), global_vectors=True,
                                global_self_attention=True).double()
    x, g = torch.randn(1, 3, 4, 5, 8, dtype=torch.float64), torch.randn(1, 2, 8, dtype=torch.float64)
    y = x.clone()
    y[0, 2, 3, 4] += torch.linspace(-1, 1, 8, dtype=torch.float64)
    assert (layer(y, g)[1] - layer(x, g)[1]).abs().min() > 0  # every global vector sees the far corner
    moved = layer(x, g + torch.linspace(-1, 1, 8, dtype=torch.float64))[0] - layer(x, g)[0]
    assert (moved.abs().sum(-1) > 0).all()  # and every position reads the global vectors


def test_one_by_one_cross_attention_reads_the_memory_of_its_own_cell_only():
    torch.manual_seed(0)
    layer = CuboidCrossAttention(8, 2, (1, 1), 1, ("l", "l", "l"), 2, 3, 5).double()
    x, memory = torch.randn(1, 2, 4, 5, 8, dtype=torch.float64), torch.randn(1, 3, 4, 5, 8, dtype=torch.float64)
    changed = memory.clone()
    changed[0, 1, 2, 3] += torch.linspace(-1, 1, 8, dtype=torch.float64)
    where = (layer(x, changed) - layer(x, memory)).abs().sum(-1)[0] > 1e-12
    expected = torch.zeros(2, 4, 5, dtype=torch.bool)
    expected[:, 2, 3] = True
    assert torch.equal(where, expected)


def test_warmup_cosine_rises_linearly_then_falls_to_its_floor():
    factor = warmup_cosine(100, 0.2, 1e-3)
    assert [factor(s) for s in (0, 10, 20)] == [0.0, 0.5, 1.0]
    assert factor(60) == pytest.approx(1e-3 + (1 - 1e-3) / 2)
    assert factor(100) == pytest.approx(1e-3) and factor(150) == pytest.approx(1e-3)
    assert warmup_cosine(10, 0.0, 0.0)(0) == 1.0


def test_warmup_cosine_steps_after_every_batch_from_the_recipe():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    schedule = Schedule(optimizer, {"scheduler": "warmup_cosine", "epochs": 2, "lr": 1e-3, "warmup_fraction": 0.25,
                                    "eta_min": 1e-6}, steps_per_epoch=4)
    rates = [optimizer.param_groups[0]["lr"]]
    for _ in range(8):
        optimizer.step()
        schedule.after_batch()
        rates.append(optimizer.param_groups[0]["lr"])
    schedule.after_epoch()  # per batch only: the epoch leaves it
    assert rates[:3] == pytest.approx([0.0, 5e-4, 1e-3])
    assert rates[-1] == pytest.approx(1e-6) and optimizer.param_groups[0]["lr"] == pytest.approx(1e-6)


def test_recipe_is_the_authors_under_both_protocols():
    entry = get_entry("earthformer")
    assert (entry.label, entry.tags) == ("Earthformer", {"rnn-free"})
    for preset, lr in (("paper", 1e-3), ("openstl", 1e-3), ("quick", 3e-3), ("openstl-tiny", 3e-3)):
        train = cfg.resolve(preset, "earthformer", "mmnist")["train"]
        assert (train["loss"], train["optimizer"], train["scheduler"], train["lr"]) == ("mse", "adamw", "warmup_cosine", lr)
        assert (train["weight_decay"], train["warmup_fraction"], train["grad_clip"]) == (1e-5, 0.2, 1.0)
        assert train["eta_min"] == pytest.approx(1e-3 * lr)
    assert cfg.resolve("paper", "earthformer", "mmnist")["train"]["batch_size"] == 32
    # the quick scale trains 4 epochs (after the preset's 3 its predictions were near-uniform)
    assert cfg.resolve("quick", "earthformer", "mmnist")["train"]["epochs"] == 4
    assert cfg.resolve("quick", "predrnnv2", "mmnist")["train"]["epochs"] == 3


def test_configurations_are_selectable_and_options_override_them():
    with torch.device("meta"):
        mmnist = create("earthformer", preset="paper")
        sevir = create("earthformer", preset="paper", config="sevir", input_frames=13, output_frames=12,
                       img_size=(384, 384))
        small = create("earthformer", preset="paper", config="sevir", base_units=32, stem_dims=(8, 16, 32),
                       input_frames=13, output_frames=12, img_size=(384, 384))
    assert (len(mmnist.stem), mmnist.global_vectors) == (1, None)
    assert (len(sevir.stem), tuple(sevir.global_vectors.shape)) == (3, (8, 128))
    assert small.readout.in_features == 8 and sum(p.numel() for p in small.parameters()) < 1e6
    assert [len(level) for level in mmnist.encoder] == [4, 4]
    assert [len(level) for level in mmnist.decoder_self] == [4, 3]  # the top level starts with a cross-attention


def test_queries_do_not_depend_on_the_input():
    torch.manual_seed(0)
    model = create("earthformer", preset="tiny", in_channels=1, input_frames=3, output_frames=2, img_size=(8, 8)).eval()
    memory = model.encode(torch.zeros(1, 3, 4, 4, 8))
    seen = []
    model.decoder_cross[1][0].register_forward_hook(lambda module, args, out: seen.append(args[0]))
    model.decode(memory)
    model.decode([m + 1 for m in memory])
    assert torch.equal(seen[0], seen[1])


@pytest.mark.parametrize("kwargs, message", [
    ({"config": "enso"}, "no configuration 'enso'"),
    ({"stem_dims": (4, 8)}, "one entry per stem stage"),
    ({"base_units": 12, "heads": 5}, "divide by heads"),
    ({"position": "t+h"}, "position"),
])
def test_bad_options_are_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        create("earthformer", preset="tiny", **kwargs)


def test_frames_of_another_count_or_size_are_user_errors():
    model = create("earthformer", preset="tiny", in_channels=1, input_frames=3, img_size=(8, 8))
    with pytest.raises(UserError, match="built for 3 frames of 8 x 8"):
        model(torch.rand(1, 4, 1, 8, 8), 2)
    with pytest.raises(UserError, match="built for 3 frames of 8 x 8"):
        model(torch.rand(1, 3, 1, 16, 8), 2)
    assert math.isfinite(model(torch.rand(1, 3, 1, 8, 8), 2).sum().item())
