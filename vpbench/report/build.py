"""``bench report``: everything under ``--out`` from the runs under ``--results-dir``."""
from __future__ import annotations

from pathlib import Path

from vpbench.report.collect import collect_runs
from vpbench.report.runs_table import runs_markdown
from vpbench.store import atomic_write_bytes


def build_report(results_dir: str | Path, out: str | Path, *, convention: str = "paper", samples: str = "0") -> Path:
    """Write ``<out>/README.md``; returns its path."""
    runs = collect_runs(results_dir)
    index = Path(out) / "README.md"
    atomic_write_bytes(index, ("# vpbench report\n\n" + runs_markdown(runs)).encode())
    print(f"report: {index} ({len(runs)} runs from {results_dir})")
    return index
