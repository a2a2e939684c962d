"""One dataset page: a section per group (preset and test set) with its tables and figures."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vpbench import presets
from vpbench.metrics.registry import label_of
from vpbench.models import registry
from vpbench.report import paper
from vpbench.report.collect import Evaluation, Group, Run
from vpbench.report.conventions import CONVENTIONS, PROTOCOL_CONVENTIONS, column, scale
from vpbench.report.cost_quality import cost_points, cost_quality_figure
from vpbench.report.figures import animation, framewise_figure, sample_grid
from vpbench.report.framewise import framewise_long
from vpbench.report.quality import collapse_notes, persistence_note, unbeaten_baseline_notes
from vpbench.report.stats import LEVEL, RESAMPLES, paired
from vpbench.report.stochastic import stochastic_section
from vpbench.report.tables import (
    EXTERNAL_MARK,
    cost_table,
    generalisation_tables,
    measured_estimates,
    other_metrics,
    other_metrics_table,
    paired_table,
    perceptual_shown,
    published,
    published_table,
    results_table,
    step_table,
)
from vpbench.report.weather import group_weather_section


@dataclass(frozen=True)
class Options:
    """What the user chose: the metric convention (None: each group's protocol's), the stored samples to
    draw and the formats of the figures (the first is the one the pages show)."""

    convention: str | None
    samples: tuple[int, ...]
    figure_formats: tuple[str, ...] = ("png",)

    def convention_for(self, group: Group) -> str:
        return self.convention or PROTOCOL_CONVENTIONS[group.protocol]

    def figure(self, stem: str, alt: str) -> list[str]:
        """Markdown showing the figure ``stem`` (PNG or SVG inline, PDF as a link) and linking its other formats."""
        shown = next((f for f in self.figure_formats if f in ("png", "svg")), None)
        lines = [f"![{alt}]({stem}.{shown})"] if shown else []
        others = [f for f in self.figure_formats if f != shown]
        if others:
            lines.append(f"{alt}: " + ", ".join(f"[{fmt.upper()}]({stem}.{fmt})" for fmt in others))
        return lines


def _tags(model: str) -> frozenset[str]:
    entry = registry.entries().get(model)
    return entry.tags if entry else frozenset()


def split_models(group: Group) -> tuple[list[str], list[str]]:
    """(main-table models, ablation-table models). Models tagged only ``ablation`` go to the
    ablation table, which appears when there is one; models tagged ``ablation`` and ``paper``
    (SRVP) are in both."""
    ablation_only = [m for m in group.models if "ablation" in _tags(m) and "paper" not in _tags(m)]
    main = [m for m in group.models if m not in ablation_only]
    ablation = [m for m in group.models if "ablation" in _tags(m)] if ablation_only else []
    return main, ablation


def caption(group: Group, models: Sequence[str]) -> str:
    """What every table names: preset, seeds and epochs of the runs it shows, and the test data."""
    runs = [r for m in models for r in group.runs_of(m)]
    seeds = ", ".join(map(str, sorted({r.seed for r in runs})))
    epochs = sorted({r.epochs for r in runs})
    epoch_text = f"epochs {epochs[0]}" if len(epochs) == 1 else "epochs per model in the Epochs column"
    return f"*Preset `{group.preset}` · seeds {seeds} · {epoch_text} · data: {group.provenance}.*"


def _sequences(group: Group) -> int:
    return next((r.per_frame.shape[0] for r in group.runs if r.per_frame is not None), 0)


def _external_notes(group: Group, models: Sequence[str]) -> list[str]:
    notes = []
    for model in models:
        origin = group.runs_of(model)[0].origin
        if origin.get("kind") == "external":
            package = origin.get("package") or "no installed package"
            version = origin.get("version") or "unknown version"
            notes.append(f"- {EXTERNAL_MARK} {group.label(model)}: external plug-in model `{origin.get('source')}` "
                         f"({package}, {version}).")
    return notes


REPRODUCED = 0.01  # an imported run reproduces a published value when it is within 1% of it


def _imported_notes(group: Group, models: Sequence[str], tables: Sequence[paper.PaperTable],
                    convention: str) -> list[str]:
    """One line per imported run (``bench import``): its file and source, and, beside a published table (the one
    of its number of epochs, when there are several), whether its re-measured values reproduce the published ones
    from the same weights (within :data:`REPRODUCED`)."""
    notes = []
    for model in models:
        run = group.runs_of(model)[0]
        if not run.imported:
            continue
        imported = run.imported
        table = next((t for t in tables if t.id.endswith(f"-{imported.get('epochs')}")), tables[0] if tables else None)
        line = (f"- {group.label(model)}: {imported['description']}, `{imported['file']}` (SHA-256 "
                f"{imported['sha256'][:12]}…, {imported['source']}), imported with `bench import {imported['code']}` "
                "and re-measured here")
        compared = []
        for metric in (table.columns if table is not None else ()):
            value = published(table, group.label(model), metric, metric, convention, group.shape)
            ours = measured_estimates(group, [model], metric, convention)[0]
            if value is not None and ours is not None:
                compared.append((metric, (ours.mean - value) / value))
        if compared:
            worst = max(compared, key=lambda c: abs(c[1]))
            verdict = (f"reproduces the published {', '.join(m.upper() for m, _ in compared)} within "
                       f"{REPRODUCED:.0%}" if abs(worst[1]) <= REPRODUCED else
                       f"does not reproduce the published values ({worst[0].upper()} {worst[1]:+.1%})")
            line += f": {verdict} of {table.title}"
        notes.append(line + ".")
    return notes


def _training_notes(group: Group, models: Sequence[str]) -> list[str]:
    """One line per model whose training differs from its published runs' (its registry ``training_note``), unless
    each of its runs set the option that clears it."""
    entries = registry.entries()
    return [f"- {group.label(m)}: {entries[m].training_note}." for m in models
            if m in entries and entries[m].training_note and not all(r.note_cleared for r in group.runs_of(m))]


def _override_notes(group: Group, models: Sequence[str]) -> list[str]:
    """One line per run whose settings differ from the preset's (``bench run --set``)."""
    return [f"- Changed from preset `{group.preset}`: {group.label(m)} seed {r.seed}: {r.overrides}."
            for m in models for r in group.runs_of(m) if r.overrides]


