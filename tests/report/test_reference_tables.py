"""Every published value a model stores is read by a report table, with its source in the table's title."""
from __future__ import annotations

from vpbench.datasets import registry as datasets
from vpbench.models import registry
from vpbench.report.paper import tables_for


def test_every_models_published_values_belong_to_a_declared_table():
    declared = {table.id for _, table in datasets.reference_tables()}
    for name, entry in registry.entries().items():
        assert set(entry.references) <= declared, f"{name}: {sorted(set(entry.references) - declared)} read by no table"


def test_predformers_own_result_is_shown_beside_openstl_runs_with_its_source():
    (table,) = [t for t in tables_for("mmnist", (10, 10), "main", "openstl") if t.id == "predformer-mmnist"]
    assert table.rows == {"PredFormer": (12.4, 44.6, 0.973)}
    assert table.convention == "openstl" and "yyyujintang/PredFormer" in table.title and "Table 2" in table.title
    assert table.costs["PredFormer"] == {"params": 25.3e6, "flops": 16.5e9, "fps": 302}
