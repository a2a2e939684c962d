"""PhyDNet, MAU and SwinLSTM (three of OpenSTL's recurrent methods): contract, horizons, training losses and
schedules, recipes, options. Their fidelity to OpenSTL's code is in tests/parity/test_parity_phydnet_mau_swinlstm.py."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from helpers.contract import assert_contract

from vpbench import config as cfg
from vpbench.errors import UserError
from vpbench.harness.recipes import make_optimizer
from vpbench.losses import LossContext, get_loss
from vpbench.models import create, expand, get_entry
from vpbench.models.phydnet import moment_matrix, teacher_forcing_ratio
from vpbench.models.swinlstm import padded_size

pytestmark = pytest.mark.usefixtures("one_thread")

MODELS = ["phydnet", "mau", "swinlstm"]


def moving_square(batch: int = 2, frames: int = 8, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """A bright 4x4 square moving diagonally: (first half, second half) of [B, frames, 1, size, size]."""
    x = torch.zeros(batch, frames, 1, size, size)
    for b in range(batch):
        for t in range(frames):
            x[b, t, 0, 2 + t + b : 6 + t + b, 1 + t : 5 + t] = 1
    return x[:, : frames // 2], x[:, frames // 2 :]


def tiny(name: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return create(name, preset="openstl-tiny", in_channels=1, img_size=(16, 16), **overrides)


def test_registered_as_openstl_methods_with_their_labels_and_published_rows():
    assert [(n, get_entry(n).label, get_entry(n).rank) for n in MODELS] == [
        ("phydnet", "PhyDNet", 120), ("mau", "MAU", 125), ("swinlstm", "SwinLSTM", 130)]
    assert all(get_entry(n).tags == {"openstl"} for n in MODELS)
    openstl = expand("all", protocol="openstl")
    assert set(MODELS) <= set(openstl) and not set(MODELS) & set(expand("all"))
    assert get_entry("phydnet").references["openstl-mmnist-200"]["mse"] == 28.19
    assert get_entry("mau").references["openstl-mmnist-2000"]["mse"] == 22.25
    assert not get_entry("swinlstm").references  # OpenSTL publishes no SwinLSTM number


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("preset", ["tiny", "openstl-tiny"])
@pytest.mark.parametrize("dataset", ["mmnist", "human36m"])  # Human3.6M: 3 x 100 x 100 (srvp), 3 x 256 x 256 (openstl)
def test_predictions_have_the_contract_shape_and_range(name, preset, dataset):
    assert_contract(name, preset, dataset)


def test_frames_whose_sides_do_not_divide_are_padded_and_cropped():
    frames = torch.rand(1, 2, 3, 104, 104)  # PhyDNet and MAU pad 98 x 102 to 100 x 104, SwinLSTM 100 x 100 to 128
    for name, size in (("phydnet", (98, 102)), ("mau", (98, 102)), ("swinlstm", (100, 100))):
        model = create(name, preset="tiny", in_channels=3, img_size=size).eval()
        with torch.no_grad():
            assert model(frames[..., : size[0], : size[1]], 2).shape == (1, 2, 3, *size)


@pytest.mark.parametrize("name", MODELS)
def test_any_horizon_rolls_out_the_models_own_predictions(name):
    model = tiny(name).eval()
    frames = torch.rand(2, 3, 1, 16, 16)
    with torch.no_grad():
        long = model(frames, 7)
        assert long.shape == (2, 7, 1, 16, 16)
        assert torch.allclose(model(frames, 1), long[:, :1], atol=1e-6)  # step k never reads later frames
        assert torch.allclose(model(frames, 4), long[:, :4], atol=1e-6)
        with pytest.raises(UserError, match="horizon must be at least 1"):
            model(frames, 0)


@pytest.mark.parametrize("name, keyword, value", [("mau", "sampling", (1.0, 1.0)), ("swinlstm", "sampling", (1.0, 1.0)),
                                                   ("phydnet", "teacher_forcing", True)])
def test_training_forward_predicts_every_next_frame_and_reads_true_frames_when_told(name, keyword, value):
    model = tiny(name).train()
    inputs, targets = moving_square()
    torch.manual_seed(1)
    free = model(inputs, 4, targets=targets, all_frames=True)
    assert free.shape == (2, 7, 1, 16, 16)  # the predictions of frames 2..8
    torch.manual_seed(1)
    forced = model(inputs, 4, targets=targets, all_frames=True, **{keyword: value})
    torch.manual_seed(1)
    other = model(inputs, 4, targets=targets.flip(-1), all_frames=True, **{keyword: value})
    assert torch.allclose(forced[:, :4], free[:, :4]) and not torch.allclose(forced[:, 4:], free[:, 4:])
    assert torch.allclose(other[:, :4], forced[:, :4]) and not torch.allclose(other[:, 4:], forced[:, 4:])


def test_phydnet_loss_sums_the_step_mses_and_the_moment_loss_and_flips_one_coin_per_batch():
    model = tiny("phydnet").train()
    inputs, targets = moving_square()
    truth = torch.cat([inputs, targets], dim=1)[:, 1:]
    always = {"sampling": "linear", "sampling_stop_iter": 10, "sampling_changing_rate": 1e-9}
    for train, forced in (({}, False), (always, True)):
        loss, pred = get_loss("phydnet")(model, inputs, targets, LossContext(0, train))
        out = model(inputs, 4, targets=targets, teacher_forcing=forced, all_frames=True)
        steps = sum(F.mse_loss(out[:, t], truth[:, t]) for t in range(7))
        assert torch.allclose(loss, steps + model.phycell.moment_loss())
        assert torch.equal(pred, out[:, -4:])
    loss, pred = get_loss("phydnet")(model.eval(), inputs, targets)
    assert torch.allclose(loss, F.mse_loss(model(inputs, 4), targets))  # validation: the predicted frames only


def test_phydnet_moment_loss_vanishes_when_each_filter_is_its_derivative():
    model = tiny("phydnet", phycell_kernel=5)
    k, weight = 5, model.phycell.physics[0].weight
    m = moment_matrix(k)
    assert m[:, (k - 1) // 2].tolist() == [1, 0, 0, 0, 0]  # moments of a centred delta: only the 0th
    assert m[2].tolist() == [2, 0.5, 0, 0.5, 2]  # (j - 2)^2 / 2!
    one_hot = torch.eye(k * k, dtype=torch.float64).view(k * k, k, k)
    with torch.no_grad():  # the kernels whose moments are the one-hot constraints: M^-1 E M^-T
        weight.copy_((torch.linalg.inv(m) @ one_hot @ torch.linalg.inv(m).T)[:, None].expand_as(weight))
        assert model.phycell.moment_loss().item() < 1e-10
        weight.add_(0.01)
        assert model.phycell.moment_loss().item() > 1e-6


def test_phydnet_teacher_forcing_falls_as_the_authors_per_epoch_over_openstls_run():
    train = cfg.resolve("openstl", "phydnet", "mmnist")["train"]
    assert (train["loss"], train["optimizer"], train["scheduler"], train["lr"]) == ("phydnet", "adam", "onecycle", 1e-3)
    for epoch, ratio in ((0, 1.0), (100, 0.7), (199, 1 - 0.003 * 199)):
        assert abs(teacher_forcing_ratio(epoch * 625, train) - ratio) < 0.003 + 1e-9
    assert teacher_forcing_ratio(334 * 625, train) == 0.0
    quick = cfg.resolve("openstl-quick", "phydnet", "mmnist")["train"]
    assert abs(teacher_forcing_ratio(99, quick) - 0.4) < 0.01  # the same fall over 100 steps
    assert teacher_forcing_ratio(5, {}) == 0.0


def test_mau_trains_with_openstls_scheduled_sampling_and_swinlstm_without():
    mau, swin = (cfg.resolve("openstl", name, "mmnist")["train"] for name in ("mau", "swinlstm"))
    assert (mau["loss"], mau["lr"], mau["sampling"], mau["sampling_stop_iter"], mau["sampling_changing_rate"]) == (
        "mse_all_frames", 1e-3, "linear", 50000, 2e-5)
    assert (swin["loss"], swin["lr"], swin.get("sampling", "none")) == ("mse_all_frames", 1e-4, "none")
    for name in MODELS:  # the SRVP protocol's presets train them the same way (paper: OpenSTL's batch 16)
        paper = cfg.resolve("paper", name, "mmnist")["train"]
        assert paper["optimizer"] == "adam" and paper["batch_size"] == 16 and paper["loss"] != "bce"
        for preset in ("quick", "tiny", "openstl-quick", "openstl-tiny"):
            assert cfg.resolve(preset, name, "mmnist")["train"]["loss"] in ("phydnet", "mse_all_frames")


def test_mau_attention_weighs_past_temporal_states_by_their_spatial_states():
    cell = tiny("mau", tau=3).cells[0]  # hidden 4 on a 4 x 4 grid
    t, s = torch.rand(2, 1, 4, 4, 4).unbind(0)
    t_history, s_past = torch.rand(3, 1, 4, 4, 4), torch.rand(1, 1, 4, 4, 4)
    with torch.no_grad():  # equal past spatial states: equal weights, the attended state is the temporal states' mean
        uniform = cell(t, s, t_history, s_past.expand(3, -1, -1, -1, -1))
        mean = cell(t, s, t_history.mean(0, keepdim=True).expand(3, -1, -1, -1, -1), s_past.expand(3, -1, -1, -1, -1))
        weighted = cell(t, s, t_history, torch.cat([s_past, 5 * s_past, -s_past]))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(uniform, mean))
    assert not torch.allclose(weighted[0], uniform[0])


def test_swinlstm_stochastic_depth_is_drawn_in_training_only():
    model = tiny("swinlstm", drop_path=0.5)
    frames = torch.rand(2, 3, 1, 16, 16)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(frames, 2), model(frames, 2))
        model.train()
        torch.manual_seed(0)
        first = model(frames, 2)
        torch.manual_seed(1)
        assert not torch.allclose(first, model(frames, 2))


@pytest.mark.parametrize("img_size, expected", [((64, 64), (64, 64)), ((16, 16), (16, 16)), ((100, 100), (128, 128)),
                                                ((64, 32), (64, 32)), ((64, 48), (64, 64)), ((60, 64), (64, 64))])
def test_swinlstm_pads_to_a_size_whose_every_level_splits_into_windows(img_size, expected):
    assert padded_size(img_size, 2, 2, 4) == expected


@pytest.mark.parametrize("name, kwargs, message", [
    ("phydnet", {"patch_size": 3}, "patch_size .* must be 2 or 4"),
    ("phydnet", {"width": 6, "norm_groups": 4}, "multiple of norm_groups"),
    ("phydnet", {"convlstm_hidden": [8, 4]}, "last ConvLSTM layer must have 2 x width = 8"),
    ("phydnet", {"phycell_kernel": 4}, "phycell_kernel must be odd"),
    ("mau", {"sr_size": 3}, "sr_size must be a power of 2"),
    ("mau", {"cell_mode": "recall"}, "cell_mode must be one of normal, residual"),
    ("mau", {"kernel_size": 4}, "kernel_size must be odd"),
    ("swinlstm", {"patch_size": 4}, "patch_size must be 2"),
    ("swinlstm", {"depths_up": [1]}, "one positive depth per level"),
    ("swinlstm", {"heads": [3, 2]}, "do not divide into heads"),
])
def test_bad_options_are_user_errors(name, kwargs, message):
    with pytest.raises(UserError, match=message):
        create(name, preset="tiny", **kwargs)


def test_teacher_forcing_needs_the_targets():
    with pytest.raises(UserError, match="teacher forcing needs the true future frames"):
        tiny("phydnet")(torch.rand(1, 3, 1, 16, 16), 3, teacher_forcing=True)


@pytest.mark.parametrize("name", MODELS)
def test_a_few_steps_of_the_models_recipe_lower_its_loss_on_a_batch(name):
    model = tiny(name).train()
    train = {**cfg.resolve("openstl-tiny", name, "mmnist")["train"], "sampling": "none"}  # no coin: one loss
    optimizer = make_optimizer(model.parameters(), train)
    loss_fn = get_loss(train["loss"])
    inputs, targets = moving_square()
    losses = []
    for step in range(6):
        optimizer.zero_grad()
        loss = loss_fn(model, inputs, targets, LossContext(step, train))[0]
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.95 * losses[0]


def test_bench_run_trains_and_scores_them_under_openstls_protocol(bench, tmp_path):
    code, _, err = bench("run", "--models", ",".join(MODELS), "--dataset", "mmnist", "--protocol", "openstl",
                           "--preset", "tiny", "--results-dir", tmp_path)
    assert code == 0, err
    for name in MODELS:
        (metrics_file,) = (tmp_path / "mmnist" / name).glob("*/metrics.json")
        metrics = json.loads(metrics_file.read_text())
        assert metrics["status"] == "finished" and metrics["flops"] > 0
