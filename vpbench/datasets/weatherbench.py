"""WeatherBench (Rasp et al. 2020) as OpenSTL sets it up: ``weatherbench``, 12 -> 12 hourly global fields.

``--data-dir`` is the folder of one resolution as WeatherBench distributes it (e.g. ``weather_5.625deg/``), or
OpenSTL's data root holding ``weather_5_625deg/`` (or ``weather/``): one folder per variable of yearly NetCDF
files, ``<folder>/<folder>_<year>_<resolution>deg.nc`` (``2m_temperature/2m_temperature_2016_5.625deg.nc``),
each holding one field of dims time x lat x lon (pressure-level fields: time x level x lat x lon), read with
xarray's ``h5netcdf`` engine (NetCDF-4; ``pip install 'vpbench[weather]'``; NetCDF-3 files with ``scipy``).

Setups (``--set dataset.variable=NAME dataset.resolution=DEG``), OpenSTL's ``dataset_constant.py``:

* ``t2m`` (2 m temperature, K), ``r`` (relative humidity at the file's last level, 1000 hPa, %), ``uv10``
  (10 m wind u and v, two channels, m/s), ``tcc`` (total cloud cover, 0-1): hourly frames, training years
  2010-2015, validation 2016, test 2017-2018;
* ``mv`` (OpenSTL's ``mv_4_s6``): r, t, u and v at 150, 500 and 850 hPa (12 channels), a frame every 6 hours,
  training years 1979-2015; OpenSTL predicts 4 -> 4 (``--set dataset.input_frames=4 dataset.output_frames=4``).

Resolutions 5.625 (32 x 64), 2.8125 (64 x 128) and 1.40625 degrees (128 x 256). As OpenSTL: the series drops
its last hour before taking every ``step``-th one, and every window of T consecutive frames is a sequence but
the last one.

Normalisation: OpenSTL feeds models z-scores (value - mean) / std with the training set's mean and std per
channel. vpbench's sequences are 8-bit frames in [0, 1], so each channel is mapped by the training set's
minimum and maximum, an affine map of those z-scores (values outside the training range are clipped); the
quantisation adds an error of at most half a step, (max - min) / 510 (about 0.25 K for t2m). Metrics see
physical values through :meth:`Weatherbench.metric_context` (offset = minimum, scale = maximum - minimum per
channel), with the latitude weights and the training-set climatology (time mean per grid point).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from vpbench.datasets.base import DataSpec, Option, ReferenceTable, array_digest, positive_int
from vpbench.datasets.indexed import IndexedClips
from vpbench.datasets.registry import register_dataset
from vpbench.datasets.video.catalogue import spread
from vpbench.errors import UserError

RESOLUTIONS = {5.625: (32, 64), 2.8125: (64, 128), 1.40625: (128, 256)}
SPLITS = ("train", "val", "test")
MV_LEVELS = (150, 500, 850)  # hPa, OpenSTL's multi-variable levels
ENGINES = ("h5netcdf", "scipy")  # NetCDF-4 (HDF5), NetCDF-3


@dataclass(frozen=True)
class Field:
    """One field of a WeatherBench folder: ``<folder>/<folder>_<year>_<res>deg.nc`` holds variable ``name``."""

    folder: str
    name: str
    units: str


@dataclass(frozen=True)
class Setup:
    """One of OpenSTL's WeatherBench setups: its fields, the levels read of pressure-level fields (None: the
    file's last level), its years and hours between frames."""

    fields: tuple[Field, ...]
    years: tuple[str, str, str]  # train, val, test
    step: int
    levels: tuple[int, ...] | None = None

    @property
    def channels(self) -> tuple[str, ...]:
        if self.levels is None:
            return tuple(f.name for f in self.fields)
        return tuple(f"{f.name}{level}" for f in self.fields for level in self.levels)

    @property
    def units(self) -> str:
        units = dict.fromkeys(f"{f.name}: {f.units}" if len(self.fields) > 1 else f.units for f in self.fields)
        return ", ".join(units)


T2M, R = Field("2m_temperature", "t2m", "K"), Field("relative_humidity", "r", "%")
U10, V10 = Field("10m_u_component_of_wind", "u10", "m/s"), Field("10m_v_component_of_wind", "v10", "m/s")
TCC = Field("total_cloud_cover", "tcc", "0-1")
T, U, V = Field("temperature", "t", "K"), Field("u_component_of_wind", "u", "m/s"), Field("v_component_of_wind", "v",
                                                                                           "m/s")
