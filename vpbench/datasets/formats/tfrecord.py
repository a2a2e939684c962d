"""TFRecord files of ``tf.train.Example`` records, read without TensorFlow or protobuf.

A TFRecord file is a run of records, each framed (little-endian) as::

    uint64 length | uint32 masked CRC-32C of those 8 bytes | data | uint32 masked CRC-32C of the data

where a masked CRC is ``((crc >> 15) | (crc << 17)) + 0xa282ead8`` modulo 2^32. Both CRCs are checked. The data
of a record is a serialised ``tf.train.Example``; this reader decodes exactly the messages that make one::

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }   # each entry: { string key = 1; Feature value = 2; }
    Feature  { oneof { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1; }
    Int64List { repeated int64 value = 1; }

in the protobuf wire format: each field a varint key (field number << 3 | wire type) and a varint (type 0),
8 bytes (1), a varint length and that many bytes (2) or 4 bytes (5); repeated numbers packed or not.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Union

import crc32c
import numpy as np

from vpbench.errors import UserError

MASK_DELTA = 0xA282EAD8
HEADER = 12  # uint64 length + its masked CRC
Value = Union[list, np.ndarray]  # a BytesList's bytes, a FloatList's float32 or an Int64List's int64 values


def masked_crc(data: bytes | memoryview) -> int:
    """The masked CRC-32C of TFRecord framing."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


def record_spans(path: Path) -> list[tuple[int, int]]:
    """(offset of the data, its length) of every record of a TFRecord file, reading only the headers."""
    spans = []
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            offset = 0
            while offset < size:
                head = f.read(HEADER)
                if len(head) < HEADER:
                    raise UserError(f"{path}: truncated after {len(spans)} records (a partial header at byte "
                                    f"{offset}); re-download it")
                length, crc = struct.unpack("<QI", head)
                if masked_crc(head[:8]) != crc:
                    raise UserError(f"{path}: record {len(spans)} has a bad length checksum (byte {offset}); "
                                    "not a TFRecord file, or damaged: re-download it")
                start = offset + HEADER
                offset = start + length + 4
                if offset > size:
                    raise UserError(f"{path}: truncated in record {len(spans)} ({length} bytes announced at byte "
                                    f"{start - HEADER}, the file ends at {size}); re-download it")
                spans.append((start, length))
                f.seek(offset)
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err})") from None
    return spans


def read_record(path: Path, span: tuple[int, int]) -> bytes:
    """The data of the record at ``span`` (from :func:`record_spans`), its CRC checked."""
    start, length = span
    try:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(length + 4)
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err})") from None
    if len(data) != length + 4 or masked_crc(data[:length]) != struct.unpack("<I", data[length:])[0]:
        raise UserError(f"{path}: the record at byte {start - HEADER} is damaged (its data checksum does not match); "
                        "re-download the file")
    return data[:length]


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("a varint runs past the end")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview):
    """(field number, wire type, value) of each field of a message: an int for types 0, 1 and 5 (the raw bits),
    a memoryview for type 2."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("a field runs past the end")
            value, pos = buf[pos : pos + length], pos + length
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > len(buf):
                raise ValueError("a field runs past the end")
            value, pos = int.from_bytes(buf[pos : pos + width], "little"), pos + width
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _numbers(buf: memoryview, kind: int) -> np.ndarray:
    """The values of a FloatList (kind 2) or Int64List (kind 3), packed or one field each."""
    out: list[np.ndarray] = []
    for number, wire, value in _fields(buf):
        if number != 1:
            continue
        if kind == 2:
            out.append(np.frombuffer(value, "<f4") if wire == 2 else np.array([value], "<u4").view("<f4"))
        elif wire == 2:  # packed varints
            items, pos, view = [], 0, value
            while pos < len(view):
                item, pos = _varint(view, pos)
                items.append(item)
            out.append(np.array(items, np.uint64).view(np.int64))
        else:
            out.append(np.array([value], np.uint64).view(np.int64))
    empty = np.zeros(0, np.float32 if kind == 2 else np.int64)
    return np.concatenate([empty, *out]).astype(empty.dtype)


def _feature(buf: memoryview) -> Value:
    for kind, _, value in _fields(buf):
        if kind == 1:
            return [bytes(v) for n, _, v in _fields(value) if n == 1]
        if kind in (2, 3):
            return _numbers(value, kind)
    return []


def parse_example(data: bytes, keys: set[str] | None = None) -> dict[str, Value]:
    """The features of a serialised ``tf.train.Example``: name -> a list of bytes, float32 or int64 values.
    With ``keys``, only those features are decoded. ValueError when the data is no Example."""
    features: dict[str, Value] = {}
    for number, wire, message in _fields(memoryview(data)):
        if number != 1 or wire != 2:
            continue
        for entry_number, entry_wire, entry in _fields(message):
            if entry_number != 1 or entry_wire != 2:
                continue
            key, value = None, None
            for part, part_wire, content in _fields(entry):
                if part == 1 and part_wire == 2:
                    key = bytes(content).decode()
                elif part == 2 and part_wire == 2:
                    value = content
            if key is not None and (keys is None or key in keys):
                features[key] = _feature(value) if value is not None else []
    return features
