"""Fetching a whole published data set: its files, then its archives extracted, then the files its catalogue
file lists (SEVIR's), each checked (:func:`vpbench.fetch.download.fetch`)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from vpbench.errors import UserError
from vpbench.fetch.archives import extract, is_archive
from vpbench.fetch.catalogue import DataEntry, DataFile
from vpbench.fetch.download import fetch
from vpbench.fetch.manifest import Manifest


def fetch_entry(entry: DataEntry, folder: Path, *, mirror: str | None = None, sha256: str | None = None,
                log: Callable[[str], None] = print, progress: bool = True) -> list[Path]:
    """Every file of ``entry`` in ``folder``, archives extracted; returns the files. ``sha256`` pins the digest
    of an entry of one file."""
    if sha256 is not None and (len(entry.files) != 1 or entry.listed is not None):
        raise UserError(f"--sha256 pins the digest of one file; {entry.name} has {len(entry.files)}"
                        f"{' and the files its catalogue lists' if entry.listed else ''}")
    paths = [_fetch_file(f, folder, mirror, sha256, log, progress) for f in entry.files]
    if entry.listed is not None:
        listed = entry.listed.remotes(folder)
        log(f"{entry.listed.file} lists {len(listed):,} files")
        paths += [_fetch_file(f, folder, mirror, None, log, progress) for f in listed]
    return paths


def _fetch_file(file: DataFile, folder: Path, mirror: str | None, sha256: str | None,
                log: Callable[[str], None], progress: bool) -> Path:
    had = (folder / file.remote.path).is_file()
    path = fetch(file.remote, folder, mirror=mirror, sha256=sha256, progress=progress)
    log(f"{file.remote.path}: {'already there, checked' if had else 'downloaded, checked'}")
    if is_archive(path.name):
        manifest, digest = Manifest(folder), Manifest(folder).sha256(file.remote.path) or ""
        if manifest.extracted(file.remote.path, digest):
            return path
        destination = folder / file.extract_to if file.extract_to else folder
        names = extract(path, destination)
        manifest.record_extracted(file.remote.path, digest)
        log(f"{file.remote.path}: extracted {', '.join(names[:4])}{' ...' if len(names) > 4 else ''} into "
            f"{destination}")
    return path
