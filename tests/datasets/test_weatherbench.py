"""WeatherBench from yearly NetCDF-4 files in WeatherBench's layout (written with h5py): OpenSTL's setups,
physical values through the metric context, one-line errors, data check and tiny runs."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers.format_writers import write_netcdf, write_netcdf3
from helpers.weather_fixtures import LAT_5625, LON_5625, field_values, make_weatherbench

from vpbench import config as cfg
from vpbench.datasets import build_dataset, dataset_entry
from vpbench.metrics.registry import MetricContext


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_weatherbench(tmp_path_factory.mktemp("weather") / "weather_5.625deg")


def source(data, **sets):
    return build_dataset("weatherbench", cfg.dataset_config(cfg.load_preset("tiny"), "weatherbench", sets), data, 0)


def physical(source, frames: np.ndarray) -> np.ndarray:
    context = MetricContext("weatherbench", **source.metric_context())
    return context.physical(frames / 255.0)


def test_t2m_windows_hold_the_years_of_each_split_in_physical_units(data):
    wb = source(data, test_sequences=None, val_sequences=None)
    assert wb.spec.model_keys()["img_size"] == (32, 64) and wb.spec.channels == 1
    # 6 training years of 30 hours, the last hour dropped (OpenSTL): 179 frames, 179 - 24 windows (not the last)
    assert {s: len(c) for s, c in wb.clips.items()} == {"train": 155, "val": 5, "test": 35}
    test = physical(wb, wb.split("test"))  # [35, 24, 1, 32, 64]; 2017's 30 hours, then 2018's
    step = wb.metric_context()["scale"][0] / 255
    np.testing.assert_allclose(test[0, :, 0], field_values(30, 2017)[:24], atol=step / 2 + 1e-4)
    # the last window ends on 2018's hour 27: its hour 29 is dropped and the window up to 28 left out
    np.testing.assert_allclose(test[-1, -1, 0], field_values(30, 2018)[27], atol=step / 2 + 1e-4)
    context = wb.metric_context()
    assert context["units"] == "K" and context["channels"] == ("t2m",) and not context["eight_bit"]
    train = np.concatenate([field_values(30, y) for y in range(2010, 2016)])[:-1]
    assert context["offset"][0] == pytest.approx(train.min(), rel=1e-6)
    assert wb.mean[0] == pytest.approx(train.mean(dtype=np.float64), rel=1e-6)  # OpenSTL's normalisation
    assert wb.std[0] == pytest.approx(train.std(dtype=np.float64), rel=1e-5)
    np.testing.assert_allclose(context["extra"]["climatology"][0], train.mean(axis=0, dtype=np.float64), rtol=1e-6)
    weights = context["lat_weights"]
    assert weights.mean() == pytest.approx(1) and weights[16] / weights[0] == pytest.approx(
        np.cos(np.deg2rad(LAT_5625[16])) / np.cos(np.deg2rad(LAT_5625[0])))
    assert wb.provenance["years"] == {"train": "2010-2015", "val": "2016-2016", "test": "2017-2018"}


def test_the_other_setups_channels_and_levels(data):
    humidity = source(data, variable="r")  # the file's last level (1000 hPa): 1000 x index 4 above the base
    assert humidity.metric_context()["offset"][0] == pytest.approx(4250 + 10 * np.cos(np.deg2rad(87.1875)), rel=1e-6)
    wind = source(data, variable="uv10")
    assert wind.spec.channels == 2 and wind.metric_context()["channels"] == ("u10", "v10")
    assert wind.split("test").shape == (4, 24, 2, 32, 64)
    entry = dataset_entry("weatherbench")
    assert entry.spec(entry.config("tiny", {"variable": "mv", "resolution": 1.40625})).channels == 12
    assert entry.spec(entry.config("tiny", {"resolution": 1.40625})).height == 128


def test_netcdf3_files_are_read_too(tmp_path):
    for year in range(2010, 2019):
        write_netcdf3(tmp_path / "total_cloud_cover" / f"total_cloud_cover_{year}_5.625deg.nc", "tcc",
                      field_values(30, year, base=0.0) / 100, LAT_5625, LON_5625, np.arange(30.0))
    cloud = source(tmp_path, variable="tcc")
    assert cloud.metric_context()["units"] == "0-1" and cloud.split("test").shape == (4, 24, 1, 32, 64)
    assert cloud.mean[0] == pytest.approx(np.concatenate([field_values(30, y, base=0.0) / 100 for y in
                                                          range(2010, 2016)])[:-1].mean(), rel=1e-5)


def test_mv_reads_three_levels_of_four_fields_every_six_hours(tmp_path):
    fields = {"relative_humidity": "r", "temperature": "t", "u_component_of_wind": "u", "v_component_of_wind": "v"}
    root = tmp_path / "mv"
    for folder, name in fields.items():
        for year in range(2014, 2017):
            write_netcdf(root / folder / f"{folder}_{year}_5.625deg.nc", name, field_values(60, year, 5),
                         LAT_5625, LON_5625, np.arange(60), levels=(50, 150, 500, 850, 1000))
    mv = source(root, variable="mv", input_frames=4, output_frames=4, train_years="2014", val_years="2015",
                test_years="2016")
    assert mv.spec.channels == 12 and mv.metric_context()["channels"][:4] == ("r150", "r500", "r850", "t150")
    assert len(mv.series[0]) == 10  # hours 0, 6, ..., 54 of 59 (the last dropped)
    assert mv.metric_context()["offset"][1] - mv.metric_context()["offset"][0] == pytest.approx(1000, abs=1e-3)


def one_line_error(bench, *args) -> str:
    code, _, err = bench(*args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_wrong_folders_missing_variables_years_and_shapes_are_one_line_errors(bench, data, tmp_path):
    check = ("data", "check", "--dataset", "weatherbench", "--preset", "tiny", "--data-dir")
    err = one_line_error(bench, *check, tmp_path)
    assert "no folder 2m_temperature/" in err and "2m_temperature_<year>_5.625deg.nc" in err
    err = one_line_error(bench, *check, data, "--set", "dataset.variable=tcc")
    assert "no folder total_cloud_cover/" in err
    err = one_line_error(bench, *check, data, "--set", "dataset.test_years=2017-2020")
    assert "has no file for 2019, 2020 (2m_temperature_<year>_5.625deg.nc); the test years are 2017-2020" in err
    err = one_line_error(bench, *check, data, "--set", "dataset.resolution=1.40625")
    assert "no file for 2010, 2011, 2012, 2013, 2014, 2015 (2m_temperature_<year>_1.40625deg.nc)" in err
    assert "must be t2m, r, uv10, tcc or mv" in one_line_error(bench, *check, data, "--set", "dataset.variable=z")
    small = make_weatherbench(tmp_path / "small", fields={"2m_temperature": "t2m"})
    write_netcdf(small / "2m_temperature" / "2m_temperature_2016_5.625deg.nc", "t2m", np.zeros((30, 16, 32)),
                 LAT_5625[::2], LON_5625[::2], np.arange(30))
    err = one_line_error(bench, *check, small)
    assert "2m_temperature_2016_5.625deg.nc: t2m has dims time x lat x lon of shape (30, 16, 32)" in err
    write_netcdf(small / "2m_temperature" / "2m_temperature_2016_5.625deg.nc", "temperature", np.zeros((30, 32, 64)),
                 LAT_5625, LON_5625, np.arange(30))
    assert "no variable 't2m' (it has: temperature)" in one_line_error(bench, *check, small)
    (small / "2m_temperature" / "2m_temperature_2016_5.625deg.nc").write_bytes(b"not netcdf")
    assert "cannot be read as NetCDF" in one_line_error(bench, *check, small)
    run = ("run", "--models", "persistence", "--dataset", "weatherbench", "--preset", "tiny", "--results-dir",
           tmp_path / "r")
    assert "weatherbench needs --data-dir" in one_line_error(bench, *run)
    assert not list((tmp_path / "r").rglob("*.json"))  # no run recorded


def test_data_check_lists_the_splits(bench, data):
    code, out, err = bench("data", "check", "--dataset", "weatherbench", "--data-dir", data.parent, "--preset", "tiny",
                           "--set", "dataset.variable=uv10")
    assert code == 0, err
    assert "uv10 at 5.625 deg, 12 -> 12 frames of 2x32x64, every 1 h" in out
    assert "10m_u_component_of_wind/u10, 10m_v_component_of_wind/v10" in out
    assert "train  2010-2015       179      155" in out and "test   2017-2018        59        4" in out


@pytest.mark.slow
def test_persistence_and_convgru_train_and_evaluate_with_the_weather_metrics(bench, data, tmp_path):
    code, _, err = bench("run", "--models", "persistence,convgru", "--dataset", "weatherbench", "--data-dir", data,
                         "--preset", "tiny", "--epochs", "1", "--set", "dataset.test_sequences=1", "--results-dir",
                         tmp_path / "results")
    assert code == 0, err
    found = (tmp_path / "results").rglob("metrics.json")
    metrics = {m["model"]: m for m in (json.loads(path.read_text()) for path in found)}
    assert set(metrics) == {"persistence", "convgru"}
    for m in metrics.values():
        assert {"rmse", "wrmse", "acc", "mse", "mae"} <= set(m) and m["shape"] == [1, 32, 64]
    # the fixture warms every grid value by 1 K an hour: on the test window of 2017's first 24 hours persistence
    # is k K off at lead k (up to the 8-bit steps)
    persistence = metrics["persistence"]
    assert persistence["rmse"] == pytest.approx(6.5, abs=0.2) and persistence["wrmse"] == pytest.approx(6.5, abs=0.2)
    assert persistence["mae"] == pytest.approx(6.5, abs=0.2) and persistence["mse"] == pytest.approx(650 / 12, rel=0.05)
    framewise = pd.read_csv(next((tmp_path / "results" / "weatherbench" / "persistence").rglob("framewise.csv")))
    np.testing.assert_allclose(framewise["rmse"], np.arange(1, 13), atol=0.2)
    assert "csi_m" not in persistence  # not radar data
    code, _, err = bench("report", "--results-dir", tmp_path / "results", "--out", tmp_path / "report")
    assert code == 0, err
    page = (tmp_path / "report" / "weatherbench.md").read_text()
    assert "**RMSE (K)**" in page and "| Persistence | 1.000 | 2.000 | 3.000 |" in page and "**ACC**" in page
    assert "| ConvLSTM | published | 1.521 | 0.7949 | 1.233 |" in page  # OpenSTL's t2m at 5.625 degrees
    assert len(list((tmp_path / "report").glob("weatherbench-tiny-*-lead-times.png"))) == 1