OPENSTL_YEARS = ("2010-2015", "2016", "2017-2018")
SETUPS = {
    "t2m": Setup((T2M,), OPENSTL_YEARS, 1),
    "r": Setup((R,), OPENSTL_YEARS, 1),
    "uv10": Setup((U10, V10), OPENSTL_YEARS, 1),
    "tcc": Setup((TCC,), OPENSTL_YEARS, 1),
    "mv": Setup((R, T, U, V), ("1979-2015", "2016", "2017-2018"), 6, MV_LEVELS),
}


def _xarray():
    try:
        import xarray
    except ImportError:
        raise UserError("weatherbench reads NetCDF with xarray and h5netcdf: pip install 'vpbench[weather]'") from None
    return xarray


def parse_years(text: str, what: str) -> list[int]:
    """``"2010-2015"`` -> [2010, ..., 2015]; ``"2016"`` -> [2016]."""
    first, _, last = str(text).partition("-")
    try:
        years = list(range(int(first), int(last or first) + 1))
    except ValueError:
        years = []
    if not years:
        raise UserError(f"dataset.{what}={text!r}: expected a year or a range of years, e.g. 2010-2015")
    return years


def find_root(data_dir: Path | None, setup: Setup, resolution: float) -> Path:
    """The folder holding the variable folders: ``data_dir`` itself or OpenSTL's ``weather_<res>deg``."""
    folder = setup.fields[0].folder
    if data_dir is None:
        raise UserError(f"weatherbench needs --data-dir: the folder with WeatherBench's variable folders, e.g. "
                        f"weather_{resolution}deg/ holding {folder}/{folder}_<year>_{resolution}deg.nc")
    tag = str(resolution).replace(".", "_")
    for root in (data_dir, data_dir / f"weather_{tag}deg", data_dir / f"weather_{resolution}deg", data_dir / "weather"):
        if (root / folder).is_dir():
            return root
    raise UserError(f"weatherbench: no folder {folder}/ in {data_dir} (nor in its weather_{tag}deg/); expected "
                    f"WeatherBench's {folder}/{folder}_<year>_{resolution}deg.nc files")


def year_files(root: Path, field: Field, years: list[int], resolution: float, split: str) -> list[Path]:
    """The files of ``years``; a one-line error naming every missing one."""
    paths = [root / field.folder / f"{field.folder}_{year}_{resolution}deg.nc" for year in years]
    missing = [str(year) for year, path in zip(years, paths) if not path.is_file()]
    if missing:
        raise UserError(f"weatherbench: {field.folder}/ in {root} has no file for {', '.join(missing)} "
                        f"({field.folder}_<year>_{resolution}deg.nc); the {split} years are {years[0]}-{years[-1]}")
    return paths


def open_netcdf(path: Path):
    """The xarray dataset of a NetCDF file: NetCDF-4 (HDF5, as WeatherBench's) with h5netcdf, NetCDF-3 with
    scipy; times are left undecoded (not read)."""
    xarray = _xarray()
    for engine in ENGINES:
        try:
            return xarray.open_dataset(path, engine=engine, decode_times=False)
        except Exception:  # noqa: BLE001  each engine raises several types for a file it cannot read
            continue
    raise UserError(f"{path}: cannot be read as NetCDF (neither NetCDF-4 nor NetCDF-3); re-download it")


def read_field(path: Path, field: Field, levels: tuple[int, ...] | None, shape: tuple[int, int]
               ) -> tuple[np.ndarray, np.ndarray]:
    """One yearly file: values float32 [T, C, H, W] (C: the levels read, 1 for a surface field) and the
    latitudes [H] in degrees."""
    with open_netcdf(path) as dataset:
        if field.name not in dataset.data_vars:
            raise UserError(f"{path}: no variable {field.name!r} (it has: {', '.join(map(str, dataset.data_vars))}); "
                            f"expected WeatherBench's {field.folder} file")
        data = dataset[field.name]
        dims = tuple(map(str, data.dims))
        expected = ("time", "level", "lat", "lon") if "level" in dims else ("time", "lat", "lon")
        if dims != expected or data.shape[-2:] != shape:
            raise UserError(f"{path}: {field.name} has dims {' x '.join(dims)} of shape {tuple(data.shape)}; "
                            f"expected time x lat x lon (or time x level x lat x lon) with lat x lon = "
                            f"{shape[0]} x {shape[1]}")
        if "level" in dims:
            found = [int(v) for v in data["level"].values]
            wanted = [found[-1]] if levels is None else list(levels)
            absent = [str(v) for v in wanted if v not in found]
            if absent:
                raise UserError(f"{path}: no level {', '.join(absent)} hPa (it has: {', '.join(map(str, found))})")
            values = data.sel(level=wanted).values
        else:
            values = data.values[:, None]
        return values.astype(np.float32), np.asarray(dataset["lat"].values, np.float64)


