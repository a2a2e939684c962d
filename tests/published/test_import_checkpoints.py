"""``bench import``: checkpoints written by OpenSTL's (and PredFormer's) own model classes, in their released format,
import into vpbench's models and predict what the reference's model predicts on the same input (golden files:
``tools/golden/openstl_checkpoints.py``); a checkpoint of another model or size is a one-line error.

Each golden checkpoint is the reference's model at vpbench's ``openstl-tiny`` configuration on TaxiBJ's shape,
its weights moved off their initialisation, saved as ``torch.save(model.state_dict())`` (the released ``.pth``
files); ``predictions.pt`` holds its test-time prediction, as its method's ``forward`` computes it, in float32.
vpbench's prediction is the contract's ``forward(frames, horizon)``, clamped to [0, 1]: it is compared with the
reference's clamped. MMVP: OpenSTL's output reshape interleaves the channels of a frame when C > 1 (its
``permute(0, 2, 3, 1)`` read back as [C, H, W]); vpbench's frames are compared in that layout.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import torch
from helpers.parity import assert_close

from vpbench.models import build_model
from vpbench.reference.weights import released
from vpbench.store import RunDir

pytestmark = pytest.mark.usefixtures("one_thread")

FOLDER = Path(__file__).resolve().parents[1] / "golden" / "openstl_checkpoints"
TOLERANCE = 2e-5  # float32: fused against separate convolutions, another summation order
PREDICTIONS = torch.load(FOLDER / "predictions.pt", map_location="cpu", weights_only=True)
COMPARED = sorted(stem for stem, case in PREDICTIONS["cases"].items() if "output" in case)


def import_args(case: dict, path: Path, results: Path, *extra: str) -> list:
    sets = [item for s in case["sets"] for item in ("--set", s)]
    return ["import", case["code"], path, "--model", case["model"], "--dataset", case["dataset"], "--preset",
            PREDICTIONS["preset"], *sets, "--results-dir", results, *extra]


def imported_run(out: str) -> RunDir:
    return RunDir(Path(re.search(r"run folder: (\S+)", out)[1]))


def predictions_of(run: RunDir, case: dict) -> torch.Tensor:
    """The imported run's model, from its checkpoint as `bench eval` reads it, on the case's golden input (TaxiBJ's
    shape unless the case holds its own)."""
    config = run.read_yaml("config.yaml")
    model = build_model(config).eval()
    model.load_state_dict(torch.load(run.file("checkpoints/best.pt"), weights_only=True)["model"])
    x = case.get("inputs", PREDICTIONS["inputs"])[:, :config["dataset"]["input_frames"]]
    torch.manual_seed(PREDICTIONS["seed"])  # DMVFN draws its routing as the reference did, from the same seed
    with torch.no_grad():
        return model(x, config["dataset"]["output_frames"])


def openstl_channels(frames: torch.Tensor) -> torch.Tensor:
    """MMVP's frames [B, K, C, H, W] as OpenSTL's output reshape lays them out."""
    b, k, c, h, w = frames.shape
    return frames.reshape(b * k, c, h, w).permute(0, 2, 3, 1).reshape(b, k, c, h, w)


def test_every_openstl_method_vpbench_has_is_covered():
    """A golden checkpoint for every model a released checkpoint imports into, and for every SimVP translator."""
    models = {c.model for c in released().values()}
    assert models <= {case["model"] for case in PREDICTIONS["cases"].values()}
    translators = {s for c in released().values() for s in c.sets if s.startswith("model.translator=")}
    assert translators <= {s for case in PREDICTIONS["cases"].values() for s in case["sets"]}
    assert {"swinlstm", "mmvp", "predformer", "wast"} <= {case["model"] for case in PREDICTIONS["cases"].values()}


@pytest.mark.parametrize("stem", COMPARED)
def test_a_checkpoint_written_by_the_reference_imports_and_predicts_as_it(stem, bench, tmp_path):
    case = PREDICTIONS["cases"][stem]
    path = FOLDER / case["file"]
    code, out, err = bench(*import_args(case, path, tmp_path))
    assert code == 0, err
    run = imported_run(out)
    config = run.read_yaml("config.yaml")
    assert config["imported"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert config["imported"]["file"] == case["file"] and config["imported"]["code"] == case["code"]
    assert run.status()["status"] == "finished" and not run.exists("metrics.json")
    ours = predictions_of(run, case)
    if case["model"] == "mmvp":
        ours = openstl_channels(ours)
    assert_close(ours, case["output"].clamp(0, 1), f"{stem}: predictions", TOLERANCE)


def test_a_lightning_checkpoint_imports_as_the_plain_one(bench, tmp_path):
    """OpenSTL-Lightning's best.ckpt: the method's state dict, the model under ``model.``."""
    case = PREDICTIONS["cases"]["convlstm"]
    code, out, err = bench(*import_args(case, FOLDER / "convlstm.ckpt", tmp_path))
    assert code == 0, err
    assert_close(predictions_of(imported_run(out), case), case["output"].clamp(0, 1), "Lightning checkpoint", TOLERANCE)


def one_line_error(bench, *args) -> str:
    code, _, err = bench(*args)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    return err


def test_a_checkpoint_of_another_model_or_size_is_a_one_line_error(bench, tmp_path):
    results = tmp_path / "results"
    predrnn = PREDICTIONS["cases"]["predrnn"]
    err = one_line_error(bench, *import_args({**predrnn, "model": "convlstm"}, FOLDER / "predrnn.pth", results))
    assert "is not OpenSTL's convlstm" in err and "unexpected cell_list.0.conv_m.0.weight" in err
    convlstm = PREDICTIONS["cases"]["convlstm"]
    err = one_line_error(bench, *import_args(convlstm, FOLDER / "convlstm.pth", results, "--set", "model.hidden=16"))
    assert "does not fit convlstm as configured here: cells.0.x_conv.weight is [32, 32, 3, 3] in the checkpoint, " \
           "[64, 32, 3, 3] here (and 2 more)" in err and "--set model.KEY=VALUE" in err
    err = one_line_error(bench, *import_args(convlstm, FOLDER / "convlstm.pth", results, "--set", "model.patch_size=2"))
    assert "cell_list.0.conv_x.0.weight has 32 channels along dimension 1 where cells.0.x_conv.weight has 8" in err
    mmvp = PREDICTIONS["cases"]["mmvp"]
    err = one_line_error(bench, *import_args({**mmvp, "model": "simvp2"}, FOLDER / "mmvp.pth", results))
    assert "is not OpenSTL's simvp2: it has dec.outc.bias" in err and "and lacks" in err
    for stem, other in (("prednet", "crevnet"), ("crevnet", "prednet"), ("wast", "simvp2")):
        case = PREDICTIONS["cases"][stem]
        err = one_line_error(bench, *import_args({**case, "model": other}, FOLDER / case["file"], results))
        assert f"{case['file']} is not OpenSTL's {other}: " in err
    crevnet = PREDICTIONS["cases"]["crevnet"]
    err = one_line_error(bench, *import_args({**crevnet, "dataset": "taxibj"}, FOLDER / "crevnet.pth", results))
    assert "does not fit crevnet as configured here: predictor.cells.0.fuse.weight is [32, 64, 1, 1, 1] in the " \
           "checkpoint, [64, 128, 1, 1, 1] here" in err  # CrevNet's width is 32 x the frame's channels
    err = one_line_error(bench, *import_args({**convlstm, "model": "srvp"}, FOLDER / "convlstm.pth", results))
    assert "bench import openstl maps into" in err and "not into srvp" in err
    assert not results.exists() or not any(results.rglob("config.yaml"))  # nothing half-imported


def test_files_that_are_not_plain_checkpoints_are_refused(bench, tmp_path):
    case = PREDICTIONS["cases"]["convlstm"]
    pickled = tmp_path / "pickled.pth"
    torch.save({"state_dict": PREDICTIONS["cases"], "args": Path("x")}, pickled)  # a Python object besides tensors
    err = one_line_error(bench, *import_args(case, pickled, tmp_path))
    assert "holds Python objects besides tensors (pathlib.PosixPath), which vpbench does not unpickle" in err
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(b"not a checkpoint")
    assert "not a checkpoint torch can read" in one_line_error(bench, *import_args(case, damaged, tmp_path))
    assert "no such file" in one_line_error(bench, *import_args(case, tmp_path / "missing.pth", tmp_path))
    err = one_line_error(bench, "import", "openstl", FOLDER / "convlstm.pth")
    assert "give --model NAME and --dataset NAME" in err


def test_the_configuration_is_openstls_for_the_model_and_data_set(tmp_path):
    """At full scale the import builds OpenSTL's configuration of the model on that data set."""
    from vpbench.reference.importing import import_config

    assert import_config("openstl", "convlstm", "kth", None, {})["model"]["patch_size"] == 2  # configs/kth
    assert import_config("openstl", "convlstm", "mmnist", None, {})["model"]["patch_size"] == 4  # configs/mmnist
    kth_vit = import_config("openstl", "simvp2", "kth", None, {"model": {"translator": "vit"}})["model"]
    assert (kth_vit["temporal_hidden"], kth_vit["spatial_layers"], kth_vit["temporal_layers"]) == (256, 2, 4)
    config = import_config("openstl", "mau", "taxibj", None, {})
    assert (config["preset"], config["model"]["sr_size"], config["train"]["epochs"]) == ("openstl", 2, 200)
    assert import_config("openstl", "prednet", "kth", None, {})["model"]["widths"] == [32, 64, 128, 256]
    assert import_config("openstl", "crevnet", "mmnist", None, {})["model"]["blocks"] == [4, 5, 3]  # hard-coded
    wast = import_config("openstl", "wast", "taxibj", None, {})["model"]  # configs/taxibj/WaST.py
    assert (wast["hidden"], wast["blocks"], wast["mlp_ratio"]) == (20, [2, 8, 2], 4.0)
    assert import_config("srvp", "srvp", "mmnist", None, {})["preset"] == "paper"
    with pytest.raises(Exception, match="stride 2"):
        import_config("openstl", "e3dlstm", "kth", None, {})
