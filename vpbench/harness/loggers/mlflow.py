"""``--logger mlflow``: an MLflow run in a local store (needs ``mlflow``).

The store is ``<run>/logs/mlflow.db`` with artifacts beside it (``mlflow ui --backend-store-uri
sqlite:///<run>/logs/mlflow.db``), or under ``logger.dir``; ``MLFLOW_TRACKING_URI`` points it at a server or
another store instead. The experiment is ``vpbench-<dataset>`` (``MLFLOW_EXPERIMENT_NAME`` overrides it). Step
values are sent in batches; test metrics per predicted frame are ``test_frame/<metric>`` with the frame as step.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from vpbench.harness.loggers.base import Logger, flat_config, run_name
from vpbench.store import RunDir

BATCH = 1000  # MLflow's most metrics per request
PARAM_BATCH = 100  # and parameters
PARAM_LENGTH = 6000  # and characters of a parameter's value


class MlflowLogger(Logger):
    def __init__(self, root: Path, name: str, config: Mapping[str, Any]) -> None:
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            root.mkdir(parents=True, exist_ok=True)
            uri = f"sqlite:///{root.resolve() / 'mlflow.db'}"
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # its lines on creating a store
        self.client = MlflowClient(tracking_uri=uri)
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME", f"vpbench-{config['dataset']['name']}")
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(
            experiment, artifact_location=None if os.environ.get("MLFLOW_TRACKING_URI") else
            (root.resolve() / "mlartifacts").as_uri())
        self.run_id = self.client.create_run(experiment_id, run_name=name).info.run_id
        params = [Param(k, str(v)[:PARAM_LENGTH]) for k, v in flat_config(config).items()]
        for start in range(0, len(params), PARAM_BATCH):
            self.client.log_batch(self.run_id, params=params[start:start + PARAM_BATCH])
        self.client.log_text(self.run_id, yaml.safe_dump(dict(config), sort_keys=False), "config.yaml")
        self.pending: list[Metric] = []

    def _flush(self) -> None:
        for start in range(0, len(self.pending), BATCH):
            self.client.log_batch(self.run_id, metrics=self.pending[start:start + BATCH])
        self.pending = []

    def scalars(self, values: Mapping[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self.pending += [Metric(k, float(v), now, step) for k, v in values.items()]
        if len(self.pending) >= BATCH:
            self._flush()

    def image(self, tag: str, picture: np.ndarray, step: int) -> None:
        self._flush()
        self.client.log_image(self.run_id, picture, key=tag, step=step)

    def framewise(self, values: Mapping[str, np.ndarray]) -> None:
        now = int(time.time() * 1000)
        self.pending += [Metric(f"test_frame/{m}", float(v), now, t + 1) for m, per in values.items()
                         for t, v in enumerate(per)]
        self._flush()

    def close(self) -> None:
        self._flush()
        self.client.set_terminated(self.run_id)


def open_logger(root: Path, run: RunDir, config: Mapping[str, Any]) -> Logger:
    return MlflowLogger(root if root == run.path / "logs" else root / "mlflow", run_name(run, config), config)