def read_split(root: Path, setup: Setup, years: list[int], resolution: float, split: str
               ) -> tuple[np.ndarray, np.ndarray]:
    """A split's series float32 [T, C, H, W] (every ``step``-th hour, the last hour dropped as OpenSTL does)
    and its latitudes [H]."""
    shape = RESOLUTIONS[resolution]
    channels, lat = [], None
    for field in setup.fields:
        parts = [read_field(path, field, setup.levels, shape)
                 for path in year_files(root, field, years, resolution, split)]
        lat = parts[0][1]
        channels.append(np.concatenate([values for values, _ in parts]))
    lengths = {len(c) for c in channels}
    if len(lengths) > 1:
        raise UserError(f"weatherbench: the {split} years of {', '.join(f.folder for f in setup.fields)} in {root} "
                        f"hold different numbers of hours ({', '.join(str(len(c)) for c in channels)}); "
                        "they must come from one download")
    return np.concatenate(channels, axis=1)[:-1 : setup.step], lat


def channel_statistics(series: np.ndarray) -> tuple[np.ndarray, ...]:
    """Of a training series [T, C, H, W], per channel (float64): mean and std (OpenSTL's normalisation), minimum
    and maximum [C], and the climatology, the time mean per grid point [C, H, W]."""
    stats = [(c.mean(dtype=np.float64), c.std(dtype=np.float64), c.min(), c.max(), c.mean(axis=0, dtype=np.float64))
             for c in np.moveaxis(series, 1, 0)]
    return tuple(np.array([s[k] for s in stats], np.float64) for k in range(5))


def quantise(series: np.ndarray, low: np.ndarray, span: np.ndarray) -> np.ndarray:
    """float [T, C, H, W] -> uint8 frames: (value - low) / span per channel, clipped to [0, 1], on 0-255."""
    scaled = (series - low[:, None, None]) / span[:, None, None]
    return np.round(np.clip(scaled, 0, 1) * 255).astype(np.uint8)


class Weatherbench(IndexedClips):
    """Each split's hourly series as 8-bit frames in memory; a clip is a window of T consecutive frames."""

    def __init__(self, spec: DataSpec, config: Mapping[str, Any], data_dir: Path | None, seed: int):
        self.spec, self.seed = spec, seed
        self.setup = SETUPS[config["variable"]]
        resolution = float(config["resolution"])
        self.root = find_root(data_dir, self.setup, resolution)
        self.years = {split: parse_years(config[f"{split}_years"] or default, f"{split}_years")
                      for split, default in zip(SPLITS, self.setup.years)}
        series, lat = {}, None
        for split in SPLITS:
            series[split], lat = read_split(self.root, self.setup, self.years[split], resolution, split)
        self.mean, self.std, self.low, high, self.climatology = channel_statistics(series["train"])
        self.span = np.where(high > self.low, high - self.low, 1.0)
        weights = np.cos(np.deg2rad(lat))
        self.lat_weights = weights / weights.mean()
        self.series = [quantise(series[split], self.low, self.span) for split in SPLITS]
        length = spec.total_frames
        counts = {"train": None, "val": config["val_sequences"], "test": config["test_sequences"]}
        self.clips = {}
        for i, split in enumerate(SPLITS):
            starts = np.arange(max(0, len(self.series[i]) - length))  # OpenSTL leaves the last window out
            if not len(starts):
                raise UserError(f"weatherbench: the {split} years {config[f'{split}_years'] or self.setup.years[i]} "
                                f"hold {len(self.series[i])} frames; windows of {length} need at least {length + 1}")
            starts = spread(starts, counts[split])
            self.clips[split] = np.stack([np.full(len(starts), i), starts], axis=1)
        self.train_sequences = config["train_sequences"]
        digest = array_digest(self.split("test"))
        setup = f"{config['variable']} at {resolution} deg"
        self.provenance = {
            "kind": "weatherbench", "data_dir": str(self.root), "variable": config["variable"],
            "resolution": resolution, "channels": list(self.setup.channels), "units": self.setup.units,
            "years": {s: f"{y[0]}-{y[-1]}" for s, y in self.years.items()}, "frame_minutes": 60 * self.setup.step,
            "train_mean": self.mean.tolist(), "train_std": self.std.tolist(),
            "clips": {s: len(c) for s, c in self.clips.items()}, "test_sequences": len(self.clips["test"]),
            "test_sha256": digest,
            "label": f"weatherbench test set [{digest[:8]}]: {len(self.clips['test'])} windows of {setup}, "
                     f"{self.years['test'][0]}-{self.years['test'][-1]}",
        }

    def gather(self, rows: np.ndarray) -> np.ndarray:
        length = self.spec.total_frames
        return np.stack([self.series[which][start : start + length] for which, start in rows])

    def metric_context(self) -> dict[str, Any]:
        """Physical values (offset + scale x frame per channel), latitude weights and the training climatology."""
        return {"channels": self.setup.channels, "units": self.setup.units, "eight_bit": False,
                "offset": tuple(self.low.tolist()), "scale": tuple(self.span.tolist()),
                "lat_weights": self.lat_weights, "extra": {"climatology": self.climatology}}


