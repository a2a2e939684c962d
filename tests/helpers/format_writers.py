"""Writers of the distributed file formats, for fixtures: hickle files in the layouts hickle 2.x (PredNet's
KITTI files, written under Python 2) and hickle 4+ leave, TFRecord files of ``tf.train.Example`` records,
CIFAR-10 python batches, NetCDF-4 files (WeatherBench's), NetCDF-3 files and SEVIR's HDF5 files and catalogue.
Each writes the format's bytes itself (with h5py for HDF5), not the reader's code."""
from __future__ import annotations

import csv
import pickle
import struct
from pathlib import Path
from typing import Mapping, Sequence

import crc32c
import h5py
import numpy as np


def write_hickle2(path: Path, value: np.ndarray | Sequence[str], version: int = 2) -> None:
    """What hickle 2.x's ``dump`` writes under Python 2: file attributes CLASS, VERSION and type, and the dataset
    ``data_0`` with attribute ``type`` (``ndarray``; a list of str is a dataset of fixed-length bytes)."""
    with h5py.File(path, "w") as f:
        f.attrs["CLASS"] = np.bytes_("hickle")
        f.attrs["VERSION"] = version
        f.attrs["type"] = np.array([b"hickle"])
        if isinstance(value, np.ndarray):
            data, kind = value, b"ndarray"
        else:
            data, kind = np.array([s.encode() for s in value]), b"<type 'list'>"
        f.create_dataset("data_0", data=data).attrs["type"] = np.array([kind])


def write_hickle5_strings(path: Path, items: Sequence[str]) -> None:
    """A list of str as hickle 5 writes it: the group ``data`` of items ``data<i>`` (a [1, n] row of single bytes
    each), a repeated string as a reference to its first item."""
    with h5py.File(path, "w") as f:
        f.attrs["HICKLE_VERSION"], f.attrs["HICKLE_PYTHON_VERSION"] = "5.0.3", "3.11.7"
        group = f.create_group("data")
        group.attrs["num_items"] = len(items)
        first: dict[str, h5py.Dataset] = {}
        for i, item in enumerate(items):
            if item in first:
                node = group.create_dataset(f"data{i}", data=first[item].ref, dtype=h5py.ref_dtype)
            else:
                node = first[item] = group.create_dataset(f"data{i}", data=np.array([list(item.encode())], "u1")
                                                          .view("S1"))
            node.attrs["item_index"] = i


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_example(features: Mapping[str, bytes | Sequence[float] | Sequence[int]]) -> bytes:
    """A serialised ``tf.train.Example``: bytes as a BytesList, floats as a packed FloatList, ints as a packed
    Int64List."""
    entries = b""
    for key, value in features.items():
        if isinstance(value, bytes):
            feature = _field(1, _field(1, value))
        elif all(isinstance(v, float) for v in value):
            feature = _field(2, _field(1, struct.pack(f"<{len(value)}f", *value)))
        else:
            feature = _field(3, _field(1, b"".join(_varint(v & (2**64 - 1)) for v in value)))
        entries += _field(1, _field(1, key.encode()) + _field(2, feature))
    return _field(1, entries)


