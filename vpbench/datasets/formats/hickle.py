"""hickle files read with h5py: the arrays and lists of strings of PredNet's KITTI files (``X_train.hkl``,
``sources_train.hkl``, ...), without the hickle package.

A hickle file is an HDF5 file whose values sit in an HDF5 dataset; where depends on the hickle version that
wrote it:

* hickle 1.x: the datasets ``/data`` (the values) and ``/type``;
* hickle 2.x (file attribute ``VERSION`` 2 or 3; PredNet's released files, written under Python 2): the
  dataset ``/data_0``, whose attribute ``type`` names what it held (``ndarray``, ``<type 'list'>``); a list
  of strings is one dataset of fixed-length byte strings;
* hickle 4 and later (file attribute ``HICKLE_VERSION``): the dataset ``/data``, or for a list the group
  ``/data`` with one dataset per item (``data0``, ``data1``, ...: a string as a row of bytes, an item equal to
  an earlier one as a reference to it).

Python types that hickle 4+ records as pickles are never read. An uncompressed array is memory-mapped, so
a 2.5 GB ``X_train.hkl`` costs nothing until its frames are read.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vpbench.errors import UserError


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - a required dependency
        raise UserError("reading hickle (.hkl) files needs h5py: pip install h5py") from None
    return h5py


def _value(h5file, path: Path):
    """The dataset (or hickle 4+ list group) holding the file's value."""
    attrs = h5file.attrs
    if "HICKLE_VERSION" in attrs:
        name = "data"
    elif "VERSION" in attrs:
        name = "data_0"
    elif "data" in h5file and "type" in h5file:
        name = "data"
    else:
        raise UserError(f"{path}: an HDF5 file that hickle did not write (no VERSION or HICKLE_VERSION attribute, "
                        "no data or data_0 dataset); expected PredNet's hickle file")
    node = h5file.get(name)
    if node is None:
        raise UserError(f"{path}: a hickle file without its {name!r} dataset; re-download it")
    return node


def _open(path: Path):
    h5py = _h5py()
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise UserError(f"{path}: cannot be read as HDF5 ({err}); expected a hickle file, re-download it") from None


def read_array(path: Path) -> np.ndarray:
    """The numeric array of a hickle file: memory-mapped when stored contiguous and uncompressed, else read."""
    h5py = _h5py()
    with _open(path) as h5file:
        node = _value(h5file, path)
        if not isinstance(node, h5py.Dataset) or node.dtype.kind not in "biuf":
            kind = "a list" if isinstance(node, h5py.Group) else f"{node.dtype} values"
            raise UserError(f"{path}: holds {kind}, not an array of numbers; expected PredNet's frames (X_*.hkl)")
        offset = node.id.get_offset()
        if node.size and node.chunks is None and offset is not None:
            return np.memmap(path, dtype=node.dtype, mode="r", offset=offset, shape=node.shape)
        return node[()]


def _text(h5file, node, h5py) -> str:
    """One list item of hickle 4+: a row of bytes, a scalar string, or a reference to an earlier item."""
    if h5py.check_dtype(ref=node.dtype) is not None:
        return _text(h5file, h5file[node[()]], h5py)
    value = node[()]
    if isinstance(value, np.ndarray):
        value = b"".join(np.asarray(value, dtype="S1").ravel())
    return value.decode() if isinstance(value, bytes) else str(value)


def read_strings(path: Path) -> list[str]:
    """The list of strings of a hickle file (PredNet's ``sources_*.hkl``: one recording name per frame)."""
    h5py = _h5py()
    with _open(path) as h5file:
        node = _value(h5file, path)
        if isinstance(node, h5py.Group):  # hickle 4+: one dataset per item
            items = sorted(node.values(), key=lambda item: int(item.attrs.get("item_index",
                                                                              item.name.rsplit("data", 1)[-1])))
            return [_text(h5file, item, h5py) for item in items]
        if node.dtype.kind not in "SUO" or node.ndim != 1:
            raise UserError(f"{path}: holds {node.dtype} values of shape {node.shape}, not a list of strings; "
                            "expected PredNet's sources_*.hkl")
        return [v.decode() if isinstance(v, bytes) else str(v) for v in node[()]]