def shape(config: Mapping[str, Any]) -> tuple[int, int, int]:
    return (len(SETUPS[config["variable"]].channels), *RESOLUTIONS[float(config["resolution"])])


def inspect(root: Path | None, config: Mapping[str, Any], spec: DataSpec) -> tuple[list[str], list[str]]:
    """``bench data check``: the folder, the fields, and the years, frames and windows of each split."""
    source = Weatherbench(spec, config, root, 0)
    setup = source.setup
    lines = [f"{spec.name} in {source.root}: {config['variable']} at {config['resolution']} deg, "
             f"{spec.input_frames} -> {spec.output_frames} frames of {spec.channels}x{spec.height}x{spec.width}, "
             f"every {setup.step} h",
             f"  fields: {', '.join(f'{f.folder}/{f.name}' for f in setup.fields)}; channels "
             f"{', '.join(setup.channels)} ({setup.units})",
             f"  training mean {', '.join(f'{v:.4g}' for v in source.mean)}, std "
             f"{', '.join(f'{v:.4g}' for v in source.std)}",
             "", f"{'split':<6} {'years':<10} {'frames':>8} {'windows':>8}"]
    for i, split in enumerate(SPLITS):
        years = source.years[split]
        lines.append(f"{split:<6} {f'{years[0]}-{years[-1]}':<10} {len(source.series[i]):>8} "
                     f"{len(source.clips[split]):>8}")
    return lines, []


def years_option(split: str) -> Option:
    return Option(None, f"{split} years, e.g. 2010-2015 (null: the setup's, OpenSTL's)", kind=str, nullable=True)


OPTIONS = {
    "variable": Option("t2m", "the setup: t2m, r, uv10, tcc (hourly) or mv (12 channels, 6-hourly)", kind=str,
                       choices=tuple(SETUPS)),
    "resolution": Option(5.625, "degrees of the grid: 5.625 (32x64), 2.8125 (64x128) or 1.40625 (128x256)",
                         kind=float, choices=tuple(RESOLUTIONS)),
    **{f"{split}_years": years_option(split) for split in SPLITS},
    "train_sequences": positive_int({"paper": None, "quick": 800, "tiny": 16}, "training windows per epoch, a new "
                                    "random subset each epoch (null: every window)", nullable=True),
    "val_sequences": positive_int({"paper": 1000, "quick": 64, "tiny": 2}, "validation windows, evenly spaced "
                                  "(null: every window)", nullable=True),
    "test_sequences": positive_int({"paper": None, "quick": 256, "tiny": 4}, "test windows, evenly spaced (null: "
                                   "every window, as OpenSTL)", nullable=True),
}

