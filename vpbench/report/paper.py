"""Published values beside the measured ones: the SRVP paper's Tables 1-4 (and other reference tables).

The tables are declared by the datasets they were measured on (``ReferenceTable`` in each dataset's
file) and their rows by the models (``references`` in each model's registry entry) or by the table itself
(``rows``, for a dataset newer than the models), so a new model or dataset brings its published values with it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from vpbench.datasets import registry as datasets
from vpbench.models import registry as models

REFERENCE_MODEL = "srvp"  # the paper's model: the paired comparison sets it against every other model
COSTS = ("params", "flops", "fps")  # published costs a row may give beside its metrics


@dataclass(frozen=True)
class PaperTable:
    """One published table.

    A mean table has one value per metric in ``columns`` (means over predicted frames); a per-step
    table has one value of ``metric`` per predicted frame in ``steps``. ``rows``: model label -> values (None where
    the row gives none, as OpenSTL's CrevNet row gives no PSNR).
    ``protocol``: the protocol of the runs it is set beside; ``convention``: the scale of its MSE and MAE."""

    id: str
    title: str
    dataset: str
    frames: tuple[int, int]
    group: str  # "main" or "ablation"
    rows: dict[str, tuple[float | None, ...]]
    columns: tuple[str, ...] = ()
    metric: str | None = None
    steps: tuple[int, ...] = ()
    protocol: str = "srvp"
    convention: str = "paper"
    costs: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> published params, flops, fps

    @property
    def per_step(self) -> bool:
        return self.metric is not None

    def value(self, label: str, column: str | int) -> float | None:
        """The published value for ``label`` in a metric column (mean table) or a step (per-step table)."""
        keys = self.steps if self.per_step else self.columns
        row = self.rows.get(label)
        return None if row is None or column not in keys else row[keys.index(column)]


def reference_model() -> str:
    """The registry name of the paper's own model (SRVP), compared with every other model."""
    return REFERENCE_MODEL


def paper_tables() -> list[PaperTable]:
    """Every dataset's reference tables, with the rows every model gives for them."""
    tables = []
    for dataset, table in datasets.reference_tables():
        keys = table.steps if table.metric else table.columns
        rows, costs = {}, {}
        for name in models.model_names():
            entry = models.entries()[name]
            values = entry.references.get(table.id) or table.rows.get(name)
            if values:
                label = entry.label_for(table.protocol)
                rows[label] = tuple(float(values[k]) if k in values else None for k in keys)  # None: not published
                costs[label] = {k: float(values[k]) for k in COSTS if k in values}
        tables.append(PaperTable(table.id, table.title, dataset, table.frames, table.group, rows, table.columns,
                                 table.metric, table.steps, table.protocol, table.convention, costs))
    return tables


def tables_for(dataset: str, frames: tuple[int, int], group: str, protocol: str = "srvp") -> list[PaperTable]:
    """The published tables measured on ``dataset`` with these (input, output) lengths, of one group,
    for runs of ``protocol``."""
    return [t for t in paper_tables() if t.dataset == dataset and t.frames == tuple(frames) and t.group == group
            and t.protocol == protocol]
