"""An imported run as a trained one: `bench eval` records its test metrics, `bench report` labels it and sets the
published values beside it, `bench predict` runs it, `bench run --init` fine-tunes it; `bench weights` lists and
fetches the published files (from a loopback mirror)."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers.http_server import serving

from vpbench.reference.weights import parse_openstl, released
from vpbench.store import RunDir

pytestmark = pytest.mark.usefixtures("one_thread")

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "openstl_checkpoints" / "mmnist_convlstm.pth"
RELEASED = "mmnist_convlstm_one_ep200"  # the name OpenSTL releases its Moving MNIST ConvLSTM-S under


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[Path, RunDir]:
    """OpenSTL's ConvLSTM (a tiny one, written by its own class) under its released file name, imported and
    evaluated: (results folder, run)."""
    from vpbench.cli import main

    root = tmp_path_factory.mktemp("imported")
    checkpoint = Path(shutil.copy(GOLDEN, root / f"{RELEASED}.pth"))
    results = root / "results"
    assert main(["import", "openstl", str(checkpoint), "--preset", "openstl-tiny", "--results-dir", str(results)]) == 0
    run = RunDir(next(results.glob("mmnist/convlstm/*-openstl-tiny-imported")))
    assert main(["eval", str(run.path)]) == 0
    return results, run


def test_a_released_file_brings_its_model_dataset_source_and_epochs(imported):
    _, run = imported
    config = run.read_yaml("config.yaml")
    assert (config["model"]["name"], config["dataset"]["name"], config["train"]["epochs"]) == ("convlstm", "mmnist", 200)
    assert config["imported"]["source"] == released()[RELEASED].url
    assert config["imported"]["description"] == "OpenSTL's released weights, 200 epochs"


def test_bench_eval_records_the_imported_runs_test_metrics_once(imported, bench):
    _, run = imported
    metrics = run.read_json("metrics.json")
    assert metrics["status"] == "finished" and metrics["imported"]["released"] is True
    assert metrics["epochs"] == 200 and metrics["mse"] > 0 and run.exists("per_sequence.npz")
    assert not (run.path / "evaluations").exists()
    code, out, _ = bench("eval", run.path)  # a second evaluation is an evaluation of its own
    assert code == 0 and "evaluations" in out
    assert run.read_json("metrics.json") == metrics


def test_the_report_labels_the_run_and_says_whether_the_published_values_reproduce(imported, bench, tmp_path):
    results, _ = imported
    code, _, err = bench("report", "--results-dir", results, "--out", tmp_path / "report")
    assert code == 0, err
    page = (tmp_path / "report" / "mmnist.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| ConvLSTM (OpenSTL's released weights"))
    assert "| 200 |" in row and "29.80" in row  # the epochs, and OpenSTL's published MSE beside the measured one
    note = next(line for line in page.splitlines() if line.startswith("- ConvLSTM: OpenSTL's released weights"))
    assert f"`{RELEASED}.pth`" in note and "bench import openstl" in note
    assert "does not reproduce the published values" in note  # random weights: far from OpenSTL's numbers


def test_bench_predict_runs_the_imported_model(imported, bench, tmp_path):
    _, run = imported
    frames = tmp_path / "frames.npy"
    np.save(frames, np.random.default_rng(0).integers(0, 255, (10, 64, 64), dtype=np.uint8))
    code, _, err = bench("predict", run.path, "--input", frames, "--out", tmp_path / "out")
    assert code == 0, err
    assert len(list((tmp_path / "out").glob("pred_*.png"))) == 10


def test_bench_run_init_starts_from_the_imported_weights(imported, bench, tmp_path):
    """With 0 epochs the run tests the weights it starts from: the imported run's test metrics."""
    _, run = imported
    code, out, err = bench("run", "--models", "convlstm", "--dataset", "mmnist", "--preset", "openstl-tiny",
                           "--init", run.path, "--epochs", "0", "--results-dir", tmp_path)
    assert code == 0, err
    [tuned] = [RunDir(p.parent) for p in tmp_path.glob("mmnist/convlstm/*/metrics.json")]
    assert tuned.read_yaml("config.yaml")["init"] == str(run.path.resolve())
    assert tuned.read_json("metrics.json")["mse"] == pytest.approx(run.read_json("metrics.json")["mse"], rel=1e-6)
    assert "starting from the weights of" in tuned.file("log.txt").read_text()
    code, _, err = bench("run", "--models", "stlstm", "--dataset", "mmnist", "--preset", "openstl-tiny",
                         "--init", run.path, "--epochs", "0", "--results-dir", tmp_path / "other")
    assert code == 2 and "a run of convlstm, not of stlstm" in err


