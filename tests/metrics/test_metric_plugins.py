"""Metrics from outside the package: a metric file loaded through VPBENCH_PLUGINS, an entry point of the group
``vpbench.metrics`` and a ``module:function`` spec are computed by ``bench run`` and ``bench eval``, stored per
frame and shown by ``bench report``; a plug-in that raises costs its own column only; a bad name is one line."""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vpbench import plugins
from vpbench.metrics import registry

EXAMPLE = Path(__file__).parents[2] / "examples" / "custom_metric" / "max_error.py"  # README: Adding a metric
METRIC_FILE = EXAMPLE.read_text() + '''


def broken(pred, target, context):
    raise RuntimeError("the plug-in's own bug")


def dataset_length(pred, target, context):
    """len(context.dataset) for every frame: what the context says, in a value."""
    return np.full(pred.shape[:2], float(len(context.dataset)))
'''


@pytest.fixture
def metric_plugins(tmp_path, monkeypatch) -> Path:
    """A folder holding ``mylab_metrics.py`` (on sys.path, named in VPBENCH_PLUGINS) and an installed
    distribution whose ``vpbench.metrics`` entry point names one of its functions; the registry is loaded afresh
    for the test and restored after it."""
    registry.metric_names()  # the built-in metrics register into the registry kept after the test
    folder = tmp_path / "mylab"
    folder.mkdir()
    (folder / "mylab_metrics.py").write_text(textwrap.dedent(METRIC_FILE))
    info = folder / "mylab_metrics-0.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mylab-metrics\nVersion: 0.2\n")
    (info / "entry_points.txt").write_text("[vpbench.metrics]\nname_length = mylab_metrics:dataset_length\n")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv(plugins.ENVIRONMENT, "mylab_metrics")
    monkeypatch.setattr(registry, "_METRICS", dict(registry._METRICS))
    monkeypatch.setattr(registry, "_UNAVAILABLE", dict(registry._UNAVAILABLE))
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(plugins, "_env_imported", False)
    plugins._distributions.cache_clear()
    yield folder
    plugins._distributions.cache_clear()
    sys.modules.pop("mylab_metrics", None)  # the next test imports its own copy, which registers afresh


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def test_a_metric_file_outside_the_package_is_run_stored_and_reported(metric_plugins, bench, own_results, tmp_path):
    """A new persistence run beside older runs (convgru, persistence) made without the plug-in."""
    code, out, err = bench("list", "metrics")
    assert code == 0, err
    assert "maxerr             Max error              lower is better   external: mylab_metrics:max_abs_error" in out
    assert "name_length" in out and "external: mylab_metrics:dataset_length" in out
    results = own_results
    older = set(results.glob("mmnist/persistence/*"))
    code, out, err = bench("run", "--models", "persistence", "--dataset", "mmnist", "--preset", "tiny",
                           "--results-dir", results)
    assert code == 0, err
    (run,) = set(results.glob("mmnist/persistence/*")) - older
    metrics = _metrics(run)
    with np.load(run / "per_sequence.npz") as data:
        names, per_frame = list(data["metrics"]), data["per_frame"]
    assert names == ["mse", "mae", "psnr", "ssim", "ssim_openstl", "maxerr", "name_length"]
    maxerr, mse = per_frame[..., names.index("maxerr")], per_frame[..., names.index("mse")]
    assert np.all(maxerr >= np.sqrt(mse) - 1e-9) and np.all(maxerr <= 255)  # max |e| >= RMS error, per frame
    assert np.all(per_frame[..., names.index("name_length")] == len("mmnist"))
    assert metrics["maxerr"] == pytest.approx(maxerr.mean()) and metrics["name_length"] == len("mmnist")
    framewise = pd.read_csv(run / "framewise.csv")
    assert framewise["maxerr"].tolist() == pytest.approx(maxerr.mean(axis=0).tolist())

    reports = tmp_path / "reports"
    code, out, err = bench("report", "--results-dir", results, "--out", reports)
    assert code == 0, err
    page = (reports / "mmnist.md").read_text()
    assert "| Model | n | Max error ↓ | name_length ↓ |" in page
    assert f"| Persistence | 1 | **{maxerr.mean():.4f}** | **6.0000** |" in page
    assert "| ConvGRU | 0 | - | - |" in page  # an older run: without the plug-in's columns, still reported
    long = pd.read_csv(reports / "mmnist-framewise.csv")
    assert long[long["metric"] == "maxerr"]["value"].tolist() == pytest.approx(maxerr.mean(axis=0).tolist())


def test_eval_takes_metrics_a_raising_plugin_is_recorded_and_a_bad_name_is_one_line(metric_plugins, bench,
                                                                                     own_results, tmp_path):
    run = next(own_results.glob("mmnist/convgru/*"))
    code, out, err = bench("eval", run, "--metrics", "mse,maxerr,mylab_metrics:broken")
    assert code == 0, err
    folder = Path(out.strip().splitlines()[-1].removeprefix("evaluation: "))
    metrics = _metrics(folder)
    assert [k for k in ("mse", "mae", "psnr", "ssim", "maxerr", "broken") if k in metrics] == ["mse", "maxerr", "broken"]
    assert metrics["mse"] == pytest.approx(_metrics(run)["mse"]) and metrics["broken"] is None
    assert metrics["metric_warnings"] == ["metric 'broken' (mylab_metrics:broken) failed: RuntimeError: the plug-in's "
                                          "own bug; its values are NaN"]
    assert "warning: metric 'broken'" in out
    framewise = pd.read_csv(folder / "framewise.csv")
    assert list(framewise.columns) == ["frame", "mse", "maxerr", "broken"] and framewise["broken"].isna().all()
    code, out, err = bench("eval", run, "--metrics", "mse,nope")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "unknown metric 'nope'; the metrics are: mse, mae, psnr, ssim, ssim_openstl, " in err
    assert ", maxerr, " in err  # the built-in metrics of weather and radar data (rmse, csi_16, ...) between them
    code, out, err = bench("run", "--models", "persistence", "--dataset", "mmnist", "--preset", "tiny",
                           "--metrics", "mylab_metrics:absent", "--results-dir", tmp_path / "fresh")
    assert code == 2 and "module 'mylab_metrics' has no attribute 'absent'" in err
    assert not (tmp_path / "fresh").exists()
