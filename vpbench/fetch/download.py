"""Downloading one published file: resumable, checked, written under a temporary name and renamed when complete.

A file ``NAME`` is streamed into ``NAME.part`` next to where it goes; an interrupted download keeps the part,
and the next attempt asks the server for the rest (an HTTP ``Range`` request) instead of starting over. Once
complete, the file's SHA-256 is checked against the expected one: the one pinned by the user (``--sha256``),
else the publisher's, else the one recorded in the folder's manifest (:mod:`vpbench.fetch.manifest`) the first
time the file was downloaded. A mismatch removes the part and is a one-line error; a match renames the part to
``NAME``. A file already complete is checked, not downloaded again.

``mirror`` (``--mirror URL`` or ``$VPBENCH_MIRROR``) replaces the scheme, host and path of the official address
by ``URL``, keeping the file name: ``http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy``
is fetched from ``URL/mnist_test_seq.npy`` (clusters behind a proxy; tests).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from tqdm.auto import tqdm

from vpbench.errors import UserError
from vpbench.fetch.manifest import Manifest

MIRROR_ENV = "VPBENCH_MIRROR"
CHUNK = 1 << 20
TIMEOUT_S = 60
RETRIES = 3  # attempts after an interrupted transfer, each resuming where the last one stopped
SHA256 = re.compile(r"[0-9a-f]{64}")
USER_AGENT = "vpbench"  # some hosts refuse urllib's default agent


@dataclass(frozen=True)
class Remote:
    """One published file: its official address, the (relative) path it is saved under, and the checksums
    its publisher gives (a full SHA-256, a SHA-256 prefix as in torchvision's file names, or an MD5)."""

    url: str
    path: str
    sha256: str | None = None
    sha256_prefix: str | None = None
    md5: str | None = None

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


def mirror_from(option: str | None) -> str | None:
    """The mirror to use: ``--mirror``, else ``$VPBENCH_MIRROR``, else None (the official addresses)."""
    mirror = option or os.environ.get(MIRROR_ENV) or None
    if mirror is not None and urllib.parse.urlsplit(mirror).scheme not in ("http", "https", "file"):
        source = "--mirror" if option else f"${MIRROR_ENV}"
        raise UserError(f"{source} {mirror!r}: give an http://, https:// or file:// address, e.g. "
                        "--mirror https://proxy.example.org/vpbench")
    return mirror


def address(remote: Remote, mirror: str | None) -> str:
    """Where ``remote`` is fetched from: its official address, or ``mirror`` followed by its file name."""
    if mirror is None:
        return remote.url
    return f"{mirror.rstrip('/')}/{urllib.parse.quote(remote.name)}"


def check_sha256(value: str) -> str:
    """``value`` as a SHA-256 in lower-case hex, or a one-line error."""
    digest = value.strip().lower()
    if not SHA256.fullmatch(digest):
        raise UserError(f"--sha256 {value!r}: expected 64 hexadecimal digits (e.g. the output of sha256sum)")
    return digest


def file_hashes(path: Path) -> tuple[str, str]:
    """(SHA-256, MD5) of a file, in hex."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def fetch(remote: Remote, folder: Path, *, mirror: str | None = None, sha256: str | None = None,
          retries: int = RETRIES, progress: bool = True) -> Path:
    """``remote`` saved as ``folder / remote.path`` (downloaded, resumed or found complete) and checked;
    returns its path. ``sha256`` pins the expected digest."""
    target = folder / remote.path
    manifest = Manifest(folder)
    expected, source = _expected(remote, sha256, manifest)
    if target.is_file():
        digest = _verify(target, remote, expected, source, keep=True)
        manifest.record(remote.path, digest, remote.url, target.stat().st_size, source or "recorded")
        return target
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    url = address(remote, mirror)
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, progress)
            break
        except _Interrupted as err:
            if attempt == retries:
                raise UserError(f"download of {remote.name} interrupted ({err}) after {part.stat().st_size:,} "
                                f"bytes, kept in {part}; run the same command again to resume") from None
    digest = _verify(part, remote, expected, source, keep=False)
    os.replace(part, target)
    manifest.record(remote.path, digest, remote.url, target.stat().st_size, source or "recorded")
    return target


def _expected(remote: Remote, pinned: str | None, manifest: Manifest) -> tuple[str | None, str | None]:
    """(expected SHA-256, who gives it: pinned, publisher, recorded) or (None, None) for a first download."""
    if pinned is not None:
        return check_sha256(pinned), "pinned"
    if remote.sha256 is not None:
        return remote.sha256, "publisher"
    recorded = manifest.sha256(remote.path)
    return (recorded, "recorded") if recorded else (None, None)


def _verify(path: Path, remote: Remote, expected: str | None, source: str | None, *, keep: bool) -> str:
    """The file's SHA-256, once it matches every checksum given; otherwise a one-line error (and the file
    removed unless ``keep``: a file complete before this run is the user's to delete)."""
    digest, md5 = file_hashes(path)
    problems = []
    if expected is not None and digest != expected:
        what = {"pinned": "the one given with --sha256", "publisher": "the publisher's",
                "recorded": "the one recorded when it was first downloaded"}[source or "recorded"]
        problems.append(f"its SHA-256 {digest[:16]}... is not {what} ({expected[:16]}...)")
    if remote.sha256_prefix is not None and not digest.startswith(remote.sha256_prefix):
        problems.append(f"its SHA-256 {digest[:16]}... does not start with the publisher's {remote.sha256_prefix}")
    if remote.md5 is not None and md5 != remote.md5:
        problems.append(f"its MD5 {md5} is not the publisher's {remote.md5}")
    if not problems:
        return digest
    if keep:
        raise UserError(f"{path}: {'; '.join(problems)}; the file changed since: delete it to download it again")
    path.unlink(missing_ok=True)
    raise UserError(f"{remote.name}: {'; '.join(problems)}; the download was removed (a damaged transfer or a "
                    "changed file: run again, or check the address)")


class _Interrupted(Exception):
    """The transfer stopped before the end; the part written so far is kept."""


def _transfer(url: str, part: Path, progress: bool) -> None:
    """Stream ``url`` into ``part``, continuing a part already there when the server accepts a range."""
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310  http(s) or file, checked
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset and _complete_range(err.headers.get("Content-Range"), offset):
            return  # the part is the whole file already
        if err.code == 416:
            part.unlink()  # a part longer than the file: start over
            raise _Interrupted("the kept part did not fit the file; starting over") from None
        raise UserError(f"{url}: HTTP {err.code} {err.reason}; check the address, or fetch it through a mirror "
                        f"(--mirror URL or ${MIRROR_ENV})") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise UserError(f"{url}: cannot connect ({reason}); check the network, or fetch it through a mirror "
                        f"(--mirror URL or ${MIRROR_ENV})") from None
    with response:
        status = getattr(response, "status", None) or 200
        if offset and status != 206:
            offset = 0  # the server sent the whole file: start over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None and length.isdigit() else None
        _stream(response.read, part, offset, total, progress)


def _complete_range(content_range: str | None, offset: int) -> bool:
    """Whether a 416 answer's ``Content-Range: bytes */TOTAL`` says the file has ``offset`` bytes."""
    match = re.fullmatch(r"bytes \*/(\d+)", (content_range or "").strip())
    return match is not None and int(match[1]) == offset


def _stream(read: Callable[[int], bytes], part: Path, offset: int, total: int | None, progress: bool) -> None:
    with open(part, "ab" if offset else "wb") as out, tqdm(total=total, initial=offset, unit="B", unit_scale=True,
                                                           unit_divisor=1024, desc=part.name[:-5], leave=False,
                                                           disable=not progress) as bar:
        written = offset
        try:
            for chunk in iter(lambda: read(CHUNK), b""):
                out.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as err:
            raise _Interrupted(type(err).__name__) from None
        if total is not None and written < total:
            raise _Interrupted(f"{written:,} of {total:,} bytes received")
