"""The report's words on prediction quality: a warning beside a collapsed run and beside a model no better than
persistence, and why persistence can win SSIM."""
from __future__ import annotations

import json

import numpy as np

from vpbench.report.quality import COLLAPSE_RATIO, std_ratio


def _run(results, model):
    return next((results / "mmnist" / model).iterdir())


def _page(bench, results, out) -> str:
    code, _, err = bench("report", "--results-dir", results, "--out", out)
    assert code == 0, err
    return next(out.glob("mmnist*.md")).read_text()


def _scale_predictions(run, factor: float) -> float:
    """Shrink the stored predictions towards their mean by ``factor``; returns the new std ratio."""
    path = run / "samples.npz"
    with np.load(path) as stored:
        samples = dict(stored)
    predicted = samples["predictions"].astype(np.float64)
    samples["predictions"] = np.round(predicted.mean() + factor * (predicted - predicted.mean())).astype(np.uint8)
    np.savez(path, **samples)
    return samples["predictions"].astype(np.float64).std() / samples["targets"].astype(np.float64).std()


def test_std_ratio_is_the_stored_predictions_std_over_the_targets(own_results):
    run = _run(own_results, "persistence")
    with np.load(run / "samples.npz") as samples:
        expected = samples["predictions"].astype(np.float64).std() / samples["targets"].astype(np.float64).std()
    assert std_ratio(run) == np.float64(expected)
    assert std_ratio(run.parent) is None  # no samples


def test_a_collapsed_run_is_flagged_and_a_healthy_one_is_not(bench, own_results, tmp_path):
    run = _run(own_results, "convgru")
    ratio = _scale_predictions(run, 1.0)
    page = _page(bench, own_results, tmp_path / "before")
    assert ("ConvGRU seed 0: its predicted frames have" in page) == (ratio < COLLAPSE_RATIO)
    collapsed = _scale_predictions(run, 0.1 * COLLAPSE_RATIO / max(ratio, 1e-6))
    assert collapsed < COLLAPSE_RATIO
    page = _page(bench, own_results, tmp_path / "after")
    assert f"ConvGRU seed 0: its predicted frames have {collapsed:.2f} of the ground truth's" in page
    assert "Persistence seed 0: its predicted frames" not in page  # the baseline is never flagged


def test_persistence_winning_ssim_is_explained_only_when_it_wins(bench, own_results, tmp_path):
    ssim = {m: json.loads((_run(own_results, m) / "metrics.json").read_text())["ssim"]
            for m in ("convgru", "persistence")}
    sentence = "Persistence (the last input frame, repeated) has the best SSIM here"
    assert (sentence in _page(bench, own_results, tmp_path / "a")) == (ssim["persistence"] >= ssim["convgru"])
    # Make ConvGRU's per-sequence SSIM perfect: the sentence goes
    run = _run(own_results, "convgru")
    with np.load(run / "per_sequence.npz") as stored:
        arrays = dict(stored)
    arrays["per_frame"][..., [str(n) for n in arrays["metrics"]].index("ssim")] = 1.0
    np.savez(run / "per_sequence.npz", **arrays)
    assert sentence not in _page(bench, own_results, tmp_path / "b")


def test_a_model_no_better_than_persistence_is_flagged(bench, own_results, tmp_path):
    mse = {m: json.loads((_run(own_results, m) / "metrics.json").read_text())["mse"] for m in ("convgru", "persistence")}
    warning = "ConvGRU: its test MSE"
    assert (warning in _page(bench, own_results, tmp_path / "a")) == (mse["convgru"] >= mse["persistence"])
    # ConvGRU's per-sequence MSE raised far above persistence's: the warning names both means
    run = _run(own_results, "convgru")
    with np.load(run / "per_sequence.npz") as stored:
        arrays = dict(stored)
    column = [str(n) for n in arrays["metrics"]].index("mse")
    arrays["per_frame"][..., column] = 10 * arrays["per_frame"][..., column].max() + 1
    np.savez(run / "per_sequence.npz", **arrays)
    page = _page(bench, own_results, tmp_path / "b")
    assert warning in page and "is not below persistence's" in page
    assert "Persistence: its test MSE" not in page  # the baseline is never flagged
