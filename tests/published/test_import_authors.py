"""``bench import srvp|simvp|iam4vp|vmrnn|earthformer``: the SRVP authors', A4Bio's SimVP, the IAM4VP, VMRNN and
Earthformer authors' weights (the golden parity files' references, saved as their codes save a checkpoint:
``torch.save(net.state_dict())``, from DataParallel for SRVP; VMRNN's OpenSTL runner also as its ``latest.pth`` and
with OpenSTL's EMA hook) import and predict what the reference predicted; and the checkpoint formats ``bench import``
reads."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from helpers.parity import assert_close, load_golden, seeded_sequences, seeded_weights, sketch

from vpbench.errors import UserError
from vpbench.models import build_model
from vpbench.reference.importing import read_state_dict, with_moving_averages
from vpbench.reference.mappings import mapping_for
from vpbench.store import RunDir

pytestmark = pytest.mark.usefixtures("one_thread")


def import_args(code: str, checkpoint: Path, model: str | None, options: dict, results: Path) -> list:
    """``bench import``'s arguments for ``checkpoint`` at the tiny preset with the golden configuration's model
    options; ``model`` None: the code's own."""
    sets = [item for key, value in options.items() if key != "preset"
            for item in ("--set", f"model.{key}={list(value) if isinstance(value, tuple) else value}")]
    return ["import", code, checkpoint, *(("--model", model) if model else ()), "--dataset", "mmnist", "--preset",
            "tiny", *sets, "--results-dir", results]


def imported(bench, code: str, checkpoint: Path, model: str | None, options: dict, results: Path) -> RunDir:
    """The run folder ``bench import`` makes of ``checkpoint`` (see :func:`import_args`)."""
    code_, out, err = bench(*import_args(code, checkpoint, model, options, results))
    assert code_ == 0, err
    return RunDir(Path(re.search(r"run folder: (\S+)", out)[1]))


def model_of(run: RunDir, **options) -> torch.nn.Module:
    """The imported run's model (float64) with its weights, as ``bench eval`` reads them; ``options`` replace its
    configuration's (the golden file's frame size)."""
    config = run.read_yaml("config.yaml")
    model = build_model({**config, "model": {**config["model"], **options}}).eval().double()
    model.load_state_dict(torch.load(run.file("checkpoints/best.pt"), weights_only=True)["model"])
    return model


@pytest.mark.parametrize("file", ["srvp", "srvp_layers1"])
def test_the_srvp_authors_weights_import_and_predict_as_their_model(file, bench, tmp_path):
    golden = load_golden(file)
    checkpoint = tmp_path / "best_loss.pt"
    torch.save({f"module.{k}": v.float() for k, v in golden["state_dict"].items()}, checkpoint)  # nn.DataParallel
    run = imported(bench, "srvp", checkpoint, "srvp", golden["config"]["vpbench"], tmp_path / "results")
    assert run.read_yaml("config.yaml")["imported"]["source"] == "a checkpoint of github.com/yuseonk/SRVP"
    with torch.no_grad():
        out = model_of(run)(golden["inputs"], golden["config"]["output_frames"])
    assert_close(out, golden["output_eval"], f"{file}: eval-mode predictions", tol=1e-5)  # weights stored float32


def test_a4bios_simvp_weights_import_and_predict_as_its_model(bench, tmp_path):
    golden = load_golden("simvp")
    checkpoint = tmp_path / "checkpoint.pth"
    torch.save({k: v.float() for k, v in golden["state_dict"].items()}, checkpoint)  # its Recorder's format
    run = imported(bench, "simvp", checkpoint, "simvp", golden["config"]["vpbench"], tmp_path / "results")
    assert run.read_yaml("config.yaml")["model"].get("form", "a4bio") == "a4bio"  # the factory's default
    x = golden["inputs"]
    with torch.no_grad():
        out = model_of(run)(x, x.shape[1])
    assert_close(out, golden["output"].clamp(0, 1), "SimVP predictions", tol=1e-5)


