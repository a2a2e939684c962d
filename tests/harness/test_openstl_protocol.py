"""OpenSTL's protocol beside the paper's: presets, the recurrent models in OpenSTL's form with scheduled
sampling, the report's published columns and conventions, and the timing harness against OpenSTL's code."""
from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import pytest
import torch

from vpbench import config as cfg
from vpbench import presets
from vpbench.errors import UserError
from vpbench.losses import LossContext, get_loss
from vpbench.models import create, expand
from vpbench.models.layers.openstl_stack import RecurrentStack, sampling_probabilities
from vpbench.reference import openstl as official_openstl


def test_protocol_and_scale_choose_the_preset():
    assert presets.choose("quick", "openstl", "cpu").name == "openstl-quick"
    assert presets.choose("full", None, "cpu").name == "paper" and presets.choose("paper", None, "cpu").name == "paper"
    assert presets.choose(None, "openstl", "cuda").name == "openstl"
    assert presets.choose("openstl-tiny", None, "cpu").name == "openstl-tiny"
    assert presets.choose("quick", "srvp", "cpu").name == "quick"
    with pytest.raises(UserError, match="preset 'openstl-quick' belongs to protocol 'openstl', not 'srvp'"):
        presets.choose("openstl-quick", "srvp", "cpu")
    with pytest.raises(UserError, match="unknown protocol 'keras'"):
        presets.choose("quick", "keras", "cpu")


def test_openstls_recipe_and_models():
    train = cfg.resolve("openstl", "stlstm", "mmnist")["train"]
    assert (train["loss"], train["optimizer"], train["scheduler"], train["batch_size"], train["epochs"]) == (
        "mse_all_frames", "adam", "onecycle", 16, 200)
    assert (train["lr"], train["weight_decay"], train["sampling"], train["sampling_stop_iter"]) == (5e-4, 0, "linear",
                                                                                                      50000)
    assert cfg.resolve("openstl", "causallstm", "mmnist")["train"]["lr"] == 1e-4  # PredRNN++'s config
    assert cfg.resolve("openstl", "srvp", "mmnist")["train"]["loss"] == "mse"  # the protocol's recipe
    model = create("stlstm", preset="openstl")
    assert isinstance(model, RecurrentStack) and sum(p.numel() for p in model.parameters()) == 23_838_720
    convlstm = create("convlstm", preset="openstl")
    assert all(cell.peephole is None and cell.forget_bias == 0 for cell in convlstm.cells)
    assert "simvp" in expand("all", "openstl") and "srvp" not in expand("all", "openstl")
    assert expand("all") == [*expand("paper"), "persistence"]


def test_scheduled_sampling_follows_openstls_schedules():
    linear = {"sampling": "linear", "sampling_stop_iter": 50000, "sampling_changing_rate": 2e-5}
    assert sampling_probabilities(0, linear) == (1.0, pytest.approx(1 - 2e-5))
    assert sampling_probabilities(24999, linear)[1] == pytest.approx(0.5)
    assert sampling_probabilities(50000, linear) == (1.0, 0.0)
    reverse = {"sampling": "reverse", "r_sampling_step_1": 25000, "r_sampling_step_2": 50000, "r_exp_alpha": 5000}
    assert sampling_probabilities(10, reverse) == (0.5, 0.5)
    p_in, p_out = sampling_probabilities(30000, reverse)
    assert p_in == pytest.approx(1 - 0.5 * torch.e**-1) and p_out == pytest.approx(0.4)
    assert sampling_probabilities(60000, reverse) == (1.0, 0.0)


def test_the_stack_reads_true_frames_then_its_own_predictions():
    torch.manual_seed(0)
    model = create("stlstm", preset="openstl-tiny", img_size=(16, 16)).double()
    x, y = torch.rand(2, 4, 1, 16, 16, dtype=torch.float64), torch.rand(2, 3, 1, 16, 16, dtype=torch.float64)
    free = model(x, 3, all_frames=True)
    assert free.shape == (2, 6, 1, 16, 16)
    # Teacher forcing (every future input the true frame) changes only the frames after the first prediction.
    forced = model(x, 3, targets=y, sampling=(1.0, 1.0), all_frames=True)
    assert torch.equal(forced[:, :4], free[:, :4]) and not torch.allclose(forced[:, 4:], free[:, 4:])
    assert torch.equal(model(x, 3, targets=y, sampling=(1.0, 0.0), all_frames=True), free)
    assert torch.equal(model(x, 3), free[:, -3:].clamp(0, 1))


