"""The weather and nowcasting section of a page: tables by lead time and threshold with units, figures, and
OpenSTL's published WeatherBench values beside ours computed as OpenSTL does."""
from __future__ import annotations

import numpy as np
import pytest

from vpbench.datasets.weatherbench import OPENSTL_TABLES, setup_key
from vpbench.metrics.nowcasting import THRESHOLDS
from vpbench.report.weather import lead_labels, lead_time_table, published_comparison, threshold_table, weather_section

# two sequences, three lead times: RMSE 1, 2, 3 and 3, 4, 5 -> means 2, 3, 4; OpenSTL's MSE = mean RMSE^2 = 64 / 6
RMSE = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
WEATHER = {"ConvLSTM": {"rmse": RMSE, "wrmse": RMSE / 2, "acc": np.full((2, 3), 0.5), "mae": RMSE / 4}}


def test_lead_labels_in_hours_or_minutes():
    assert lead_labels(3, 60) == ["+1 h", "+2 h", "+3 h"]
    assert lead_labels(2, 360) == ["+6 h", "+12 h"]
    assert lead_labels(3, 5) == ["+5 min", "+10 min", "+15 min"]


def test_lead_time_table_means_over_sequences():
    lines = lead_time_table(WEATHER, "rmse", 60, "K")
    assert lines[0] == "| Model | +1 h | +2 h | +3 h | mean |"
    assert lines[2] == "| ConvLSTM | 2.000 | 3.000 | 4.000 | 3.000 |"
    assert lead_time_table(WEATHER, "csi_m", 60, "") == []  # not stored


def test_published_values_beside_ours_as_openstl_computes_them():
    table = OPENSTL_TABLES[setup_key("t2m", 5.625)]
    lines = published_comparison(WEATHER, table, {"convlstm": "ConvLSTM"}, "K")
    assert "| Model |  | MSE (K²) | MAE (K) | RMSE (K) |" in lines
    assert "| ConvLSTM | published | 1.521 | 0.7949 | 1.233 |" in lines
    ours = f"| ConvLSTM | ours | {64 / 6:.4g} | 0.75 | {np.sqrt(64 / 6):.4g} |"
    assert lines[lines.index("| ConvLSTM | published | 1.521 | 0.7949 | 1.233 |") + 1] == ours
    lines = published_comparison({"Persistence": WEATHER["ConvLSTM"]}, table, {}, "K")
    assert lines[-1] == ours.replace("ConvLSTM", "Persistence")  # a model OpenSTL does not list comes last
    assert OPENSTL_TABLES["t2m@1.40625"].rows["simvp2"] == {"mse": 0.6499, "mae": 0.4909, "rmse": 0.8062}


def test_threshold_tables_of_the_csi_family():
    scores = {"Persistence": {f"csi_{t}": np.full((2, 3), i / 10) for i, t in enumerate(THRESHOLDS)}}
    scores["Persistence"]["csi_m"] = np.full((2, 3), 0.25)
    lines = threshold_table(scores, "csi")
    assert lines[0] == "| Model | 16 | 74 | 133 | 160 | 181 | 219 | CSI-M | CSI-M pool 4 | CSI-M pool 16 |"
    assert lines[2] == "| Persistence | 0.0000 | 0.1000 | 0.2000 | 0.3000 | 0.4000 | 0.5000 | 0.2500 | - | - |"
    assert threshold_table(scores, "hss") == []


@pytest.mark.parametrize("dataset", ["weatherbench", "sevir"])
def test_sections_write_their_figures(tmp_path, dataset):
    if dataset == "weatherbench":
        scores, provenance = WEATHER, {"frame_minutes": 60, "units": "K", "variable": "t2m", "resolution": 5.625}
    else:
        names = [f"{s}_{t}" for s in ("csi", "pod", "far", "bias", "hss") for t in THRESHOLDS] + ["csi_m"]
        scores = {"UNet": {n: np.full((2, 3), 0.5) for n in names}}
        provenance = {"frame_minutes": 5, "downsample": 1, "frames": [13, 12]}
    lines = weather_section(dataset, scores, provenance, {"convlstm": "ConvLSTM"}, tmp_path / "page")
    assert (tmp_path / "page-lead-times.png").is_file()
    if dataset == "weatherbench":
        assert "**RMSE (K)**" in lines and "**ACC**" in lines and "**OpenSTL's WeatherBench t2m at 5.625 deg " \
               "(12 → 12 hourly), 50 epochs**" in lines
    else:
        assert (tmp_path / "page-thresholds.png").is_file() and "**CSI-M by lead time**" in lines
        assert "**frequency bias (1 is unbiased)**" in lines
        # Earthformer's published CSI beside ours at full resolution
        assert "| Earthformer | published | 0.4419 | 0.1791 | 0.2848 | 0.3232 | 0.4271 | 0.6860 | 0.7513 |" in lines
        assert "| UNet | ours | 0.5000 | 0.5000 | 0.5000 | 0.5000 | 0.5000 | 0.5000 | 0.5000 |" in lines
        small = weather_section(dataset, scores, {**provenance, "downsample": 4}, {}, tmp_path / "small")
        assert not any("Earthformer" in line for line in small)
    assert weather_section("mmnist", scores, provenance, {}, tmp_path / "other") == []