def test_released_names_are_read_into_models_and_datasets():
    base = "https://github.com/chengtan9907/OpenSTL/releases/download"
    vit = parse_openstl(f"{base}/mmnist-weights/mmnist_simvp_s_vit_one_ep2000.pth")
    assert (vit.model, vit.sets, vit.dataset, vit.epochs) == ("simvp2", ("model.translator=vit",), "mmnist", 2000)
    large = parse_openstl(f"{base}/mfmnist-weights/fmnist_convlstm_l_one_ep200.pth")
    assert (large.model, large.sets, large.dataset) == ("convlstm", ("model.hidden=192",), "mfmnist")
    kth = parse_openstl(f"{base}/kth20-weights/kth20_predrnnpp_one_ep100.pth")
    assert (kth.model, kth.dataset, kth.epochs) == ("causallstm", "kth", 100)
    prednet = parse_openstl(f"{base}/kth20-weights/kth20_prednet_one_ep100.pth")  # OpenSTL v0.3.0's
    assert (prednet.model, prednet.dataset, prednet.epochs) == ("prednet", "kth", 100)
    assert {"mmnist_prednet_one_ep200", "mmnist_crevnet_one_ep200"} <= set(released())
    assert parse_openstl(f"{base}/kitti-weights/kitticaltech_tau_one_ep100.pth").dataset == "kitticaltech"
    assert parse_openstl(f"{base}/weather-5-625-weights/weather_t2m_tau_cos_ep50.pth").dataset is None


def test_bench_weights_lists_and_downloads_through_a_mirror(bench, tmp_path):
    code, out, _ = bench("weights", "list", "--dataset", "mmnist", "--model", "convlstm")
    assert code == 0
    names = re.findall(r"^(mmnist_convlstm\S*)", out, flags=re.M)
    assert names == ["mmnist_convlstm_one_ep200", "mmnist_convlstm_one_ep2000", "mmnist_convlstm_l_one_ep200"]
    code, out, _ = bench("weights", "list", "--model", "crevnet")
    assert re.findall(r"^(\S+)  crevnet  mmnist  200  ", out, flags=re.M) == ["mmnist_crevnet_one_ep200"]
    code, out, _ = bench("weights", "list", "--model", "wast")  # OpenSTL releases no WaST checkpoint
    assert code == 0 and "imports (0)" in out
    code, out, _ = bench("weights", "list")
    assert code == 0 and "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in out and "fvd-i3d" in out
    with serving(tmp_path / "served") as server:
        shutil.copy(GOLDEN, server.root / f"{RELEASED}.pth")
        code, out, err = bench("weights", "download", RELEASED, "--to", tmp_path / "weights", "--mirror", server.url)
    assert code == 0, err
    assert (tmp_path / "weights" / f"{RELEASED}.pth").read_bytes() == GOLDEN.read_bytes()
    assert f"next: bench import openstl {tmp_path / 'weights' / RELEASED}.pth --model convlstm --dataset mmnist" in out
    manifest = json.loads((tmp_path / "weights" / "vpbench-manifest.json").read_text())
    assert manifest["files"][f"{RELEASED}.pth"]["url"] == released()[RELEASED].url
    code, _, err = bench("weights", "download", "mmnist_convlstm")
    assert code == 2 and "did you mean" in err and "mmnist_convlstm_one_ep200," in err