def _source(group: Group, table: paper.PaperTable) -> str:
    """Where the published column comes from, and why it may not be like for like."""
    if table.protocol == "srvp":
        text = f"paper: the values of the paper's {table.title}; Δ = (measured − paper) / paper. "
    else:
        text = (f"published: {table.title} (OpenSTL reports the best of three runs, each validated and its "
                "checkpoint chosen on the test set; vpbench validates on a separate split); "
                "Δ = (measured − published) / published. ")
    if presets.get(group.preset).scale != "full":
        text += (f"Preset `{group.preset}` trains other model sizes for fewer epochs than the published runs: the "
                 "published columns show where those values stand, not a like-for-like comparison. ")
    if group.dataset.startswith("mmnist") and group.test_kind != "standard":
        text += ("**These runs were tested on a generated test set, not on the standard `mnist_test_seq.npy` the "
                 "published values were measured on** (put it in `--data-dir`). ")
    return text


def _results_section(group: Group, models: list[str], heading: str, tables: list[paper.PaperTable],
                     options: Options) -> list[str]:
    convention = options.convention_for(group)
    mean_tables = [t for t in tables if not t.per_step]
    mean_table = mean_tables[0] if mean_tables else None
    source = _source(group, mean_table) if mean_table else ""
    if mean_table and mean_table.convention != convention and "ssim" in mean_table.columns:
        source += (f"The published SSIM is in the {mean_table.convention} convention, the measured one in the "
                   f"{convention} convention: they are not comparable. ")
    title = heading
    if mean_table:
        title += f", as the paper's {mean_table.title}" if mean_table.protocol == "srvp" else f", beside {mean_table.title}"
    perceptual = perceptual_shown(group, models)
    missing = [name for key, name in (("lpips", "LPIPS"), ("fvd", "FVD")) if key not in perceptual]
    hint = (f" {' and '.join(missing)} not computed: give `--set metrics.lpips_weights=FILE` (an AlexNet state_dict) "
            "and `--set metrics.fvd_weights=FILE` (the TorchScript I3D) to `bench run` or `bench eval` (README: "
            "Perceptual metrics)." if missing else "")
    lines = [f"### {title}", "", caption(group, models), "",
             *results_table(group, models, mean_table, convention), "",
             f"Means over {_sequences(group)} test sequences and {group.frames[1]} predicted frames; n: seeds; "
             f"mean ± sample std over seeds when n > 1; best per column in bold. {source}"
             f"{CONVENTIONS[convention]}.{hint}", ""]
    others = other_metrics([r for m in models for r in group.runs_of(m)])
    if others:
        lines += ["Other metrics the runs stored (plug-ins, the dataset's own; `bench list metrics`):", "",
                  *other_metrics_table(group, models, others, convention), "",
                  "Means over the test sequences and predicted frames; best per column in bold where the metric "
                  "says which way is better.", ""]
    for table in mean_tables[1:]:
        lines += [f"Also published, {table.title}:", "", *published_table(group, models, table, convention), ""]
    for table in (t for t in tables if t.per_step):
        lines += [f"### {table.title}", "", caption(group, models), "",
                  *step_table(group, models, table, options.convention_for(group)),
                  "", f"Means over {_sequences(group)} test sequences at each predicted frame; paper: the paper's "
                  f"{table.title}; best per column in bold.", ""]
    notes = (_external_notes(group, models) + _imported_notes(group, models, mean_tables, convention)
             + _training_notes(group, models) + _override_notes(group, models) + collapse_notes(group, models)
             + unbeaten_baseline_notes(group, models, convention) + persistence_note(group, models, convention))
    return lines + ([*notes, ""] if notes else [])