# OpenSTL's published WeatherBench benchmark (docs/en/model_zoos/weather_benchmarks.md: 12 -> 12 hourly, 50
# epochs, single GPU at 5.625 deg, 4 GPUs at 1.40625): (MSE, MAE, RMSE) in physical units, MSE and MAE the means
# per grid value over the test set and RMSE the root of that MSE. Rows by model name. As published, two rows of
# the r table (PredRNN++, MIM) repeat ConvLSTM's and E3D-LSTM's, and MIM's tcc row E3D-LSTM's. The multi-variable
# tables (sums over variables at 4 -> 4, 6-hourly) are not comparable with scores over all channels: left out.
OPENSTL_VALUES = {
    "t2m@5.625": {
        "convlstm": (1.521, 0.7949, 1.233), "e3dlstm": (1.592, 0.8059, 1.262), "phydnet": (285.9, 8.737, 16.91),
        "stlstm": (1.331, 0.7246, 1.154), "causallstm": (1.634, 0.7883, 1.278), "mim": (1.784, 0.8716, 1.336),
        "mau": (1.251, 0.7036, 1.119), "predrnnv2": (1.545, 0.7986, 1.243), "simvp": (1.238, 0.7037, 1.113),
        "simvp2": (1.105, 0.6567, 1.051), "tau": (1.162, 0.6707, 1.078),
    },
    "t2m@1.40625": {
        "convlstm": (1.0625, 0.6517, 1.031), "phydnet": (297.34, 8.9788, 17.243), "stlstm": (0.8966, 0.5869, 0.9469),
        "causallstm": (0.8538, 0.5708, 0.924), "mim": (1.2138, 0.6857, 1.1017), "mau": (1.0031, 0.6316, 1.0016),
        "predrnnv2": (1.0451, 0.619, 1.0223), "simvp": (0.8492, 0.5636, 0.9215), "simvp2": (0.6499, 0.4909, 0.8062),
        "tau": (0.8316, 0.5615, 0.9119),
    },
    "r@5.625": {
        "convlstm": (35.146, 4.012, 5.928), "e3dlstm": (36.534, 4.1, 6.044), "phydnet": (239.0, 8.975, 15.46),
        "stlstm": (37.611, 4.096, 6.133), "causallstm": (35.146, 4.012, 5.928), "mim": (36.534, 4.1, 6.044),
        "mau": (34.529, 4.004, 5.876), "predrnnv2": (36.508, 4.087, 6.042), "simvp": (34.355, 3.994, 5.861),
        "simvp2": (31.426, 3.765, 5.606), "tau": (31.831, 3.818, 5.642),
    },
    "uv10@5.625": {
        "convlstm": (1.8976, 0.9215, 1.3775), "e3dlstm": (2.4111, 1.0342, 1.5528),
        "phydnet": (16.798, 2.9208, 4.0986), "stlstm": (1.881, 0.9068, 1.3715),
        "causallstm": (1.8727, 0.9019, 1.3685), "mim": (3.1399, 1.1837, 1.772), "mau": (1.9001, 0.9194, 1.3784),
        "predrnnv2": (2.0072, 0.9413, 1.4168), "simvp": (1.9993, 0.951, 1.414), "simvp2": (1.5069, 0.8142, 1.2276),
        "tau": (1.5925, 0.8426, 1.2619),
    },
    "tcc@5.625": {
        "convlstm": (0.04944, 0.15419, 0.22234), "e3dlstm": (0.05729, 0.15293, 0.23936),
        "phydnet": (0.09913, 0.22614, 0.31485), "stlstm": (0.05504, 0.15877, 0.23461),
        "causallstm": (0.05479, 0.15435, 0.23407), "mim": (0.05729, 0.15293, 0.23936),
        "mau": (0.04955, 0.15158, 0.2226), "predrnnv2": (0.05051, 0.15867, 0.22475),
        "simvp": (0.04765, 0.15029, 0.21829), "simvp2": (0.04657, 0.14688, 0.2158),
        "tau": (0.04723, 0.14604, 0.21733),
    },
}
PUBLISHED_COLUMNS = ("mse", "mae", "rmse")


def setup_key(variable: str, resolution: float) -> str:
    """``t2m@5.625``: the key of a setup's published table."""
    return f"{variable}@{float(resolution):g}"


OPENSTL_TABLES = {
    key: ReferenceTable(f"openstl-weatherbench-{key.replace('@', '-')}",
                        f"OpenSTL's WeatherBench {key.replace('@', ' at ')} deg (12 → 12 hourly), 50 epochs", (12, 12),
                        columns=PUBLISHED_COLUMNS, protocol="openstl", convention="physical",
                        rows={m: dict(zip(PUBLISHED_COLUMNS, v)) for m, v in rows.items()})
    for key, rows in OPENSTL_VALUES.items()
}

register_dataset("weatherbench", description="WeatherBench 12->12 hourly global fields (t2m, r, uv10, tcc, mv) at "
                                             "5.625/2.8125/1.40625 deg (needs --data-dir with its NetCDF folders)",
                 frames=(12, 12), shape=shape, options=OPTIONS, inspect=inspect, rank=46)(Weatherbench)
