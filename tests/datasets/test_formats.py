"""The file-format readers on their own: hickle's layouts (1.x, 2.x, 4+), TFRecord framing and
tf.train.Example decoding, and the CIFAR unpickler's allow-list."""
from __future__ import annotations

import pickle
import struct

import h5py
import numpy as np
import pytest
from helpers.format_writers import encode_example, write_hickle2, write_hickle5_strings, write_tfrecord

from vpbench.datasets.formats import cifar, hickle, tfrecord
from vpbench.errors import UserError


@pytest.mark.parametrize("version", [2, 3])
def test_hickle_2_files_are_read_and_their_arrays_memory_mapped(tmp_path, version):
    frames = np.random.default_rng(0).integers(0, 256, (4, 8, 10, 3), dtype=np.uint8)
    write_hickle2(tmp_path / "X.hkl", frames, version)
    write_hickle2(tmp_path / "sources.hkl", ["road-a", "road-a", "city-b", "city-b"], version)
    array = hickle.read_array(tmp_path / "X.hkl")
    assert isinstance(array, np.memmap) and np.array_equal(array, frames)
    assert hickle.read_strings(tmp_path / "sources.hkl") == ["road-a", "road-a", "city-b", "city-b"]


def test_hickle_1_and_4_layouts_and_compressed_arrays(tmp_path):
    with h5py.File(tmp_path / "v1.hkl", "w") as f:  # hickle 1.x: datasets data and type
        f.create_dataset("data", data=np.arange(12, dtype=np.uint8).reshape(3, 4), compression="gzip")
        f.create_dataset("type", data=[b"ndarray"])
    assert np.array_equal(hickle.read_array(tmp_path / "v1.hkl"), np.arange(12).reshape(3, 4))
    write_hickle5_strings(tmp_path / "v5.hkl", ["a-1", "b-2", "a-1"])
    assert hickle.read_strings(tmp_path / "v5.hkl") == ["a-1", "b-2", "a-1"]


def test_files_that_are_not_what_is_expected(tmp_path):
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f.create_dataset("frames", data=np.zeros(3))
    with pytest.raises(UserError, match="an HDF5 file that hickle did not write"):
        hickle.read_array(tmp_path / "plain.h5")
    write_hickle2(tmp_path / "names.hkl", ["a", "b"])
    with pytest.raises(UserError, match=r"holds \|S1 values, not an array of numbers"):
        hickle.read_array(tmp_path / "names.hkl")
    write_hickle2(tmp_path / "X.hkl", np.zeros((2, 2), np.uint8))
    with pytest.raises(UserError, match="not a list of strings"):
        hickle.read_strings(tmp_path / "X.hkl")


def test_tfrecord_checksums_and_example_fields(tmp_path):
    assert tfrecord.crc32c.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    example = encode_example({"img": b"\x00\xff" * 3, "floats": [0.5, -2.0], "ints": [7, -1, 2**40]})
    write_tfrecord(tmp_path / "a.tfrecords", [example, b""])
    spans = tfrecord.record_spans(tmp_path / "a.tfrecords")
    assert spans == [(12, len(example)), (12 + len(example) + 16, 0)]
    features = tfrecord.parse_example(tfrecord.read_record(tmp_path / "a.tfrecords", spans[0]))
    assert features["img"] == [b"\x00\xff" * 3]
    assert features["floats"].tolist() == [0.5, -2.0] and features["ints"].tolist() == [7, -1, 2**40]
    assert set(tfrecord.parse_example(example, {"ints"})) == {"ints"}
    # a FloatList whose values are not packed (one fixed32 field each) reads the same
    unpacked = b"".join(b"\x0d" + struct.pack("<f", v) for v in (1.5, 3.0))
    feature = b"\x12" + bytes([len(unpacked)]) + unpacked
    entry = b"\x0a\x01k" + b"\x12" + bytes([len(feature)]) + feature
    message = b"\x0a" + bytes([len(entry) + 2]) + b"\x0a" + bytes([len(entry)]) + entry
    assert tfrecord.parse_example(message)["k"].tolist() == [1.5, 3.0]
    with pytest.raises(ValueError, match="runs past the end"):
        tfrecord.parse_example(example[:-3])
    (tmp_path / "b.tfrecords").write_bytes(b"\x05" + b"\x00" * 20)
    with pytest.raises(UserError, match="bad length checksum"):
        tfrecord.record_spans(tmp_path / "b.tfrecords")


def test_the_cifar_unpickler_builds_arrays_and_refuses_everything_else(tmp_path):
    batch = {b"data": (np.arange(3072 * 2) % 251).astype(np.uint8).reshape(2, 3072), b"labels": [1, 2]}
    (tmp_path / "ok").write_bytes(pickle.dumps(batch, protocol=2))
    images = cifar.load_batch(tmp_path / "ok")
    assert images.shape == (2, 32, 32, 3) and images[0, 0, 1].tolist() == [1, 1025 % 251, 2049 % 251]  # R, G, B planes
    for payload in (pickle.dumps({b"data": np.zeros(3)}, protocol=2).replace(b"ndarray", b"memmap"),
                    b"cbuiltins\neval\n(S'1+1'\ntR."):
        (tmp_path / "bad").write_bytes(payload)
        with pytest.raises(UserError, match="refused to load"):
            cifar.load_batch(tmp_path / "bad")
