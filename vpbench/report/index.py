"""``reports/README.md``: what was found, where each dataset's page is, external models, skipped runs."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from vpbench.report.collect import Group
from vpbench.report.conventions import CONVENTIONS
from vpbench.report.page import Options
from vpbench.report.tables import markdown_table


def index_markdown(groups: Sequence[Group], results_dir: Path, options: Options, warnings: Sequence[str]) -> str:
    conventions = sorted({options.convention_for(g) for g in groups}) or [options.convention or "paper"]
    lines = ["# vpbench report", "",
             f"Runs from `{results_dir}`. {'; '.join(CONVENTIONS[c] for c in conventions)}; PSNR in dB; SSIM in "
             "[0, 1].", ""]
    if not groups:
        lines += [f"No finished runs found in `{results_dir}`. Run `bench run --models all --dataset mmnist "
                  f"--results-dir {results_dir}` first.", ""]
    else:
        lines += ["Each dataset page has, per preset and test set: the paper's table layouts with the paper's values "
                  "beside the measured ones, a paired comparison with SRVP (bootstrap 95% CI), the cost of each "
                  "model, frame-wise plots and qualitative samples. Runs of different presets or test sets are "
                  "never mixed in one table.", ""]
        rows = [[f"[{g.dataset}]({g.dataset}.md)", f"{g.frames[0]} → {g.frames[1]}", f"`{g.preset}` ({g.protocol})",
                 f"`{g.test_sha256[:8]}`", ", ".join(map(str, g.seeds)), ", ".join(g.label(m) for m in g.models),
                 f"[{g.dataset}-framewise.csv]({g.dataset}-framewise.csv)"] for g in groups]
        lines += [*markdown_table(["Dataset", "Frames", "Preset", "Test set", "Seeds", "Models", "Frame-wise CSV"],
                                  rows, "lllllll"), ""]
    external = {}
    for group in groups:
        for run in group.runs:
            if run.external:
                external[run.model] = run
    if external:
        rows = [[r.label, f"`{r.origin.get('source')}`", r.origin.get("package") or "-", r.origin.get("version") or "-"]
                for r in external.values()]
        lines += ["## External models", "", "Plug-in models, treated exactly like the built-in ones (marked † in "
                  "the tables):", "", *markdown_table(["Model", "Source", "Package", "Version"], rows, "llll"), ""]
    if warnings:
        lines += ["## Warnings", "", *[f"- {w}" for w in warnings], ""]
    return "\n".join(lines).rstrip("\n") + "\n"