def test_the_loss_covers_every_predicted_frame_in_training_and_the_future_ones_in_evaluation():
    torch.manual_seed(0)
    model = create("convlstm", preset="openstl-tiny", img_size=(16, 16))
    x, y = torch.rand(2, 4, 1, 16, 16), torch.rand(2, 3, 1, 16, 16)
    context = LossContext(10**6, {"sampling": "linear", "sampling_stop_iter": 1, "sampling_changing_rate": 1.0})
    loss, pred = get_loss("mse_all_frames")(model.train(), x, y, context)
    out = model(x, 3, all_frames=True)
    assert loss.item() == pytest.approx(((out - torch.cat([x, y], 1)[:, 1:]) ** 2).mean().item(), rel=1e-6)
    model.eval()
    loss, pred = get_loss("mse_all_frames")(model, x, y, context)
    assert loss.item() == pytest.approx(((out[:, -3:] - y) ** 2).mean().item(), rel=1e-6)


def test_kth_and_human36m_as_openstl_sets_them_up():
    kth = cfg.resolve("openstl", "stlstm", "kth")
    assert (kth["dataset"]["input_frames"], kth["dataset"]["output_frames"], kth["dataset"]["frame_size"]) == (10, 20,
                                                                                                                128)
    assert kth["dataset"]["crop"] == "none" and kth["model"]["img_size"] == [128, 128]
    assert cfg.resolve("paper", "stlstm", "kth")["dataset"]["frame_size"] == 64
    h36m = cfg.resolve("openstl-quick", "convlstm", "human36m")["dataset"]
    assert (h36m["frame_size"], h36m["actions"]) == (256, "all")


FAKE_MODEL = '''
import torch
from torch import nn
from openstl.modules import Cell
from timm.layers import DropPath  # OpenSTL's files import timm; a stand-in serves where it does not import


class PredRNN_Model(nn.Module):
    """OpenSTL's interface: patched frames [B, T, h, w, C'] and a mask -> (next frames, loss)."""

    def __init__(self, num_layers, num_hidden, configs):
        super().__init__()
        self.configs = configs
        c = configs.patch_size ** 2 * configs.in_shape[1]
        self.cell = Cell(c)
        self.drop = DropPath(0.0)

    def forward(self, frames, mask):
        out = self.drop(self.cell(frames[:, :-1]))
        return out, ((out - frames[:, 1:]) ** 2).mean()
'''
FAKE_MODULES = '''
from torch import nn


class Cell(nn.Linear):
    def __init__(self, channels):
        super().__init__(channels, channels)
'''


def fake_clone(root: Path, modules: str = FAKE_MODULES, model: str = FAKE_MODEL) -> Path:
    """A folder shaped as a clone of OpenSTL holding one model file and its modules file."""
    (root / "openstl" / "models").mkdir(parents=True)
    (root / "openstl" / "modules").mkdir()
    (root / "openstl" / "models" / "predrnn_model.py").write_text(textwrap.dedent(model))
    (root / "openstl" / "modules" / "predrnn_modules.py").write_text(textwrap.dedent(modules))
    return root


def test_the_timing_harness_loads_a_clone_and_times_both(tmp_path, monkeypatch, fresh_imports):
    clone = fake_clone(tmp_path / "OpenSTL")
    monkeypatch.setattr(official_openstl, "PAIRS", {"stlstm": official_openstl.Pair(
        "predrnn_model", "PredRNN_Model", ("predrnn_modules",))})
    rows = official_openstl.compare({"openstl": clone}, ["stlstm", "persistence"], preset="openstl-tiny",
                                    dataset="mmnist", batch=2, repeats=1)
    assert [r["model"] for r in rows] == ["stlstm"] and set(rows[0]["seconds"]) == {"reference", "vpbench"}
    assert rows[0]["params"]["reference"] == 16 * 16 + 16
    table = "\n".join(official_openstl.markdown(rows, "openstl-tiny", 1))
    assert "| stlstm | openstl |" in table and "Speed-up" in table and "Not timed" not in table
    with pytest.raises(UserError, match="no openstl/models/predrnn_model.py there"):
        official_openstl.PAIRS["stlstm"].load(tmp_path / "nowhere")