def test_the_iam4vp_authors_weights_import_and_predict_as_their_model(bench, tmp_path):
    """Their exp.py saves ``torch.save(model.state_dict())`` and then its EMA copy's to the same
    ``checkpoints/<epoch>.pth`` (so the file holds the EMA weights, those it validates), and its Recorder the model's
    to ``checkpoint.pth``: plain state dicts of the model's names, from one GPU (no ``module.``)."""
    golden = load_golden("iam4vp")
    checkpoint = tmp_path / "checkpoints" / "600.pth"
    checkpoint.parent.mkdir()
    torch.save({k: v.float() for k, v in golden["state_dict"].items()}, checkpoint)
    run = imported(bench, "iam4vp", checkpoint, None, golden["config"]["vpbench"], tmp_path / "results")
    config = run.read_yaml("config.yaml")
    assert config["model"]["name"] == "iam4vp" and config["preset"] == "openstl-tiny"
    assert config["imported"]["source"] == "a checkpoint of github.com/seominseok0429/Implicit-Stacked-" \
                                           "Autoregressive-Model-for-Video-Prediction"
    model = model_of(run)
    ours = torch.load(run.file("checkpoints/best.pt"), weights_only=True)["model"]
    mapped = mapping_for("iam4vp", "iam4vp")(golden["state_dict"], ours, {}).to_vpbench(golden["state_dict"])
    assert ours.keys() == mapped.keys() and all(torch.equal(ours[k], mapped[k].float()) for k in ours)
    inputs, _ = seeded_sequences(golden)
    with torch.no_grad():
        out = model(inputs, inputs.shape[1])
    frames = sketch({f"frame {s}": out[:, s] for s in range(out.shape[1])}, golden["config"]["seed"])
    for name, value in frames.items():  # weights rounded to float32: up to 3e-4 of the sketches' ~50 (fed back)
        assert_close(value, golden["output_sketch"][name], f"{name} (sketch)", tol=1e-3)


def vmrnn_predictions(run: RunDir, golden: dict) -> torch.Tensor:
    """The imported VMRNN's eval-mode predictions of frames 2..T of the golden sequences (its 16 x 16 frames)."""
    inputs, targets = golden["inputs"].double(), golden["targets"]
    with torch.no_grad():
        return model_of(run, img_size=list(golden["config"]["shape"][1:]))(inputs, targets.shape[1], all_frames=True)


def test_the_vmrnn_authors_openstl_runner_checkpoint_imports_and_predicts_as_their_model(bench, tmp_path):
    """Their OpenSTL runner's ``checkpoints/latest.pth``: epoch, optimiser and (timm) scheduler states beside the
    model's ``state_dict``, as its ``_save`` writes it."""
    golden = load_golden("vmrnn")
    weights = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([weights], lr=1e-4)
    weights.sum().backward()
    optimizer.step()
    checkpoint = tmp_path / "latest.pth"
    torch.save({"epoch": 5, "optimizer": optimizer.state_dict(), "state_dict": golden["state_dict"],
                "scheduler": {"t_initial": 200, "lr_min": 1e-6, "warmup_t": 5, "t_in_epochs": True,
                              "noise_range_t": None, "base_values": [1e-4]}}, checkpoint)
    run = imported(bench, "vmrnn", checkpoint, "vmrnn", golden["config"]["vpbench"], tmp_path / "results")
    assert run.read_yaml("config.yaml")["imported"]["moving_averages"] is False
    assert_close(vmrnn_predictions(run, golden), golden["eval_output"], "eval-mode predictions", tol=2e-5)


def test_vmrnn_weights_saved_from_ddp_with_openstls_ema_hook_import_their_moving_averages(bench, tmp_path):
    """Their runner's Recorder saves ``checkpoint.pth`` from the DistributedDataParallel model (``module.``); with an
    ``EMAHook`` in the config, the model holds a buffer ``ema_<name>`` per parameter, which OpenSTL swaps in to
    validate and test: those are the weights imported (here the golden ones; the trained ones are off by 1)."""
    golden = load_golden("vmrnn")
    state = golden["state_dict"]
    averages = {f"ema_{k.replace('.', '_')}": v for k, v in state.items()}
    trained = {k: v + 1 for k, v in state.items()}
    checkpoint = tmp_path / "checkpoint.pth"
    torch.save({f"module.{k}": v for k, v in {**trained, **averages}.items()}, checkpoint)
    run = imported(bench, "vmrnn", checkpoint, None, golden["config"]["vpbench"], tmp_path / "results")
    assert run.read_yaml("config.yaml")["imported"]["moving_averages"] is True
    assert f"the moving averages of OpenSTL's EMAHook for {len(state)})" in run.file("log.txt").read_text()
    assert_close(vmrnn_predictions(run, golden), golden["eval_output"], "eval-mode predictions", tol=2e-5)


