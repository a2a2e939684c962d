"""Experiment trackers a run also writes to (``bench run --logger tensorboard,wandb,mlflow``).

The run folder stays the record of a run; a tracker only shows its progress in the tool a researcher already
uses: training loss and learning rate per step, validation values and a sample prediction strip per epoch, the
configuration as hyperparameters, and the test metrics (means and per predicted frame) at the end. One file per
tracker, each a :class:`~vpbench.harness.loggers.base.Logger` whose package is imported only when it is chosen.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Mapping

from vpbench.errors import UserError
from vpbench.harness.loggers.base import Logger, Tracker, log_root
from vpbench.store import RunDir

# name -> (module of vpbench.harness.loggers, the package it needs, what to pip install)
LOGGERS: dict[str, tuple[str, str, str]] = {
    "tensorboard": ("tensorboard", "tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow", "mlflow"),
}


def parse_loggers(text: str | None) -> list[str]:
    """``"tensorboard,wandb"`` -> ``["tensorboard", "wandb"]``; ``"none"`` (or nothing) -> ``[]``. Each chosen
    tracker's package must be installed: else a one-line error naming what to pip install."""
    names = list(dict.fromkeys(n.strip().lower() for n in (text or "none").split(",") if n.strip()))
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in LOGGERS]
    if unknown or not names:
        raise UserError(f"--logger {text!r}: choose none or one or more of {', '.join(LOGGERS)}, comma-separated, "
                        "e.g. --logger tensorboard,wandb")
    for name in names:
        _, package, install = LOGGERS[name]
        if importlib.util.find_spec(package) is None:
            raise UserError(f"--logger {name} needs the {package} package, which is not installed: "
                            f"pip install {install} (or pip install 'vpbench[loggers]'), or leave {name} out")
    return names


def open_tracker(run: RunDir, config: Mapping[str, Any], warn: Any) -> Tracker:
    """The trackers of ``config['logger']['use']`` opened for ``run`` (none: a tracker that does nothing).
    ``warn``: called with one line when a tracker cannot start or fails later; it is left out, the run goes on."""
    section = config.get("logger") or {}
    loggers: list[Logger] = []
    for name in section.get("use", []):
        module = importlib.import_module(f"{__name__}.{LOGGERS[name][0]}")
        try:
            loggers.append(module.open_logger(log_root(run, section), run, config))
        except Exception as err:  # noqa: BLE001  a tracker that cannot start (a server, a disk) leaves the run alone
            warn(f"logger {name} could not start ({type(err).__name__}: {err}); the run goes on without it")
    return Tracker(loggers, warn)


__all__ = ["LOGGERS", "Logger", "Tracker", "open_tracker", "parse_loggers"]
