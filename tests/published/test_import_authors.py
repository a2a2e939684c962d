"""``bench import srvp|simvp|earthformer``: the SRVP authors', A4Bio's SimVP and the Earthformer authors' weights
(the golden parity files' references, saved as their codes save a checkpoint: ``torch.save(net.state_dict())``,
from DataParallel for SRVP) import and predict what the reference predicted; and the checkpoint formats
``bench import`` reads."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from helpers.parity import assert_close, load_golden, seeded_weights

from vpbench.errors import UserError
from vpbench.models import build_model
from vpbench.reference.importing import read_state_dict
from vpbench.store import RunDir

pytestmark = pytest.mark.usefixtures("one_thread")


def imported(bench, code: str, checkpoint: Path, model: str, options: dict, results: Path) -> RunDir:
    """``bench import`` of ``checkpoint`` at the tiny preset with the golden configuration's model options."""
    sets = [item for key, value in options.items() if key != "preset"
            for item in ("--set", f"model.{key}={list(value) if isinstance(value, tuple) else value}")]
    code_, out, err = bench("import", code, checkpoint, "--model", model, "--dataset", "mmnist", "--preset", "tiny",
                            *sets, "--results-dir", results)
    assert code_ == 0, err
    return RunDir(Path(re.search(r"run folder: (\S+)", out)[1]))


def model_of(run: RunDir) -> torch.nn.Module:
    model = build_model(run.read_yaml("config.yaml")).eval().double()
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
