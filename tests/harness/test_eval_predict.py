"""Finished runs used again: ``bench eval`` on another dataset or horizon, ``bench predict`` on frames you
give, several seeds in one command, and figures for papers (PDF, SVG, GIF)."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
from PIL import Image

from vpbench.store import iter_runs

TINY = ["--dataset", "mmnist", "--preset", "tiny"]


def run_of(results, model: str):
    return next(r for r in iter_runs(results) if r.path.parent.name == model)


def test_eval_on_a_longer_horizon_is_a_generalisation_table_of_its_own(own_results, bench, tmp_path):
    run = run_of(own_results, "convgru")
    code, out, err = bench("eval", run.path, "--dataset", "mmnist-long")
    assert code == 0, err
    (folder,) = run.path.glob("evaluations/*-mmnist-long-h30")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["frames"] == [10, 30] and metrics["trained_on"] == {"dataset": "mmnist", "frames": [10, 10]}
    per_frame = np.load(folder / "per_sequence.npz")["per_frame"]
    assert per_frame.shape[1] == 30 and metrics["mse"] == pytest.approx(per_frame[..., 0].mean())
    assert bench("eval", run.path, "--horizon", "5")[0] == 0  # a second evaluation never overwrites the first
    assert len(list(run.path.glob("evaluations/*"))) == 2
    assert bench("report", "--results-dir", own_results, "--out", tmp_path / "report")[0] == 0
    page = (tmp_path / "report" / "mmnist.md").read_text()
    section = page[page.index("Trained on mmnist 10 → 10, tested on mmnist-long 10 → 30"):]
    frames = section[section.index("MSE per predicted frame"):].split("\n\n")[1].splitlines()[2:]
    assert [row.split("|")[1].strip() for row in frames] == [str(t) for t in range(1, 31)]
    assert float(frames[29].split("|")[2]) == pytest.approx(per_frame[:, 29, 0].mean(), abs=0.01)


@pytest.mark.parametrize("args, needle", [
    (["--horizon", "0"], "--horizon 0: must be at least 1 frame"),
    (["--set", "dataset.input_frames=5"], "the run was trained on 10 input frames, the test data has 5"),
    (["--set", "model.hidden=3"], "bench eval takes --set dataset.KEY=VALUE and metrics.KEY=VALUE only"),
])
def test_eval_errors_are_one_line(own_results, bench, args, needle):
    code, _, err = bench("eval", run_of(own_results, "convgru").path, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err


def test_eval_of_a_folder_that_is_not_a_run(bench, tmp_path):
    code, _, err = bench("eval", tmp_path)
    assert code == 2 and "is not a run folder (no config.yaml)" in err


def test_predict_writes_frames_a_strip_and_a_gif(tiny_results, bench, tmp_path):
    inputs = tmp_path / "frames"
    inputs.mkdir()
    for t in range(12):  # a white square moving right, on 80x80 frames: resized to the run's 64x64
        frame = np.zeros((80, 80, 3), np.uint8)
        frame[30:45, 5 + 4 * t: 20 + 4 * t] = 255
        Image.fromarray(frame).save(inputs / f"frame_{t:02d}.png")
    code, out, err = bench("predict", run_of(tiny_results, "convgru").path, "--input", inputs, "--out",
                           tmp_path / "out", "--horizon", "6")
    assert code == 0, err
    predicted = sorted((tmp_path / "out").glob("pred_*.png"))
    assert len(predicted) == 6 and Image.open(predicted[0]).size == (64, 64)
    with Image.open(tmp_path / "out" / "prediction.gif") as gif:
        assert gif.n_frames == 10 + 6  # the last 10 input frames, then 6 predicted
    assert Image.open(tmp_path / "out" / "strip.png").size == (10 * 66 - 2, 2 * 66 - 2)


def test_predict_reads_arrays_and_names_bad_input(tiny_results, bench, tmp_path):
    run = run_of(tiny_results, "convgru").path
    np.save(tmp_path / "clip.npy", np.random.default_rng(0).random((10, 1, 64, 64)))
    assert bench("predict", run, "--input", tmp_path / "clip.npy", "--out", tmp_path / "out")[0] == 0
    assert len(list((tmp_path / "out").glob("pred_*.png"))) == 10
    np.save(tmp_path / "short.npy", np.zeros((4, 64, 64), np.uint8))
    code, _, err = bench("predict", run, "--input", tmp_path / "short.npy", "--out", tmp_path / "x")
    assert code == 2 and "4 frames, but the run's model reads 10" in err
    (tmp_path / "empty").mkdir()
    code, _, err = bench("predict", run, "--input", tmp_path / "empty", "--out", tmp_path / "x")
    assert code == 2 and "no image" in err


def test_several_seeds_in_one_command(bench, tmp_path):
    code, out, err = bench("run", "--models", "persistence", *TINY, "--seeds", "0-1", "--results-dir", tmp_path)
    assert code == 0, err
    assert sorted(r.read_json("metrics.json")["seed"] for r in iter_runs(tmp_path)) == [0, 1]
    code, _, err = bench("run", "--models", "persistence", *TINY, "--seeds", "a,b", "--results-dir", tmp_path)
    assert code == 2 and "--seeds 'a,b': expected seeds >= 0" in err


def test_figures_for_papers_are_valid_pdf_svg_and_gif(own_results, bench, tmp_path):
    out = tmp_path / "report"
    code, _, err = bench("report", "--results-dir", own_results, "--out", out, "--figure-format", "png,pdf,svg")
    assert code == 0, err
    for stem in ("mmnist-tiny-", ):
        pdfs, svgs = sorted(out.glob(f"{stem}*.pdf")), sorted(out.glob(f"{stem}*.svg"))
        assert len(pdfs) == len(svgs) == 3  # the frame-wise figure, the cost-quality figure and sample 0
        for pdf in pdfs:
            data = pdf.read_bytes()
            assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
        for svg in svgs:
            assert ElementTree.parse(svg).getroot().tag.endswith("svg")
    (gif,) = out.glob("*-sample0.gif")
    with Image.open(gif) as animation:
        assert animation.n_frames == 20  # 10 input frames, then 10 predicted
    page = (out / "mmnist.md").read_text()
    assert f"]({gif.name})" in page and "[PDF](" in page and "[SVG](" in page
    code, _, err = bench("report", "--results-dir", own_results, "--out", out, "--figure-format", "png,tiff")
    assert code == 2 and "--figure-format 'png,tiff': choose from png, pdf, svg" in err
