"""Extracting a downloaded archive (``.zip``, ``.tar``, ``.tar.gz``, ``.tgz``) safely.

Every member must land inside the destination folder: an absolute path, a ``..`` that climbs out of it, a
link or a device file is refused with a one-line error before anything is written (tar archives are also
read with Python's ``data`` filter). Members are written where the archive says, below the destination.
"""
from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from vpbench.errors import UserError

SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


def is_archive(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def _inside(member: str, archive: Path) -> str:
    """``member``'s path, or a one-line error when it would land outside the destination."""
    path = PurePosixPath(member.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and path.parts[0].endswith(":")):
        raise UserError(f"{archive.name}: member {member!r} would be written outside the folder; the archive is "
                        "refused (nothing extracted)")
    return member


def extract(archive: Path, destination: Path) -> list[str]:
    """Extract ``archive`` into ``destination``; returns the top-level names it wrote."""
    destination.mkdir(parents=True, exist_ok=True)
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                names = [_inside(info.filename, archive) for info in zf.infolist()]
                links = [i.filename for i in zf.infolist() if (i.external_attr >> 16) & 0o170000 == 0o120000]
                if links:
                    raise UserError(f"{archive.name}: member {links[0]!r} is a link; the archive is refused "
                                    "(nothing extracted)")
                zf.extractall(destination)
        else:
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for member in members:
                    _inside(member.name, archive)
                    if not (member.isfile() or member.isdir()):
                        raise UserError(f"{archive.name}: member {member.name!r} is a link or a device; the archive "
                                        "is refused (nothing extracted)")
                names = [m.name for m in members]
                tf.extractall(destination, filter="data")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise UserError(f"{archive}: cannot be extracted ({err}); delete it and download it again") from None
    return sorted({PurePosixPath(n).parts[0] for n in names if PurePosixPath(n).parts})