def paired_section(group: Group, options: Options) -> list[str]:
    reference = paper.reference_model()
    lines = ["### Paired comparison", "", caption(group, group.models), ""]
    if reference not in group.models or all(r.per_frame is None for r in group.runs_of(reference)):
        name = registry.entries()[reference].label if reference in registry.entries() else reference
        return lines + [f"No evaluated {name} run in this group: run `bench run --models {reference}` with the same "
                        "preset and data for the paired comparison.", ""]
    label = group.label(reference)
    factor = scale(options.convention_for(group), "mse", group.shape)
    tables = []
    for metric, metric_factor in (("mse", factor), ("lpips", 1.0)):
        comparisons = [paired(group.runs_of(reference), group.runs_of(m), m, metric=metric, factor=metric_factor)
                       for m in group.models if m != reference]
        comparisons = [c for c in comparisons if c is not None]
        if comparisons:
            tables += [*paired_table(comparisons, label, group), ""]
    if not tables:
        return lines + [f"No other evaluated model in this group to compare with {label}.", ""]
    return lines + [*tables,
                    f"Per test sequence: MSE (and LPIPS, when computed) averaged over the predicted frames, then over "
                    f"each model's seeds (seed-mean per sequence); the difference {label} − model, averaged over the "
                    f"shared test sequences. Negative: {label} has the lower error. {int(LEVEL * 100)}% CI: "
                    f"percentile bootstrap over the sequences ({RESAMPLES:,} resamples, fixed seed). "
                    f"{CONVENTIONS[options.convention_for(group)]}.", ""]


