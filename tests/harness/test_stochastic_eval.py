"""Stochastic evaluation (``--samples K``): best of K by MSE, mean of K, spread, seeded draws, the files and report
of a stochastic run, deterministic runs untouched, and the one-line errors of a bad K."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from vpbench.datasets import DataSpec
from vpbench.harness.evaluate import evaluate
from vpbench.store import iter_runs

SPEC = DataSpec(name="toy", input_frames=1, output_frames=2, channels=1, height=8, width=8)


class Coin(nn.Module):
    """A stochastic toy: each sequence's future is all zeros or all ones, by a fair coin per call."""

    def forward(self, frames: torch.Tensor, horizon: int) -> torch.Tensor:
        coin = (torch.rand(len(frames)) < 0.5).float().view(-1, 1, 1, 1, 1)
        return coin.expand(len(frames), horizon, *frames.shape[2:]).clone()


def sequences(n: int = 6) -> np.ndarray:
    """uint8 [n, 3, 1, 8, 8]: an input frame, then two target frames all 255 (even n) or all 0 (odd n)."""
    out = np.zeros((n, 3, 1, 8, 8), np.uint8)
    out[::2, 1:] = 255
    return out


def test_best_of_k_is_each_sequences_least_mse_future_and_mean_of_k_averages_the_futures():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    result = evaluate(Coin(), sequences(), SPEC, device=torch.device("cpu"), batch_size=4, draws=16, seed=0)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's generator is left as it was
    mse = result.per_frame[..., result.columns.index("mse")]
    assert np.all(mse == 0)  # with 16 draws each sequence has a right future (chance 2^-16 of missing)
    mean_mse = result.draws.mean_per_frame[..., result.columns.index("mse")]
    assert np.all((mean_mse > 0) & (mean_mse < 255**2))
    coins = mean_mse[:, 0] / 255**2  # the share of wrong futures per sequence
    spread = result.draws.spread[:, 0]
    np.testing.assert_allclose(spread, np.sqrt(coins * (1 - coins)), atol=1e-6)  # std of a 0/1 future
    summary = result.summary()
    assert summary["stochastic"]["samples"] == 16 and summary["mse"] == 0
    assert summary["stochastic"]["mean_of_k"]["mse"] == pytest.approx(mean_mse.mean())


def test_draws_are_seeded():
    def run(seed):
        return evaluate(Coin(), sequences(), SPEC, device=torch.device("cpu"), batch_size=4, draws=2, seed=seed)

    first, again, other = run(1), run(1), run(2)
    np.testing.assert_array_equal(first.draws.mean_per_frame, again.draws.mean_per_frame)
    assert not all(np.array_equal(run(s).draws.spread, first.draws.spread) for s in (2, 3, 4))
    assert other.draws.count == 2


def test_a_deterministic_evaluation_has_no_stochastic_part():
    result = evaluate(Coin(), sequences(), SPEC, device=torch.device("cpu"), batch_size=4)
    assert result.draws is None and "stochastic" not in result.summary()


def metrics_of(results, model):
    (run,) = [r for r in iter_runs(results) if r.path.parent.name == model]
    return run, json.loads((run.path / "metrics.json").read_text())


VOLATILE = {"run_id", "train_seconds", "eval_seconds"}
SMALL = ["--dataset", "mmnist", "--preset", "tiny", "--set", "dataset.test_sequences=3", "--set",
         "dataset.val_sequences=2", "--set", "dataset.train_sequences=8"]


@pytest.mark.timeout(900)  # two tiny runs, a report and three evaluations: minutes on a loaded machine
def test_a_sweep_with_samples_reports_mcvd_best_and_mean_of_k_and_leaves_persistence_as_before(bench, tmp_path):
    results, alone_results = tmp_path / "results", tmp_path / "alone"
    assert bench("run", "--models", "persistence", *SMALL, "--results-dir", alone_results)[0] == 0
    code, out, err = bench("run", "--models", "mcvd,persistence", *SMALL, "--samples", "2", "--results-dir", results)
    assert code == 0, err
    run, mcvd = metrics_of(results, "mcvd")
    assert "MCVD (best of K=2)" in out
    assert mcvd["label"] == "MCVD (best of K=2)" and mcvd["stochastic"]["samples"] == 2
    stored = np.load(run.path / "per_sequence.npz")
    assert stored["per_frame_mean_of_k"].shape == stored["per_frame"].shape and stored["spread"].shape == (3, 10)
    mse = list(stored["metrics"]).index("mse")
    assert np.all(stored["per_frame"][..., mse].mean(1) <= stored["per_frame_mean_of_k"][..., mse].mean(1) + 1e-9)
    assert mcvd["stochastic"]["spread"] == pytest.approx(stored["spread"].mean())
    _, persistence = metrics_of(results, "persistence")
    _, alone = metrics_of(alone_results, "persistence")  # the same run without --samples
    assert {k: v for k, v in persistence.items() if k not in VOLATILE} == \
           {k: v for k, v in alone.items() if k not in VOLATILE}
    persistence_run, _ = metrics_of(results, "persistence")
    assert sorted(np.load(persistence_run.path / "per_sequence.npz").files) == ["metrics", "per_frame"]
    assert bench("report", "--results-dir", results, "--out", tmp_path / "report")[0] == 0
    page = (tmp_path / "report" / "mmnist.md").read_text()
    assert "MCVD (best of K=2)" in page and "### Stochastic models" in page and "mean of K" in page
    row = next(line for line in page.splitlines() if line.startswith("| MCVD | 0 | 2 |"))
    assert float(row.split("|")[4]) == pytest.approx(mcvd["mse"], abs=0.01)
    assert float(row.split("|")[5]) == pytest.approx(mcvd["stochastic"]["mean_of_k"]["mse"], abs=0.01)
    code, out, err = bench("eval", run.path, "--samples", "3")
    assert code == 0, err
    (folder,) = run.path.glob("evaluations/*")
    assert json.loads((folder / "metrics.json").read_text())["stochastic"]["samples"] == 3
    assert "best of K=3" in out
    assert bench("eval", run.path)[0] == 0  # without --samples: the run's own K
    assert sorted(json.loads((f / "metrics.json").read_text())["stochastic"]["samples"]
                  for f in run.path.glob("evaluations/*")) == [2, 3]
    (persistence_run.path / "checkpoints").mkdir(exist_ok=True)  # persistence trains nothing: an empty checkpoint
    torch.save({"model": {}, "epoch": 0}, persistence_run.path / "checkpoints" / "best.pt")
    code, _, err = bench("eval", persistence_run.path, "--samples", "3")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "persistence is deterministic" in err, err
    assert not (persistence_run.path / "evaluations").exists()
    assert bench("eval", persistence_run.path)[0] == 0  # its config says --samples 2: it draws one, as in the run


@pytest.mark.parametrize("args, needle", [
    (["--models", "persistence", "--samples", "0"], "invalid value metrics.samples=0: must be an integer >= 1"),
    (["--models", "persistence", "--samples", "-2"], "invalid value metrics.samples=-2"),
    (["--models", "persistence,convgru", "--samples", "2"],
     "--samples 2: persistence, convgru are deterministic (one future per sequence); drop --samples"),
])
def test_bad_samples_are_one_line_errors(bench, tmp_path, args, needle):
    code, _, err = bench("run", *args, "--dataset", "mmnist", "--preset", "tiny", "--results-dir", tmp_path)
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err
    assert not any(tmp_path.iterdir())

