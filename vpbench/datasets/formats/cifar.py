"""CIFAR-10's python batches (``cifar-10-batches-py/data_batch_1`` ... ``data_batch_5``, ``test_batch``), read
with an unpickler that builds nothing but numpy arrays, lists, dicts, strings and numbers.

Each batch is a pickle (protocol 2, written by Python 2) of a dict with ``data`` (uint8 [10000, 3072]: the red,
green and blue planes of 32x32 images, row-major), ``labels``, ``batch_label`` and ``filenames``. A pickle runs
whatever its ``find_class`` lets it import; this one allows only what a numpy array's pickle needs (numpy's
array reconstructor, ``ndarray``, ``dtype``, and ``_codecs.encode`` for bytes pickled by Python 3) and
refuses any other global with a one-line error, before anything runs.
"""
from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path

import numpy as np

from vpbench.errors import UserError

SIZE = 32
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's array reconstructor, whatever module it lives in
ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler whose only globals are those of :data:`ALLOWED`."""

    def find_class(self, module: str, name: str):
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: only numpy arrays, lists, dicts, "
                                         "strings and numbers are read") from None


def load_batch(path: Path) -> np.ndarray:
    """The images of one CIFAR-10 python batch: uint8 [N, 32, 32, 3] (RGB)."""
    try:
        raw = path.read_bytes()
        batch = ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err})") from None
    except pickle.UnpicklingError as err:
        raise UserError(f"{path}: not a CIFAR-10 python batch ({err}); re-download cifar-10-python.tar.gz") from None
    except Exception as err:  # a damaged pickle raises many types
        raise UserError(f"{path}: not a CIFAR-10 python batch ({type(err).__name__}: {err}); "
                        "re-download cifar-10-python.tar.gz") from None
    data = batch.get(b"data", batch.get("data")) if isinstance(batch, dict) else None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIZE * SIZE:
        shape = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise UserError(f"{path}: its 'data' is {shape}; expected CIFAR-10's uint8 images of shape [N, 3072]")
    return np.ascontiguousarray(data.reshape(-1, 3, SIZE, SIZE).transpose(0, 2, 3, 1))
