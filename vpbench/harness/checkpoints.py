"""A run folder's checkpoints, read back: for ``bench eval``, ``bench predict`` and ``bench run --init``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from vpbench.errors import UserError
from vpbench.store import RunDir


def finished_run(path: str | Path) -> RunDir:
    """The run folder at ``path``, checked to hold a configuration and a checkpoint to evaluate."""
    run = RunDir(Path(path).expanduser())
    if not run.exists("config.yaml"):
        raise UserError(f"{run.path} is not a run folder (no config.yaml); give a folder of "
                        "results/<dataset>/<model>/<run id>")
    if not (run.exists("checkpoints/best.pt") or run.exists("checkpoints/last.pt")):
        raise UserError(f"{run.path} has no checkpoint to evaluate (checkpoints/best.pt); did the run train?")
    return run


def checkpoint_of(run: RunDir) -> tuple[str, dict[str, Any]]:
    """The run's best checkpoint (its last one when no epoch has finished validating), and its name."""
    name = "best.pt" if run.exists("checkpoints/best.pt") else "last.pt"
    return name, run.load_torch(f"checkpoints/{name}")


def initial_weights(path: str | Path, model: str) -> dict[str, Any]:
    """``bench run --init RUN``: the weights of RUN's best checkpoint (its last when none is best), checked to be a
    run of ``model``."""
    run = finished_run(path)
    trained = run.read_yaml("config.yaml")["model"]["name"]
    if trained != model:
        raise UserError(f"--init {path}: a run of {trained}, not of {model}; give a run of the model you train")
    return checkpoint_of(run)[1]["model"]