def test_an_iam4vp_or_vmrnn_checkpoint_of_another_model_or_size_is_a_one_line_error(bench, tmp_path):
    results = tmp_path / "results"
    files = {}
    for name in ("iam4vp", "vmrnn"):
        golden = load_golden(name)
        files[name] = (tmp_path / f"{name}.pth", golden["config"]["vpbench"])
        torch.save({k: v.float() for k, v in golden["state_dict"].items()}, files[name][0])
    for code, other in (("vmrnn", "iam4vp"), ("iam4vp", "vmrnn")):
        path, options = files[other]
        status, _, err = bench(*import_args(code, path, None, files[code][1], results))
        assert status == 2 and len(err.strip().splitlines()) == 1, err
        assert f"{other}.pth is not the {code.upper()} authors' code's {code}: it has " in err, err
        assert err.strip().endswith(f"is it a checkpoint of another code? bench import {code} reads the "
                                    f"{code.upper()} authors' code's {code} only"), err
    path, options = files["vmrnn"]  # a second cell deeper here than in the checkpoint
    status, _, err = bench(*import_args("vmrnn", path, None, {**options, "depths_down": [2, 2]}, results))
    assert status == 2 and len(err.strip().splitlines()) == 1, err
    assert "lacks down.1.blocks.1.norm.weight" in err and "--set model.KEY=VALUE" in err, err
    assert not results.exists() or not any(results.rglob("config.yaml"))  # nothing half-imported


def test_the_checkpoint_formats_bench_import_reads(tmp_path):
    state = {"conv.weight": torch.ones(2, 2), "conv.bias": torch.zeros(2)}
    formats = {
        "plain.pth": state,  # OpenSTL's released files, the Recorders' checkpoint.pth
        "latest.pth": {"epoch": 3, "state_dict": state, "optimizer": {"state": {}, "param_groups": []}},  # v0.3's
        "best.ckpt": {"state_dict": {**{f"model.{k}": v for k, v in state.items()}}, "epoch": 1,
                      "pytorch-lightning_version": "2.0.0"},  # Lightning: the method, the model under model.
        "parallel.pt": {f"module.{k}": v for k, v in state.items()},  # saved from DataParallel
    }
    for name, content in formats.items():
        torch.save(content, tmp_path / name)
        read = read_state_dict(tmp_path / name)
        assert read.keys() == state.keys() and all(torch.equal(read[k], state[k]) for k in state), name
    averaged = {**state, "ema_conv_weight": torch.zeros(2, 2), "ema_conv_bias": torch.ones(2), "ema_count": torch.ones(1)}
    assert with_moving_averages(state) == (state, 0)  # no EMA hook
    read, replaced = with_moving_averages(averaged)  # OpenSTL's EMAHook (ema_count: no tensor of that name)
    assert replaced == 2 and read.keys() == {"conv.weight", "conv.bias", "ema_count"}
    assert read["conv.weight"].eq(0).all() and read["conv.bias"].eq(1).all()
    torch.save({"epoch": 3, "optimizer": {}}, tmp_path / "empty.pth")
    with pytest.raises(UserError, match="holds no state dict"):
        read_state_dict(tmp_path / "empty.pth")


def test_the_earthformer_authors_weights_import_and_predict_as_their_model(bench, tmp_path):
    """Their SEVIR network (global vectors, stack stem) at the golden file's tiny size, saved as their released
    ``earthformer_sevir.pt`` is: a plain state dict."""
    golden = load_golden("earthformer")
    entry = golden["networks"]["sevir"]
    checkpoint = tmp_path / "earthformer_sevir.pt"
    torch.save({k: v.float() for k, v in seeded_weights(entry["parameter_shapes"], golden["weight_seed"]).items()},
               checkpoint)
    options = {**entry["vpbench"], "norm_groups": "null"}  # the SEVIR stem's width / 4 groups, not the tiny preset's 4
    run = imported(bench, "earthformer", checkpoint, "earthformer", options, tmp_path / "results")
    generator = torch.Generator().manual_seed(golden["data_seed"])  # the golden inputs (tools/golden/earthformer.py)
    t, h, w, c = entry["reference"]["input_shape"]
    inputs = torch.rand(2, t, c, h, w, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        out = model_of(run)(inputs, entry["output"].shape[1])
    assert_close(out, entry["output"].permute(0, 1, 4, 2, 3).clamp(0, 1), "Earthformer predictions", tol=1e-5)
