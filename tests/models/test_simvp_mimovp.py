"""The RNN-free reference models SimVP and MIMO-VP: shapes, chunked rollout, recipes, fidelity to the official code."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from vpbench import config as cfg
from vpbench.datasets import DataSpec
from vpbench.errors import UserError
from vpbench.harness.recipes import make_optimizer
from vpbench.losses import get_loss
from vpbench.metrics.cost import count_flops, count_params
from vpbench.models import build_model, create, expand, get_entry, model_names
from vpbench.models.layers.multiframe import chunked_rollout, pad_to_multiple

RNN_FREE = [name for name in model_names() if "rnn-free" in get_entry(name).tags]


def moving_square(batch: int = 2, frames: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """A bright 4x4 square moving diagonally: (first half, second half) of [B, frames, 1, 16, 16]."""
    x = torch.zeros(batch, frames, 1, 16, 16)
    for b in range(batch):
        for t in range(frames):
            x[b, t, 0, 2 + t + 2 * b : 6 + t + 2 * b, 1 + t : 5 + t] = 1
    return x[:, : frames // 2], x[:, frames // 2 :]


def test_paper_models_are_in_the_row_order_of_the_papers_tables():
    assert expand("paper") == ["convlstm", "stlstm", "causallstm", "mim", "convgru", "mimovp", "simvp", "srvp"]
    assert expand("all") == [*expand("paper"), "persistence"]


@pytest.mark.parametrize("name", RNN_FREE)
@pytest.mark.parametrize("dataset, t_in, t_out, shape", [
    ("mmnist", 10, 10, (1, 64, 64)),
    ("mmnist-long", 10, 30, (1, 64, 64)),
    ("human36m", 4, 4, (3, 100, 100)),  # tiny MIMO-VP (patch 4) pads 100 to 104 and crops back
])
def test_predictions_have_the_contract_shape_and_range(name, dataset, t_in, t_out, shape):
    torch.manual_seed(0)
    model = build_model(cfg.resolve("tiny", name, dataset)).eval()
    with torch.no_grad():
        out = model(torch.rand(2, t_in, *shape), t_out)
    assert out.shape == (2, t_out, *shape)
    assert out.min() >= 0 and out.max() <= 1


def test_chunked_rollout_feeds_each_chunk_the_last_prediction_and_cuts_the_last_chunk():
    frames = torch.zeros(1, 3, 1, 2, 2)

    def block(x):  # two "layers": the last one (x + 1) is the prediction
        return torch.stack([x + 10, x + 1])

    out = chunked_rollout(block, frames, 7)
    assert out.shape == (2, 1, 7, 1, 2, 2)
    assert out[1, 0, :, 0, 0, 0].tolist() == [1, 1, 1, 2, 2, 2, 3]
    assert out[0, 0, :, 0, 0, 0].tolist() == [10, 10, 10, 11, 11, 11, 12]
    assert chunked_rollout(lambda x: x + 1, frames, 2)[0, :, 0, 0, 0].tolist() == [1, 1]
    with pytest.raises(UserError, match="horizon must be at least 1"):
        chunked_rollout(block, frames, 0)


def test_padding_reaches_the_multiple_by_repeating_the_border():
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    padded = pad_to_multiple(x, 4)
    assert padded.shape == (1, 1, 4, 4)
    assert torch.equal(padded[..., :2, :3], x)
    assert padded[0, 0, 3].tolist() == [3, 4, 5, 5]
    assert pad_to_multiple(x, 1) is x


@pytest.mark.parametrize("name", RNN_FREE)
def test_long_horizons_roll_out_the_models_own_predictions(name):
    torch.manual_seed(0)
    deterministic = {"routing": "round"} if name == "dmvfn" else {}  # DMVFN draws its blocks at random otherwise
    accepted = get_entry(name).accepted_keys() or ()
    sized = {"img_size": (16, 16)} if "img_size" in accepted else {}  # IAM4VP's tokens, Earthformer's positions
    sized |= {"output_frames": 4} if "output_frames" in accepted else {}  # Earthformer's block of T_out frames
    model = create(name, preset="tiny", in_channels=1, input_frames=4, **deterministic, **sized).eval()
    frames = torch.rand(2, 4, 1, 16, 16)
    with torch.no_grad():
        long = model(frames, 10)
        first = model(frames, 4)
        second = model(first, 4)
        assert torch.allclose(long[:, :4], first, atol=1e-6)
        assert torch.allclose(long[:, 4:8], second, atol=1e-6)
        assert torch.allclose(long[:, 8:], model(second, 2), atol=1e-6)
        assert torch.allclose(model(frames, 2), first[:, :2], atol=1e-6)


def test_each_model_trains_with_its_own_recipe_from_the_preset():
    simvp = cfg.resolve("paper", "simvp", "mmnist")["train"]
    assert {k: simvp[k] for k in ("recipe", "loss", "optimizer", "scheduler", "lr", "batch_size")} == {
        "recipe": "simvp", "loss": "mse", "optimizer": "adam", "scheduler": "onecycle", "lr": 1e-2, "batch_size": 16}
    mimo = cfg.resolve("paper", "mimovp", "mmnist")["train"]
    assert {k: mimo[k] for k in ("recipe", "loss", "optimizer", "scheduler", "lr", "batch_size")} == {
        "recipe": "mimovp", "loss": "mse_l1_layers", "optimizer": "adam", "scheduler": "none", "lr": 5e-4,
        "batch_size": 16}
    convgru = cfg.resolve("paper", "convgru", "mmnist")["train"]  # the paper's recipe stays the RNNs' default
    assert (convgru["loss"], convgru["optimizer"], convgru["lr"]) == ("bce", "rmsprop", 1e-5)
    sets = cfg.parse_sets(["train.lr=2e-3"])
    assert cfg.resolve("quick", "simvp", "kth", sets=sets)["train"]["lr"] == 2e-3
    for preset in ("quick", "tiny"):
        assert cfg.resolve(preset, "mimovp", "human36m")["train"]["loss"] == "mse_l1_layers"


def test_mimo_loss_is_10_mse_plus_l1_over_every_decoder_layer():
    torch.manual_seed(0)
    model = create("mimovp", preset="tiny", in_channels=1, input_frames=4, decoder_layers=3)
    inputs, targets = moving_square()
    loss, pred = get_loss("mse_l1_layers")(model, inputs, targets)
    layers = model(inputs, 4, all_layers=True)
    assert layers.shape == (3, 2, 4, 1, 16, 16)
    expected = sum(10 * F.mse_loss(out, targets) + F.l1_loss(out, targets) for out in layers) / 3
    assert torch.allclose(loss, expected)
    assert torch.equal(pred, layers[-1]) and torch.equal(pred, model(inputs, 4))
    with pytest.raises(UserError, match="loss mse_l1_layers needs a model whose forward takes all_layers"):
        get_loss("mse_l1_layers")(create("simvp", preset="tiny", input_frames=4), inputs, targets)


@pytest.mark.parametrize("name, overrides, steps", [("simvp", {}, 40), ("mimovp", {"d_model": 16}, 150)])
def test_one_batch_is_overfit_with_the_models_recipe(name, overrides, steps):
    torch.manual_seed(0)
    model = create(name, preset="tiny", in_channels=1, input_frames=4, **overrides)
    train = cfg.resolve("tiny", name, "mmnist")["train"]
    optimizer = make_optimizer(model.parameters(), train)
    loss_fn = get_loss(train["loss"])
    inputs, targets = moving_square()
    with torch.no_grad():
        start = F.mse_loss(model(inputs, 4), targets).item()
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(model, inputs, targets)[0].backward()
        optimizer.step()
    with torch.no_grad():
        end = F.mse_loss(model(inputs, 4), targets).item()
    assert end < 0.06 * start


# The official code's counts at the same settings (A4Bio/SimVP model.py; ningshuliang/MIMO-VP Models.py at
# 66dfe25, and at f0c64f0 for queries="positions"), fvcore over one 10 -> 10 Moving MNIST sequence.
@pytest.mark.parametrize("name, data, kwargs, params", [
    ("simvp", (10, 1, 64, 64), {}, 15_778_433),  # hid_S 64, hid_T 256, N_S 4, N_T 8
    ("simvp", (4, 3, 100, 100), {}, 14_472_579),  # the same on Human3.6M
    ("mimovp", (10, 1, 64, 64), {}, 22_606_592),  # patch 2, d_model 128, 6 + 6 layers, 8 heads
    ("mimovp", (10, 1, 64, 64), {"queries": "positions", "decoder_layers": 10}, 30_220_800),
])
def test_original_configurations_have_the_official_parameter_counts(name, data, kwargs, params):
    frames, channels = data[:2]
    with torch.device("meta"):
        model = create(name, in_channels=channels, input_frames=frames, **kwargs)
    assert count_params(model) == params


@pytest.mark.parametrize("name, kwargs, params, flops", [
    ("simvp", {"spatial_hidden": 16, "temporal_hidden": 64, "temporal_layers": 3}, 436_065, 422_486_016),
    ("mimovp", {"d_model": 16, "encoder_layers": 2, "decoder_layers": 2, "heads": 4}, 121_824, 331_284_480),
])
def test_fvcore_flops_equal_the_official_codes(name, kwargs, params, flops):
    model = create(name, in_channels=1, input_frames=10, **kwargs)
    assert (count_params(model), count_flops(model, DataSpec("mmnist", 10, 10, 1, 64, 64))) == (params, flops)


@pytest.mark.parametrize("name, kwargs, message", [
    ("simvp", {"temporal_layers": 1}, "temporal_layers >= 2"),
    ("simvp", {"spatial_hidden": 5}, "even spatial_hidden"),
    ("simvp", {"input_frames": 3, "spatial_hidden": 2}, "6 translator channels do not divide into 4 groups"),
    ("mimovp", {"queries": "learned"}, "queries must be one of frames, positions"),
    ("mimovp", {"d_model": 12, "heads": 8}, "d_model divisible by heads"),
])
def test_bad_options_are_user_errors(name, kwargs, message):
    with pytest.raises(UserError, match=message):
        create(name, preset="tiny", **kwargs)


@pytest.mark.parametrize("name, kwargs", [("simvp", {}), ("mimovp", {"queries": "positions"})])
def test_a_model_built_for_t_frames_rejects_others(name, kwargs):
    model = create(name, preset="tiny", input_frames=4, **kwargs)
    with pytest.raises(UserError, match="built for 4 input frames"):
        model(torch.rand(1, 3, 1, 16, 16), 3)


def test_bench_run_trains_and_scores_both(bench, tmp_path):
    code, out, err = bench("run", "--models", "simvp,mimovp", "--dataset", "mmnist", "--preset", "tiny",
                           "--results-dir", tmp_path)
    assert code == 0, err
    for name, label in (("simvp", "SimVP"), ("mimovp", "MIMO-VP")):
        (metrics_file,) = (tmp_path / "mmnist" / name).glob("*/metrics.json")
        metrics = json.loads(metrics_file.read_text())
        assert metrics["label"] == label and metrics["status"] == "finished"
        assert 0 < metrics["mse"] < 255**2 and metrics["flops"] > 0
