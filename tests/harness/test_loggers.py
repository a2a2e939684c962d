"""``bench run --logger``: what TensorBoard, W&B (offline) and MLflow (a local store) hold after a tiny sweep,
read back with each tool's own reader and compared with the run folder; errors and the no-logger case."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vpbench.cli import main
from vpbench.harness.loggers import LOGGERS, Tracker, parse_loggers
from vpbench.harness.loggers.base import Logger

STEPS = 4  # tiny preset: 16 training sequences per epoch, batch 4, one epoch


def _sweep(results: Path, loggers: str, *extra: str, models: str = "convlstm,persistence") -> dict[str, Path]:
    """A tiny sweep with ``--logger loggers``: model -> its run folder."""
    assert main(["run", "--models", models, "--dataset", "mmnist", "--preset", "tiny", "--logger", loggers,
                 "--results-dir", str(results), *extra]) == 0
    return {m: next((results / "mmnist" / m).iterdir()) for m in models.split(",")}


def _needs(package: str) -> None:
    pytest.importorskip(package, reason=f"{package} is not installed (pip install {package})")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One tiny sweep logged to every tracker installed here (W&B offline, MLflow in the run folder)."""
    installed = [name for name, (_, package, _) in LOGGERS.items() if importlib.util.find_spec(package)]
    if not installed:
        pytest.skip("no tracker package is installed (pip install tensorboard wandb mlflow)")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_SILENT", "true")
        for name in ("WANDB_MODE", "WANDB_PROJECT", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
            patch.delenv(name, raising=False)
        return _sweep(tmp_path_factory.mktemp("logged"), ",".join(installed))


def test_tensorboard_holds_steps_epochs_images_config_and_test_metrics(runs):
    _needs("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = runs["convlstm"]
    events = EventAccumulator(str(run / "logs" / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == list(range(1, STEPS + 1))
    log = pd.read_csv(run / "train_log.csv")
    assert np.mean([e.value for e in loss]) == pytest.approx(log["train_loss"].iloc[0], rel=1e-5)
    assert events.Scalars("train/lr")[0].value == pytest.approx(log["lr"].iloc[0])
    (val,) = events.Scalars("val/mse")
    assert (val.step, val.value) == (STEPS, pytest.approx(log["val_mse"].iloc[0], rel=1e-5))
    metrics = json.loads((run / "metrics.json").read_text())
    assert events.Scalars("test/mse")[0].value == pytest.approx(metrics["mse"], rel=1e-5)
    per_frame = np.load(run / "per_sequence.npz")["per_frame"][:, :, 0].mean(axis=0)
    frames = events.Scalars("test_frame/mse")
    assert [e.step for e in frames] == list(range(1, len(per_frame) + 1))
    np.testing.assert_allclose([e.value for e in frames], per_frame, rtol=1e-5)
    (image,) = events.Images("val/sample")
    assert image.step == STEPS and image.width > image.height > 0  # three rows of frames, ten a row at most
    assert events.PluginTagToContent("hparams")  # the configuration as hyperparameters
    assert "config/text_summary" in events.Tags()["tensors"]


def test_a_model_without_training_logs_its_test_metrics(runs):
    _needs("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = runs["persistence"]
    events = EventAccumulator(str(run / "logs" / "tensorboard"))
    events.Reload()
    assert "train/loss" not in events.Tags()["scalars"]
    assert events.Scalars("test/mse")[0].value == pytest.approx(json.loads((run / "metrics.json").read_text())["mse"])


def test_logger_dir_puts_every_run_under_one_folder(tmp_path):
    _needs("tensorboard")
    runs = _sweep(tmp_path / "results", "tensorboard", "--set", f"logger.dir={tmp_path / 'tb'}", "--seeds", "0,1",
                  models="persistence")
    names = sorted(p.name for p in (tmp_path / "tb" / "tensorboard").iterdir())
    assert len(names) == 2 and all(n.startswith("mmnist-persistence-") for n in names)
    assert [n[-2:] for n in names] == ["s0", "s1"]
    assert not (runs["persistence"] / "logs").exists()


def test_wandb_offline_run_holds_steps_config_image_and_test_metrics(runs):
    _needs("wandb")
    from helpers.wandb_records import records

    run = runs["convlstm"]
    (folder,) = (run / "logs" / "wandb").glob("offline-run-*")
    found = records(next(folder.glob("run-*.wandb")))
    (header,) = [r.run for r in found if r.WhichOneof("record_type") == "run"]
    config = {item.key: json.loads(item.value_json) for item in header.config.update}
    assert config["train"]["batch_size"] == 4 and header.display_name == f"mmnist-convlstm-{run.name}"
    rows = [{(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item} for r in found
            if r.WhichOneof("record_type") == "history"]
    assert [r["_step"] for r in rows if "train/loss" in r] == list(range(1, STEPS + 1))
    assert [r["_step"] for r in rows if "val/mse" in r] == [STEPS]
    log = pd.read_csv(run / "train_log.csv")
    assert next(r["val/mse"] for r in rows if "val/mse" in r) == pytest.approx(log["val_mse"].iloc[0])
    per_frame = np.load(run / "per_sequence.npz")["per_frame"][:, :, 0].mean(axis=0)
    np.testing.assert_allclose([r["test_frame/mse"] for r in rows if "test_frame/mse" in r], per_frame, rtol=1e-6)
    assert list(folder.glob("files/media/images/val/sample_*.png"))


def test_mlflow_local_store_holds_steps_params_image_and_test_metrics(runs):
    _needs("mlflow")
    from mlflow.tracking import MlflowClient

    run = runs["convlstm"]
    client = MlflowClient(tracking_uri=f"sqlite:///{run / 'logs' / 'mlflow.db'}")
    (found,) = client.search_runs([client.get_experiment_by_name("vpbench-mmnist").experiment_id])
    assert found.info.run_name == f"mmnist-convlstm-{run.name}" and found.data.params["train.batch_size"] == "4"
    assert [m.step for m in client.get_metric_history(found.info.run_id, "train/loss")] == list(range(1, STEPS + 1))
    log = pd.read_csv(run / "train_log.csv")
    assert found.data.metrics["val/mse"] == pytest.approx(log["val_mse"].iloc[0])
    metrics = json.loads((run / "metrics.json").read_text())
    assert found.data.metrics["test/ssim"] == pytest.approx(metrics["ssim"])
    history = sorted(client.get_metric_history(found.info.run_id, "test_frame/mse"), key=lambda m: m.step)
    per_frame = np.load(run / "per_sequence.npz")["per_frame"][:, :, 0].mean(axis=0)
    np.testing.assert_allclose([m.value for m in history], per_frame, rtol=1e-6)
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id)}
    assert {"config.yaml", "images"} <= artifacts


@pytest.mark.parametrize("text, message", [
    ("tensorbord", "choose none or one or more of tensorboard, wandb, mlflow"),
    ("none,wandb", "choose none or one or more"),
])
def test_unknown_loggers_are_one_line_errors(bench, tmp_path, text, message):
    code, _, err = bench("run", "--models", "persistence", "--dataset", "mmnist", "--preset", "tiny",
                         "--logger", text, "--results-dir", tmp_path)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "mmnist").exists()


def test_a_missing_package_names_what_to_install(bench, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    code, _, err = bench("run", "--models", "persistence", "--dataset", "mmnist", "--preset", "tiny",
                         "--logger", "mlflow", "--results-dir", tmp_path)
    assert code == 2 and "pip install mlflow" in err and len(err.strip().splitlines()) == 1


def test_none_is_no_logger():
    assert parse_loggers("none") == [] and parse_loggers(None) == []


def test_no_tracker_package_is_imported_without_a_logger():
    code = ("import sys, vpbench.cli, vpbench.harness.runner, vpbench.launch, vpbench.report.build, "
            "vpbench.report.webpage; print(sorted(m for m in ('tensorboard', 'wandb', 'mlflow', 'selenium') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


class _Recording(Logger):
    def __init__(self, fail: bool = False) -> None:
        self.fail, self.seen = fail, []

    def scalars(self, values, step):
        if self.fail:
            raise OSError("disk full")
        self.seen.append((step, dict(values)))

    def image(self, tag, picture, step):
        self.seen.append((step, tag))

    def framewise(self, values):
        self.seen.append(("framewise", sorted(values)))

    def close(self):
        self.seen.append("closed")


def test_a_failing_tracker_is_dropped_with_a_warning_and_the_others_go_on():
    good, bad, warnings = _Recording(), _Recording(fail=True), []
    tracker = Tracker([bad, good], warnings.append)
    tracker.step(1, 0.5, 1e-3)
    tracker.test({"mse": 2.0, "label": "x"}, np.ones((3, 2, 1)), ("mse",))
    tracker.close()
    assert len(warnings) == 1 and "disk full" in warnings[0] and tracker.loggers == []
    assert good.seen == [(1, {"train/loss": 0.5, "train/lr": 1e-3}), (1, {"test/mse": 2.0}),
                         ("framewise", ["mse"]), "closed"]


def test_a_tracker_that_cannot_start_is_a_warning(tmp_path, monkeypatch):
    _needs("tensorboard")
    from vpbench.harness.loggers import tensorboard

    def refuse(*args):
        raise PermissionError("read-only folder")

    monkeypatch.setattr(tensorboard, "open_logger", refuse)
    run = _sweep(tmp_path, "tensorboard", models="persistence")["persistence"]
    log = (run / "log.txt").read_text()
    assert "logger tensorboard could not start (PermissionError: read-only folder)" in log
    assert json.loads((run / "metrics.json").read_text())["status"] == "finished"