def test_each_model_is_timed_against_its_own_clone_or_says_which_one_it_needs(tmp_path, monkeypatch, fresh_imports):
    lightning = fake_clone(tmp_path / "OpenSTL")
    no_bias = FAKE_MODULES.replace("(channels, channels)", "(channels, channels, False)")
    v030 = fake_clone(tmp_path / "OpenSTL-v030", no_bias)
    pair = functools.partial(official_openstl.Pair, "predrnn_model", "PredRNN_Model", ("predrnn_modules",))
    monkeypatch.setattr(official_openstl, "PAIRS", {"stlstm": pair(), "convlstm": pair(source="openstl-v030"),
                                                    "mim": pair()})
    both = {"openstl": lightning, "openstl-v030": v030}
    rows = official_openstl.compare(both, ["stlstm", "convlstm", "mim"], preset="openstl-tiny", dataset="mmnist",
                                    batch=2, repeats=1)
    # Lightning's file, then v0.3.0's (no bias) in its place, then Lightning's again
    assert [r["params"]["reference"] for r in rows] == [16 * 16 + 16, 16 * 16, 16 * 16 + 16]
    rows = official_openstl.compare({"openstl": lightning}, ["stlstm", "convlstm"], preset="openstl-tiny",
                                    dataset="mmnist", batch=2, repeats=1)
    assert rows[1]["seconds"] is None
    table = "\n".join(official_openstl.markdown(rows, "openstl-tiny", 1))
    assert "| stlstm | openstl |" in table and "| convlstm |" not in table
    assert "Not timed: convlstm (give --openstl-v030 PATH, a clone of github.com/chengtan9907/OpenSTL (branch " \
           "OpenSTLv0.3.0))." in table


def test_a_model_built_from_timm_blocks_is_not_timed_where_timm_does_not_import(tmp_path, monkeypatch,
                                                                                 fresh_imports):
    try:
        import timm  # noqa: F401
        pytest.skip("timm imports here")
    except Exception:  # noqa: BLE001
        pass
    model = FAKE_MODEL.replace("self.drop = DropPath(0.0)", "self.drop = SwinTransformerBlock()").replace(
        "from timm.layers import DropPath", "from timm.models.swin_transformer import SwinTransformerBlock")
    clone = fake_clone(tmp_path / "OpenSTL", model=model)
    monkeypatch.setattr(official_openstl, "PAIRS", {"stlstm": official_openstl.Pair(
        "predrnn_model", "PredRNN_Model", ("predrnn_modules",))})
    rows = official_openstl.compare({"openstl": clone}, ["stlstm"], preset="openstl-tiny", dataset="mmnist",
                                    batch=2, repeats=1)
    assert rows[0]["seconds"] is None
    assert "timm.models.swin_transformer.SwinTransformerBlock is not available: timm does not import here; " \
           "install timm<=0.6.11" in rows[0]["missing"]


@pytest.mark.slow
def test_an_openstl_run_is_reported_beside_openstls_published_values(bench, tmp_path):
    results, out = tmp_path / "results", tmp_path / "report"
    code, _, err = bench("run", "--models", "stlstm,persistence", "--dataset", "mmnist", "--protocol", "openstl",
                         "--preset", "tiny", "--results-dir", results)
    assert code == 0, err
    assert list(results.glob("mmnist/stlstm/*-openstl-tiny-s0/metrics.json"))
    assert bench("report", "--results-dir", results, "--out", out)[0] == 0
    page = (out / "mmnist.md").read_text()
    assert "beside OpenSTL's Moving MNIST benchmark, 200 epochs" in page
    row = next(line for line in page.splitlines() if line.startswith("| PredRNN |"))
    assert "| 23.97 |" in row  # the published MSE per frame, in OpenSTL's convention by default
    assert "validated and its checkpoint chosen on the test set" in page
    assert "not on the standard `mnist_test_seq.npy`" in page  # embedded digits: the provenance warning
    assert "SSIM as OpenSTL computes it" in page
    assert "| PredRNN | 13,504 | " in page and "| 23.8 | 116.0 | 54 |" in page  # published params, GFLOPs, FPS
    assert "Also published, OpenSTL's Moving MNIST benchmark, 2,000 epochs" in page
