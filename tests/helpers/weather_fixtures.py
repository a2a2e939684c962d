"""Small WeatherBench and SEVIR folders in their distributed formats, with values a test can predict."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers.format_writers import write_netcdf, write_sevir_catalog, write_sevir_vil

LAT_5625 = np.arange(32) * 5.625 - 87.1875  # WeatherBench's 5.625-degree grid
LON_5625 = np.arange(64) * 5.625
LEVELS = (50, 150, 500, 850, 1000)
WEATHER_FIELDS = {"2m_temperature": "t2m", "relative_humidity": "r", "10m_u_component_of_wind": "u10",
                  "10m_v_component_of_wind": "v10"}


def field_values(hours: int, year: int, levels: int = 0, base: float = 250.0) -> np.ndarray:
    """float32 [hours, (levels,) 32, 64]: ``base`` + the hour of the year + 10 x the row's cosine of latitude
    + 2 x (the year mod 3) + 1000 x the level's index (the training years cover every test value)."""
    grid = base + 10 * np.cos(np.deg2rad(LAT_5625))[:, None] + np.zeros((32, 64))
    series = grid + np.arange(hours)[:, None, None] + 2.0 * (year % 3)
    if levels:
        series = series[:, None] + 1000.0 * np.arange(levels)[None, :, None, None]
    return series.astype(np.float32)


def make_weatherbench(root: Path, years=range(2010, 2019), hours: int = 30,
                      fields: dict[str, str] = WEATHER_FIELDS) -> Path:
    """``root/<folder>/<folder>_<year>_5.625deg.nc`` for each field and year, ``hours`` hourly values a year;
    pressure-level fields (relative humidity) hold ``LEVELS``."""
    for folder, name in fields.items():
        for year in years:
            levels = LEVELS if folder == "relative_humidity" else None
            write_netcdf(root / folder / f"{folder}_{year}_5.625deg.nc", name,
                         field_values(hours, year, len(levels) if levels else 0), LAT_5625, LON_5625,
                         np.arange(hours) + (year - 1979) * 8760, levels)
    return root


SEVIR_EVENTS = {  # event id -> (time_utc, file year): train before 2019-01-01, val until 2019-06-01, test after
    "S800001": ("2018-05-01 10:00:00", 2018), "S800002": ("2018-07-04 12:00:00", 2018),
    "S900001": ("2019-03-01 08:00:00", 2019), "S900002": ("2019-07-01 20:00:00", 2019),
    "S900003": ("2019-08-01 20:00:00", 2019),
}


def sevir_event(index: int, size: int = 384) -> np.ndarray:
    """uint8 [size, size, 49]: frame t of event ``index`` is 5 x t + index everywhere, a ramp over rows."""
    frames = 5 * np.arange(49)[None, None, :] + index + np.zeros((size, size, 1))
    return np.clip(frames + np.arange(size)[:, None, None], 0, 255).astype(np.uint8)


def make_sevir(root: Path, size: int = 384, events: dict[str, tuple[str, int]] = SEVIR_EVENTS) -> Path:
    """``root/CATALOG.csv`` and ``root/data/vil/<year>/SEVIR_VIL_STORMEVENTS_<year>_0101_1231.h5``: every event
    of ``events`` as VIL frames of ``size`` x ``size``, one file a year; a catalogue row of
    another image type (ir069) that is not read."""
    rows, by_year = [], {}
    for i, (event, (time, year)) in enumerate(events.items()):
        by_year.setdefault(year, []).append((event, i))
    for year, members in by_year.items():
        name = f"vil/{year}/SEVIR_VIL_STORMEVENTS_{year}_0101_1231.h5"
        write_sevir_vil(root / "data" / name, [e for e, _ in members],
                        np.stack([sevir_event(i, size) for _, i in members]))
        rows += [{"id": e, "file_name": name, "file_index": k, "img_type": "vil", "time_utc": events[e][0],
                  "event_type": "Thunderstorm Wind", "pct_missing": 0} for k, (e, _) in enumerate(members)]
    rows.append({"id": "S800001", "file_name": "ir069/2018/SEVIR_IR069_STORMEVENTS_2018_0101_1231.h5",
                 "file_index": 0, "img_type": "ir069", "time_utc": "2018-05-01 10:00:00", "pct_missing": 0})
    write_sevir_catalog(root / "CATALOG.csv", rows)
    return root
