"""Read the records of an offline W&B run file (``run-<id>.wandb``): a LevelDB-style log of protobuf records."""
from __future__ import annotations

import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7  # record header: CRC-32C (4), length (2), type (1); the file opens with ":W&B", magic (2), version (1)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def record_bytes(path: Path) -> list[bytes]:
    """The payload of every record, chunks of records split across blocks joined."""
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    out, pending, offset = [], b"", HEADER
    while offset + HEADER <= len(data):
        left = BLOCK - offset % BLOCK
        if left < HEADER:
            offset += left
            continue
        _, length, kind = struct.unpack("<IHB", data[offset:offset + HEADER])
        chunk = data[offset + HEADER:offset + HEADER + length]
        offset += HEADER + length
        if kind == 0 and length == 0:
            offset += BLOCK - offset % BLOCK if offset % BLOCK else 0
            continue
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            out.append(pending)
    return out


def records(path: Path) -> list:
    """The file's records as ``wandb_internal_pb2.Record`` messages (``run``, ``history``, ``summary``, ...)."""
    from wandb.proto import wandb_internal_pb2

    parsed = []
    for raw in record_bytes(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        parsed.append(record)
    return parsed