def _generalisation_section(group: Group, options: Options) -> list[str]:
    """The group's runs evaluated later on other data or horizons (``bench eval``): means, and MSE per
    predicted frame, one table per (dataset, frames) tested on."""
    tested: dict[tuple[str, tuple[int, int]], list[tuple[Run, Evaluation]]] = {}
    for run in group.runs:
        for evaluation in run.evaluations:
            tested.setdefault((evaluation.dataset, evaluation.frames), []).append((run, evaluation))
    if not tested:
        return []
    convention = options.convention_for(group)
    lines = ["### Generalisation", ""]
    for (dataset, frames), pairs in tested.items():
        lines += [f"Trained on {group.dataset} {group.frames[0]} → {group.frames[1]}, tested on {dataset} "
                  f"{frames[0]} → {frames[1]} (`bench eval`; data: {pairs[-1][1].provenance}).", "",
                  *generalisation_tables(group, pairs, convention), ""]
    return lines + [f"{CONVENTIONS[convention]}.", ""]


def _cost_section(group: Group, profiles: Sequence[dict[str, Any]]) -> list[str]:
    mine = [p for p in profiles if p.get("dataset") == group.dataset and p.get("preset") == group.preset]
    hint = ("Timings from `bench profile` (latency: one sequence, batch 1; train step and peak memory: the preset's "
            "batch)." if mine else f"No timings yet: run `bench profile --models ... --dataset {group.dataset} "
            f"--preset {group.preset}` to add latency, train-step time and peak memory.")
    published = next((t for t in paper.tables_for(group.dataset, group.frames, "main", group.protocol)
                      if any(t.costs.values())), None)
    if published is not None:
        hint += (f" Published: {published.title} (params as published, which may count modules a forward never uses; "
                 "FPS measured by the authors on their GPU).")
    return ["### Cost", "", f"*Preset `{group.preset}`.*", "", *cost_table(group, mine, published), "",
            f"Params; GFLOPs: fvcore multiply-adds for one test sequence. {hint}", ""]


def _framewise_section(group: Group, models: list[str], suffix: str, out: Path, options: Options) -> list[str]:
    long = framewise_long(group, options.convention_for(group), models)
    if long.empty:
        return []
    stem = f"{group.slug}-framewise{suffix}"
    convention = options.convention_for(group)
    units = "per pixel, 0-255" if convention == "paper" else "per frame, [0, 1]"
    ssim_label = "SSIM" if convention == "paper" else "SSIM (OpenSTL's)"
    others = other_metrics([r for m in models for r in group.runs_of(m)])
    panels = [("mse", f"MSE ({units})"), (column(convention, "ssim"), ssim_label), ("lpips", "LPIPS"),
              *[(metric, label_of(metric)) for metric in others]]
    panels = [(metric, label) for metric, label in panels if metric in set(long["metric"])]  # what the runs stored
    if not panels:
        return []
    framewise_figure(long, [group.label(m) for m in group.models], panels, out / f"{stem}.png",
                     f"{group.dataset} {group.frames[0]} → {group.frames[1]} · preset {group.preset} · "
                     f"test set {group.test_sha256[:8]}", options.figure_formats)
    band = " Band: ± std over seeds." if long.groupby("label")["seed"].nunique().max() > 1 else ""
    return [*options.figure(stem, "MSE and SSIM per predicted frame"), "",
            f"MSE and SSIM per predicted frame (as the paper's Fig. 6){', and the other metrics' * bool(others)}, "
            f"means over the test sequences.{band}", ""]


def _samples_of(run: Run) -> dict[str, np.ndarray] | None:
    path = run.path / "samples.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in ("indices", "inputs", "targets", "predictions")}


def stored_samples(group: Group, warnings: list[str]) -> list[tuple[str, Run, dict[str, np.ndarray]]]:
    """(model, run, samples.npz's arrays) of each model's first evaluated run that stored samples; a damaged
    file leaves its model out, with a warning."""
    stored: list[tuple[str, Run, dict[str, np.ndarray]]] = []
    for model in group.models:
        run = next((r for r in group.runs_of(model) if r.per_frame is not None), None)
        try:
            samples = _samples_of(run) if run is not None else None
        except Exception as err:  # noqa: BLE001  a damaged file leaves one model out of the figure
            warnings.append(f"left {run.path}/samples.npz out of the figures ({type(err).__name__}: {err})")
            samples = None
        if samples is not None:
            stored.append((model, run, samples))
    return stored