def _masked(data: bytes) -> int:
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def write_tfrecord(path: Path, records: Sequence[bytes]) -> None:
    """TFRecord framing: length, masked CRC-32C of the length, data, masked CRC-32C of the data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for data in records:
            head = struct.pack("<Q", len(data))
            f.write(head + struct.pack("<I", _masked(head)) + data + struct.pack("<I", _masked(data)))


def write_cifar_batch(path: Path, images: np.ndarray) -> None:
    """A CIFAR-10 python batch: a protocol-2 pickle of a dict with bytes keys, ``data`` uint8 [N, 3072] (the
    red, green and blue planes of each image), ``labels``, ``batch_label`` and ``filenames``."""
    data = np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))
    batch = {b"batch_label": b"training batch 1 of 5", b"labels": [i % 10 for i in range(len(images))],
             b"data": data, b"filenames": [f"img_{i}.png".encode() for i in range(len(images))]}
    path.parent.mkdir(parents=True, exist_ok=True)
    # Python 2's numpy named its array reconstructor numpy.core.multiarray._reconstruct (numpy 2: numpy._core)
    path.write_bytes(pickle.dumps(batch, protocol=2).replace(b"cnumpy._core.multiarray", b"cnumpy.core.multiarray"))


def write_netcdf(path: Path, name: str, values: np.ndarray, lat: np.ndarray, lon: np.ndarray, hours: np.ndarray,
                 levels: Sequence[int] | None = None) -> None:
    """A NetCDF-4 file as WeatherBench's: the HDF5 dataset ``name`` (float32 [time, lat, lon], or [time, level,
    lat, lon] with ``levels``) whose dimensions are HDF5 dimension scales ``time`` (``hours`` since 1979-01-01),
    ``level`` (hPa), ``lat`` and ``lon`` (degrees)."""
    coords = {"time": np.asarray(hours, np.int64), **({"level": np.asarray(levels, np.int32)} if levels else {}),
              "lat": np.asarray(lat, np.float64), "lon": np.asarray(lon, np.float64)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for dim, axis in coords.items():
            f.create_dataset(dim, data=axis).make_scale(dim)
        f["time"].attrs["units"] = np.bytes_("hours since 1979-01-01")
        f["time"].attrs["calendar"] = np.bytes_("proleptic_gregorian")
        variable = f.create_dataset(name, data=np.asarray(values, np.float32))
        for i, dim in enumerate(coords):
            variable.dims[i].attach_scale(f[dim])


SEVIR_CATALOG_COLUMNS = ("id", "file_name", "file_index", "img_type", "time_utc", "minute_offsets", "episode_id",
                         "event_id", "event_type", "pct_missing")


def write_sevir_vil(path: Path, ids: Sequence[str], vil: np.ndarray) -> None:
    """A SEVIR VIL file: datasets ``id`` (event ids, bytes) and ``vil`` (uint8 [N, H, W, T], T = 49 frames)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("id", data=np.array([i.encode() for i in ids]))
        f.create_dataset("vil", data=vil, dtype=np.uint8)


def write_sevir_catalog(path: Path, rows: Sequence[Mapping[str, object]]) -> None:
    """SEVIR's ``CATALOG.csv``: one row per event and image type (columns ``SEVIR_CATALOG_COLUMNS``; missing
    keys are left empty)."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, SEVIR_CATALOG_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)



def _nc_name(name: str) -> bytes:
    """A NetCDF-3 name: its length, then its bytes padded to 4."""
    raw = name.encode()
    return struct.pack(">i", len(raw)) + raw + b"\0" * (-len(raw) % 4)


def write_netcdf3(path: Path, name: str, values: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                  hours: np.ndarray) -> None:
    """A NetCDF-3 classic file (magic ``CDF\\x01``, big-endian): dimensions time, lat and lon, their float64
    coordinate variables and the float32 variable ``name`` [time, lat, lon]; no attributes, no record dimension."""
    dims = {"time": np.asarray(hours), "lat": np.asarray(lat), "lon": np.asarray(lon)}
    variables = [(dim, (i,), 6, axis.astype(">f8")) for i, (dim, axis) in enumerate(dims.items())]
    variables.append((name, (0, 1, 2), 5, np.asarray(values).astype(">f4")))
    absent = struct.pack(">ii", 0, 0)
    head = b"CDF\x01" + struct.pack(">i", 0) + struct.pack(">ii", 0x0A, len(dims))
    head += b"".join(_nc_name(dim) + struct.pack(">i", len(axis)) for dim, axis in dims.items()) + absent
    entries = [_nc_name(var) + struct.pack(">i", len(ids)) + struct.pack(f">{len(ids)}i", *ids) + absent
               + struct.pack(">ii", kind, data.nbytes) for var, ids, kind, data in variables]
    offset = len(head) + 8 + sum(len(e) + 4 for e in entries)  # + the var_list tag and count, a begin per variable
    var_list, blobs = struct.pack(">ii", 0x0B, len(variables)), b""
    for entry, (_, _, _, data) in zip(entries, variables):
        var_list += entry + struct.pack(">i", offset + len(blobs))
        blobs += data.tobytes() + b"\0" * (-data.nbytes % 4)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head + var_list + blobs)
