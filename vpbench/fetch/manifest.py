"""The manifest of a download folder: what was downloaded there, from where, with which SHA-256.

``<folder>/vpbench-manifest.json`` records, for every file fetched into the folder, its SHA-256, official
address, size, the time it was recorded and who gave the checksum (``publisher``, ``pinned`` by the user, or
``recorded`` on first download), and which archives were extracted. A later download into the folder checks
each file against it. The manifest is replaced atomically; a damaged one is a one-line error.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from vpbench.errors import UserError
from vpbench.store import atomic_write_bytes

FILE = "vpbench-manifest.json"


class Manifest:
    """The manifest of ``folder`` (read on every access, so that two commands never overwrite each other's)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / FILE

    def read(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"files": {}, "extracted": {}}
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data.get("files"), dict) or not isinstance(data.get("extracted", {}), dict):
                raise ValueError("no files table")
        except (OSError, ValueError, AttributeError) as err:
            raise UserError(f"{self.path}: unreadable manifest ({err}); delete it (the files are checked again "
                            "and recorded anew)") from None
        data.setdefault("extracted", {})
        return data

    def sha256(self, name: str) -> str | None:
        """The SHA-256 recorded for file ``name`` (its path in the folder), if any."""
        return self.read()["files"].get(name, {}).get("sha256")

    def record(self, name: str, sha256: str, url: str, size: int, source: str) -> None:
        data = self.read()
        known = data["files"].get(name)
        if known and known.get("sha256") == sha256:
            return
        data["files"][name] = {"sha256": sha256, "url": url, "bytes": size, "checksum": source,
                               "recorded": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self._write(data)

    def extracted(self, archive: str, sha256: str) -> bool:
        """Whether ``archive`` with this SHA-256 was extracted into the folder already."""
        return self.read()["extracted"].get(archive) == sha256

    def record_extracted(self, archive: str, sha256: str) -> None:
        data = self.read()
        data["extracted"][archive] = sha256
        self._write(data)

    def _write(self, data: dict[str, Any]) -> None:
        atomic_write_bytes(self.path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