def _samples_section(group: Group, out: Path, options: Options, warnings: list[str]) -> list[str]:
    stored = stored_samples(group, warnings)
    if not stored or not options.samples:
        return []
    indices = stored[0][2]["indices"]
    lines = []
    for position in options.samples:
        if position >= len(indices):
            warnings.append(f"--samples {position}: the {group.preset} runs of {group.dataset} keep {len(indices)} "
                            f"test sequences (samples 0-{len(indices) - 1}); skipped")
            continue
        sequence = int(indices[position])
        rows, seeds = [], []
        for model, run, samples in stored:
            where = np.flatnonzero(samples["indices"] == sequence)
            if len(where):
                rows.append((group.label(model), samples["predictions"][where[0]]))
                seeds.append(f"{group.label(model)} seed {run.seed}")
        first = stored[0][2]
        stem = f"{group.slug}-sample{position}"
        inputs, targets = first["inputs"][position], first["targets"][position]
        sample_grid(inputs, targets, rows, out / f"{stem}.png",
                    f"{group.dataset}, test sequence {sequence} · preset {group.preset}", options.figure_formats)
        animation(inputs, targets, rows, out / f"{stem}.gif")
        lines += [*options.figure(stem, f"Test sequence {sequence}"), "",
                  f"Test sequence {sequence} (stored sample {position}): inputs, ground truth, then each model's "
                  f"prediction and |GT − P| (mean over channels; darker = larger error). Predictions of "
                  f"{', '.join(seeds)}. As motion: [{stem}.gif]({stem}.gif) (ground truth and each prediction side "
                  "by side).", ""]
    return lines


def _cost_quality_section(group: Group, out: Path, options: Options) -> list[str]:
    convention = options.convention_for(group)
    stem = f"{group.slug}-cost-quality"
    units = "per pixel, 0-255" if convention == "paper" else "per frame, [0, 1]"
    drawn = cost_quality_figure(cost_points(group, convention), out / f"{stem}.png",
                                f"{group.dataset} · preset {group.preset} · cost against quality", f"Test MSE ({units})",
                                "Test SSIM" if convention == "paper" else "Test SSIM (OpenSTL's)",
                                options.figure_formats)
    if not drawn:
        return []
    return [*options.figure(stem, "Cost against quality"), "",
            "Test MSE and SSIM against GFLOPs (one test sequence) and training time per epoch (train_log.csv), one "
            "marker per model, ± std over seeds; dashed: the Pareto front (no other model is both cheaper and "
            "better).", ""]


def group_section(group: Group, out: Path, options: Options, profiles: Sequence[dict[str, Any]],
                  warnings: list[str]) -> list[str]:
    """Markdown of one group; writes its figures into ``out``."""
    main, ablation = split_models(group)
    lines = [f"## {group.dataset} {group.frames[0]} → {group.frames[1]} · preset `{group.preset}` · test set "
             f"`{group.test_sha256[:8]}`", "", f"Data: {group.provenance} ({_sequences(group)} test sequences).", ""]
    if main:
        lines += _results_section(group, main, "Results", paper.tables_for(group.dataset, group.frames, "main",
                                                                           group.protocol), options)
    if ablation:
        lines += _results_section(group, ablation, "Ablations", paper.tables_for(group.dataset, group.frames,
                                                                                 "ablation", group.protocol), options)
    lines += stochastic_section(group, options.convention_for(group))
    lines += paired_section(group, options)
    lines += _generalisation_section(group, options)
    lines += _cost_section(group, profiles)
    lines += group_weather_section(group, out, options.figure_formats)
    figures = _framewise_section(group, main, "", out, options)
    if ablation:
        figures += _framewise_section(group, ablation, "-ablation", out, options)
    figures += _cost_quality_section(group, out, options)
    figures += _samples_section(group, out, options, warnings)
    return lines + (["### Figures", "", *figures] if figures else [])
