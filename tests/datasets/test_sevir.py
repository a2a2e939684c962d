"""SEVIR from VIL HDF5 files and CATALOG.csv in SEVIR's layout (written with h5py): Earthformer's date splits
and windows, the downsampled option, one-line errors and data check."""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from helpers.format_writers import write_sevir_vil
from helpers.weather_fixtures import make_sevir, sevir_event

from vpbench import config as cfg
from vpbench.datasets import build_dataset
from vpbench.metrics.nowcasting import THRESHOLDS


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_sevir(tmp_path_factory.mktemp("sevir") / "sevir")


def source(data, **sets):
    return build_dataset("sevir", cfg.dataset_config(cfg.load_preset("tiny"), "sevir", sets), data, 0)


def test_events_split_by_date_into_windows_every_12_frames(data):
    sevir = source(data, downsample=1, val_sequences=None, test_sequences=None)
    # 2 events before 2019-01-01, 1 until 2019-06-01, 2 after; windows of 25 frames at 0, 12 and 24
    assert {s: len(c) for s, c in sevir.clips.items()} == {"train": 6, "val": 3, "test": 6}
    test = sevir.split("test")
    assert test.shape == (6, 25, 1, 384, 384) and sevir.spec.model_keys()["img_size"] == (384, 384)
    # the test events in id order: S900002 (fixture index 3), S900003 (4); the second window starts at frame 12
    np.testing.assert_array_equal(test[1, :, 0], np.moveaxis(sevir_event(3)[..., 12:37], -1, 0))
    np.testing.assert_array_equal(test[5, :, 0], np.moveaxis(sevir_event(4)[..., 24:49], -1, 0))
    context = sevir.metric_context()
    assert context["extra"] == {"nowcasting": "vil"} and context["scale"] == 255.0 and not context["eight_bit"]


def test_downsampling_averages_blocks(data):
    sevir = source(data, downsample=12, test_sequences=None)
    assert sevir.spec.height == sevir.spec.width == 32
    full = np.moveaxis(sevir_event(3)[..., :25], -1, 0).astype(np.float64)
    expected = np.round(full.reshape(25, 32, 12, 32, 12).mean(axis=(2, 4)))
    np.testing.assert_array_equal(sevir.split("test")[0, :, 0], expected)
    assert sevir.provenance["events"] == {"train": 2, "val": 1, "test": 2}


def one_line_error(bench, *args) -> str:
    code, _, err = bench(*args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_wrong_folders_missing_files_and_shapes_are_one_line_errors(bench, data, tmp_path):
    check = ("data", "check", "--dataset", "sevir", "--preset", "tiny", "--data-dir")
    assert "no CATALOG.csv in" in one_line_error(bench, *check, tmp_path)
    assert "must divide 384" in one_line_error(bench, *check, data, "--set", "dataset.downsample=5")
    broken = tmp_path / "broken"
    shutil.copytree(data, broken)
    (broken / "data" / "vil" / "2018" / "SEVIR_VIL_STORMEVENTS_2018_0101_1231.h5").unlink()
    err = one_line_error(bench, *check, broken)
    assert "SEVIR_VIL_STORMEVENTS_2018_0101_1231.h5 not found; CATALOG.csv lists it" in err
    write_sevir_vil(broken / "data" / "vil" / "2018" / "SEVIR_VIL_STORMEVENTS_2018_0101_1231.h5", ["S800001"],
                    np.zeros((1, 192, 192, 49), np.uint8))
    err = one_line_error(bench, *check, broken)
    assert "holds vil of shape (1, 192, 192, 49); expected SEVIR's VIL events uint8 [N, 384, 384, 49]" in err
    with h5py.File(broken / "data" / "vil" / "2018" / "SEVIR_VIL_STORMEVENTS_2018_0101_1231.h5", "w") as f:
        f.create_dataset("vil", data=np.zeros((1, 384, 384, 49), np.uint8))
    assert "lists rows [1] of vil/2018/" in one_line_error(bench, *check, broken)
    (broken / "CATALOG.csv").write_text("id,img_type\nS1,vil\n")
    assert "no column file_name, file_index, time_utc, pct_missing" in one_line_error(bench, *check, broken)


def test_data_check_lists_the_splits(bench, data):
    code, out, err = bench("data", "check", "--dataset", "sevir", "--data-dir", data.parent, "--preset", "tiny")
    assert code == 0, err
    assert "13 -> 12 VIL frames of 32x32 (downsample 12), windows every 12 frames" in out
    assert "CATALOG.csv: 5 complete VIL events in 2 files" in out
    assert "train        2        6  up to 2019-01-01" in out and "test         2        4  after 2019-06-01" in out


@pytest.mark.slow
def test_persistence_and_convgru_train_and_evaluate_with_the_nowcasting_metrics(bench, data, tmp_path):
    code, _, err = bench("run", "--models", "persistence,convgru", "--dataset", "sevir", "--data-dir", data,
                         "--preset", "tiny", "--epochs", "1", "--results-dir", tmp_path / "results")
    assert code == 0, err
    found = (tmp_path / "results").rglob("metrics.json")
    metrics = {m["model"]: m for m in (json.loads(path.read_text()) for path in found)}
    assert set(metrics) == {"persistence", "convgru"}
    names = [f"{s}_{t}" for s in ("csi", "pod", "far", "bias", "hss") for t in THRESHOLDS]
    for m in metrics.values():
        assert set(names) | {"csi_m", "csi_m_pool4", "csi_m_pool16"} <= set(m) and m["shape"] == [1, 32, 32]
    # persistence repeats the last input frame (VIL >= 5 x 12 everywhere in the test events): every pixel is an
    # event at 16 in forecast and truth alike, a hit
    persistence = metrics["persistence"]
    assert persistence["csi_16"] == pytest.approx(1, abs=1e-3) and persistence["pod_16"] == pytest.approx(1, abs=1e-3)
    assert persistence["far_16"] == pytest.approx(0, abs=1e-3) and "wrmse" not in persistence  # no latitudes
    code, _, err = bench("report", "--results-dir", tmp_path / "results", "--out", tmp_path / "report")
    assert code == 0, err
    page = (tmp_path / "report" / "sevir.md").read_text()
    assert "| Model | 16 | 74 | 133 | 160 | 181 | 219 | CSI-M | CSI-M pool 4 | CSI-M pool 16 |" in page
    assert "**CSI-M by lead time**" in page and "| Model | +5 min | +10 min |" in page
    assert len(list((tmp_path / "report").glob("sevir-tiny-*-thresholds.png"))) == 1
