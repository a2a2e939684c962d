"""The catalogues of published files, one YAML file per kind, read here:

* ``data.yaml``: data sets (:func:`data_entries`), for ``bench data download``;
* ``openstl_zoo.yaml``: the addresses of OpenSTL's released checkpoints (:func:`openstl_checkpoints`);
* ``metric_weights.yaml``: the weights of the perceptual metrics (:func:`metric_weights`).

The addresses are the publishers' own, as their scripts and pages spell them.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, Mapping
from urllib.parse import urlsplit

import yaml

from vpbench.errors import UserError
from vpbench.fetch.download import Remote


@dataclass(frozen=True)
class DataFile:
    """One file of a data set; an archive is extracted into ``extract_to`` (a folder below the download folder;
    None: the download folder itself)."""

    remote: Remote
    extract_to: str | None = None


@dataclass(frozen=True)
class Listed:
    """Files named in column ``column`` of the CSV file ``file`` of an entry, on the rows whose columns have the
    values of ``where``; each is fetched from ``url`` and saved as ``path`` (``{}`` stands for the name)."""

    file: str
    column: str
    where: Mapping[str, str]
    url: str
    path: str

    def remotes(self, folder: Path) -> list[DataFile]:
        """The files the CSV file in ``folder`` lists, each once, in the order they first appear."""
        source = folder / self.file
        try:
            with open(source, newline="") as f:
                rows = list(csv.DictReader(f))
        except (OSError, csv.Error, UnicodeDecodeError) as err:
            raise UserError(f"{source}: cannot be read as CSV ({err}); delete it and download again") from None
        if rows and self.column not in rows[0]:
            raise UserError(f"{source}: no column {self.column!r} (it has {', '.join(rows[0])})")
        names = [r[self.column] for r in rows if all(r.get(k) == v for k, v in self.where.items()) and r[self.column]]
        return [DataFile(Remote(self.url.format(n), self.path.format(n))) for n in dict.fromkeys(names)]


@dataclass(frozen=True)
class DataEntry:
    """A published data set: its files, and the vpbench dataset ``bench data check`` reads them as (or None)."""

    name: str
    title: str
    page: str | None
    dataset: str | None
    files: tuple[DataFile, ...]
    listed: Listed | None = None
    instructions: str | None = None


@dataclass(frozen=True)
class WeightsFile:
    """Weights of a metric: the file, and the option that points a run at it."""

    name: str
    title: str
    remote: Remote
    use: str


def _load(name: str) -> Any:
    return yaml.safe_load(resources.files(__name__).joinpath(name).read_text())


def file_name(url: str) -> str:
    """The last part of an address's path: the name a file is saved under unless the catalogue names it."""
    return PurePosixPath(urlsplit(url).path).name


def _remote(spec: Mapping[str, Any]) -> Remote:
    return Remote(spec["url"], spec.get("path") or file_name(spec["url"]), sha256=spec.get("sha256"),
                  sha256_prefix=spec.get("sha256_prefix"), md5=spec.get("md5"))


@lru_cache(maxsize=None)
def data_entries() -> dict[str, DataEntry]:
    """Every published data set of ``data.yaml``, by name."""
    out = {}
    for name, spec in _load("data.yaml").items():
        files = tuple(DataFile(_remote(f), f.get("extract_to")) for f in spec.get("files", ()))
        listed = Listed(**{**spec["listed"], "where": dict(spec["listed"].get("where", {}))}) \
            if spec.get("listed") else None
        out[name] = DataEntry(name, spec["title"], spec.get("page"), spec.get("dataset"), files, listed,
                              spec.get("instructions"))
    return out


def data_entry(name: str) -> DataEntry:
    entries = data_entries()
    if name not in entries:
        raise UserError(f"no published data set {name!r}; known: {', '.join(entries)}")
    return entries[name]


@lru_cache(maxsize=None)
def metric_weights() -> dict[str, WeightsFile]:
    """The perceptual metrics' weights of ``metric_weights.yaml``, by name."""
    return {name: WeightsFile(name, spec["title"], _remote(spec), spec["use"])
            for name, spec in _load("metric_weights.yaml").items()}


@lru_cache(maxsize=None)
def openstl_checkpoints() -> tuple[str, ...]:
    """The addresses of OpenSTL's released checkpoints (``openstl_zoo.yaml``)."""
    return tuple(_load("openstl_zoo.yaml")["checkpoints"])
