"""A run folder from elsewhere never runs code: a checkpoint holding a pickled object is refused by ``bench eval``,
``bench predict`` and ``bench run --resume`` (one line, exit 2) without being unpickled."""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vpbench.store import RunDir, iter_runs

TINY = ["--dataset", "mmnist", "--preset", "tiny"]


class Payload:
    """Unpickling it creates the file ``marker``: what a malicious checkpoint could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.fixture
def planted(tiny_results, tmp_path) -> tuple[RunDir, Path]:
    """A copy of the tiny convgru run whose best.pt and last.pt carry a :class:`Payload`, and its marker."""
    results = Path(shutil.copytree(tiny_results, tmp_path / "results"))
    run = next(r for r in iter_runs(results) if r.path.parent.name == "convgru")
    marker = tmp_path / "the payload ran"
    for name in ("best.pt", "last.pt"):
        checkpoint = torch.load(run.file(f"checkpoints/{name}"), weights_only=True)
        torch.save({**checkpoint, "note": Payload(marker)}, run.file(f"checkpoints/{name}"))
    return run, marker


def test_the_payload_runs_when_unpickled(tmp_path):
    """The planted object does what the tests below show never happens."""
    pickle.loads(pickle.dumps(Payload(tmp_path / "ran")))
    assert (tmp_path / "ran").exists()


def _refused(code: int, err: str, name: str, marker: Path) -> None:
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"checkpoints/{name}: holds Python objects besides tensors (io.open), which vpbench does not unpickle" in err
    assert not marker.exists()


def test_eval_refuses_a_checkpoint_holding_a_pickled_object(planted, bench):
    run, marker = planted
    _refused(*bench("eval", run.path)[::2], "best.pt", marker)
    assert not run.file("evaluations").exists()


def test_predict_refuses_a_checkpoint_holding_a_pickled_object(planted, bench, tmp_path):
    run, marker = planted
    np.save(tmp_path / "frames.npy", np.zeros((10, 64, 64), np.uint8))
    _refused(*bench("predict", run.path, "--input", tmp_path / "frames.npy", "--out", tmp_path / "out")[::2],
             "best.pt", marker)
    assert not (tmp_path / "out").exists()


def test_resume_refuses_a_checkpoint_holding_a_pickled_object(planted, bench):
    run, marker = planted
    run.set_status("interrupted")
    code, _, err = bench("run", "--models", "convgru", *TINY, "--results-dir", run.path.parents[2], "--resume")
    _refused(code, err, "last.pt", marker)
    assert "run without --resume" in err


def test_a_checkpoint_of_tensors_and_plain_values_loads(tiny_results):
    """What vpbench writes (model, optimiser and schedule states, RNG state, history) needs no unpickling."""
    run = next(r for r in iter_runs(tiny_results) if r.path.parent.name == "convgru")
    last = run.load_torch("checkpoints/last.pt")
    assert isinstance(last["torch_rng"], torch.Tensor) and last["epoch"] == len(last["history"]) >= 1
    assert set(last["model"]) == set(run.load_torch("checkpoints/best.pt")["model"])
