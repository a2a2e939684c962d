"""The SRVP paper's reported values (``paper_values.yaml``): Tables 1-4 as reference data."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml


@dataclass(frozen=True)
class PaperTable:
    """One table of the paper.

    A mean table has one value per metric in ``columns`` (means over predicted frames); a per-step
    table has one value of ``metric`` per predicted frame in ``steps``."""

    id: str
    title: str
    dataset: str
    frames: tuple[int, int]
    group: str  # "main" or "ablation"
    rows: dict[str, tuple[float, ...]]  # model label -> values
    columns: tuple[str, ...] = ()
    metric: str | None = None
    steps: tuple[int, ...] = ()

    @property
    def per_step(self) -> bool:
        return self.metric is not None

    def value(self, label: str, column: str | int) -> float | None:
        """The paper's value for ``label`` in a metric column (mean table) or a step (per-step table)."""
        keys = self.steps if self.per_step else self.columns
        row = self.rows.get(label)
        return None if row is None or column not in keys else row[keys.index(column)]


def _table(raw: dict[str, Any]) -> PaperTable:
    return PaperTable(
        id=raw["id"], title=raw["title"], dataset=raw["dataset"], frames=tuple(raw["frames"]), group=raw["group"],
        rows={label: tuple(float(v) for v in values) for label, values in raw["rows"].items()},
        columns=tuple(raw.get("columns", ())), metric=raw.get("metric"), steps=tuple(raw.get("steps", ())),
    )


@lru_cache(maxsize=None)
def _load() -> dict[str, Any]:
    return yaml.safe_load(resources.files("vpbench.report").joinpath("paper_values.yaml").read_text())


def reference_model() -> str:
    """The registry name of the paper's own model (SRVP), compared with every other model."""
    return _load()["reference_model"]


def paper_tables() -> list[PaperTable]:
    return [_table(raw) for raw in _load()["tables"]]


def tables_for(dataset: str, frames: tuple[int, int], group: str) -> list[PaperTable]:
    """The paper's tables measured on ``dataset`` with these (input, output) lengths, of one group."""
    return [t for t in paper_tables() if t.dataset == dataset and t.frames == tuple(frames) and t.group == group]
