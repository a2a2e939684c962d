"""`bench report`: tables against the stored per-sequence metrics, the paired bootstrap, the
conventions, the figures and CSV, and results folders that are empty or damaged.

The results folder holds the real tiny runs of ``tiny_results`` (convgru, persistence) and a real
tiny SRVP run, plus copies of real runs with one thing changed each: a second convgru seed with
perturbed per-sequence metrics, an ablation, a plug-in model, the persistence run under another
preset, and a persistence run on another test set (a real run with 6 test sequences).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import yaml

from vpbench import config as cfg
from vpbench.cli import main
from vpbench.errors import UserError
from vpbench.metrics.frames import METRICS
from vpbench.report import stats
from vpbench.report.build import build_report
from vpbench.report.collect import collect
from vpbench.report.paper import PaperTable, paper_tables
from vpbench.report.tables import step_table

MNIST_PIXELS = 64 * 64


def _run_dir(results: Path, model: str, preset: str = "tiny") -> Path:
    """The first (real) run folder of ``model`` under ``preset``."""
    return next(p for p in sorted(results.glob(f"mmnist/{model}/*")) if f"-{preset}-" in p.name)


def _per_frame(run: Path) -> np.ndarray:
    with np.load(run / "per_sequence.npz") as data:
        assert list(data["metrics"]) == list(METRICS)
        return data["per_frame"]


def _derive(source: Path, model: str, run_id: str, *, per_frame=None, **metrics) -> Path:
    """A copy of a real run folder under ``mmnist/<model>/<run_id>`` with metrics.json (and the
    matching config.yaml keys) changed, and optionally another per_sequence array."""
    target = source.parents[1] / model / run_id
    shutil.copytree(source, target)
    stored = json.loads((target / "metrics.json").read_text())
    stored.update(model=model, run_id=run_id, **metrics)
    config = yaml.safe_load((target / "config.yaml").read_text())
    config.update(preset=stored["preset"], seed=stored["seed"])
    try:  # the model's own settings, as `bench run` would store them
        config["model"] = cfg.resolve(config["preset"], model, "mmnist")["model"]
    except UserError:  # a plug-in that is not installed here
        config["model"]["name"] = model
    if per_frame is not None:
        np.savez_compressed(target / "per_sequence.npz", per_frame=per_frame, metrics=np.array(METRICS))
        stored.update({m: float(per_frame[..., k].mean()) for k, m in enumerate(METRICS)})
    (target / "metrics.json").write_text(json.dumps(stored))
    (target / "config.yaml").write_text(yaml.safe_dump(config))
    return target


@pytest.fixture(scope="module")
def results(tiny_results, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report") / "results"
    shutil.copytree(tiny_results, root)
    common = ["--dataset", "mmnist", "--preset", "tiny", "--results-dir", str(root)]
    assert main(["run", "--models", "srvp", *common]) == 0
    assert main(["run", "--models", "persistence", *common, "--set", "dataset.test_sequences=6"]) == 0
    convgru = _run_dir(root, "convgru")
    per_frame = _per_frame(convgru) * np.array([1.2, 1.1, 0.95, 0.9, 0.9])
    _derive(convgru, "convgru", "29990101-000000-tiny-s1", seed=1, per_frame=per_frame)
    srvp = _run_dir(root, "srvp")
    _derive(srvp, "srvp-no-sa", srvp.name, label="Without-SA", per_frame=_per_frame(srvp) * np.array([1.1, 1, 1, 1, 1]))
    _derive(srvp, "mylab.tinynet", srvp.name, label="TinyNet",
            origin={"kind": "external", "source": "mylab.nets:tinynet", "package": "mylab", "version": "0.3"})
    persistence = sorted(root.glob("mmnist/persistence/*"))[0]
    _derive(persistence, "persistence", persistence.name.replace("-tiny-", "-quick-"), preset="quick")
    (root / "profiles").mkdir()
    (root / "profiles" / "mmnist-tiny-cpu.json").write_text(json.dumps([
        {"model": "convgru", "dataset": "mmnist", "preset": "tiny", "device": "cpu", "params": 11632,
         "flops": 31_000_000, "latency_ms": 12.25, "train_step_ms": 40.5, "peak_mem_mb": 9.4}]))
    return root


@pytest.fixture(scope="module")
def report(results, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "paper"
    build_report(results, out, samples="0,1")
    return out


def _sections(page: str) -> dict[str, str]:
    """``## `` heading -> text of that section."""
    parts = re.split(r"^## ", page, flags=re.M)[1:]
    return {p.splitlines()[0]: p for p in parts}


def _table(section: str, heading: str) -> tuple[list[str], dict[str, list[str]]]:
    """(header, {first cell: cells}) of the first markdown table after ``### heading``."""
    lines = section.split(f"### {heading}", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i, line in enumerate(lines[start:], start) if not line.startswith("|")), len(lines))
    rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines[start:end]]
    return rows[0], {r[0]: r for r in rows[2:]}


def _tiny_section(report: Path) -> str:
    sections = _sections((report / "mmnist.md").read_text())
    (key,) = [k for k in sections if "`tiny`" in k and "TinyNet" in sections[k]]
    return sections[key]


def _cell(header: list[str], row: list[str], column: str, offset: int = 0) -> str:
    return row[header.index(column) + offset].strip("*")


def test_paper_values_are_the_papers_tables():
    tables = {t.id: t for t in paper_tables()}
    assert tables["table1-10"].rows["SRVP"] == (935.02, 0.7474)
    assert tables["table1-30"].rows["MIMO-VP"] == (1021.55, 0.6564)
    assert tables["table2"].rows["ConvLSTM"] == (936.69, 17.1198, 0.5322)
    assert tables["table3"].rows["ST-LSTM"] == (0.9656, 0.9519, 0.9397, 0.9285)
    assert tables["table4"].rows["Without-RFA"] == (1023.84, 18.2027, 0.6983)
    assert tables["table4"].value("SRVP", "mse") == tables["table1-10"].value("SRVP", "mse")
    for table in tables.values():
        width = len(table.steps) if table.per_step else len(table.columns)
        assert all(len(row) == width for row in table.rows.values())
        if table.protocol == "srvp":  # the paper's eight models, or its four ablation rows
            assert len(table.rows) == (4 if table.group == "ablation" else 8)
    assert tables["openstl-mmnist-200"].rows["PredRNN++"] == (22.06, 69.58, 0.9509, 23.65)
    assert tables["openstl-mmnist-2000"].value("PredRNN++", "mse") == 14.07


def test_results_table_cells_are_the_means_of_the_per_sequence_metrics(results, report):
    tiny = _tiny_section(report)
    assert "Preset `tiny` trains other model sizes for fewer epochs than the published runs" in tiny
    header, rows = _table(tiny, "Results")
    assert list(rows) == ["ConvGRU", "SRVP", "Persistence", "TinyNet †"]  # registry order, plug-ins last
    assert header[:6] == ["Model", "n", "Epochs", "MSE ↓", "paper", "Δ"]
    for model, label in [("srvp", "SRVP"), ("persistence", "Persistence")]:
        per_frame = _per_frame(_run_dir(results, model))
        assert rows[label][1] == "1"
        for k, metric in enumerate(["MSE ↓", "MAE ↓", "PSNR ↑", "SSIM ↑"]):
            decimals = 4 if metric.startswith("SSIM") else 2
            assert _cell(header, rows[label], metric) == f"{per_frame[..., k].mean():.{decimals}f}"
    seeds = [_per_frame(p)[..., 0].mean() for p in sorted(results.glob("mmnist/convgru/*"))]
    assert len(seeds) == 2 and rows["ConvGRU"][1] == "2"
    assert _cell(header, rows["ConvGRU"], "MSE ↓") == f"{np.mean(seeds):.2f} ± {np.std(seeds, ddof=1):.2f}"
    assert _cell(header, rows["ConvGRU"], "MSE ↓", 1) == "1033.93"
    assert _cell(header, rows["ConvGRU"], "MSE ↓", 2) == f"{(np.mean(seeds) - 1033.93) / 1033.93 * 100:+.1f}%"
    assert _cell(header, rows["SRVP"], "SSIM ↑", 1) == "0.7474"
    assert _cell(header, rows["Persistence"], "MSE ↓", 1) == "-"
    mses = {label: float(_cell(header, row, "MSE ↓").split(" ")[0]) for label, row in rows.items()}
    assert all(row[header.index("MSE ↓")].startswith("**") == (mses[label] == min(mses.values()))
               for label, row in rows.items())  # SRVP and the plug-in (a copy of SRVP) tie


def test_ablation_table_has_the_papers_table_4(report):
    tiny = _tiny_section(report)
    header, rows = _table(tiny, "Ablations")
    assert "*Preset `tiny` · seeds 0 · epochs 1 · data:" in tiny.split("### Ablations")[1]  # its runs' seeds only
    assert list(rows) == ["SRVP", "Without-SA"]
    assert header.count("paper") == 3  # MSE, PSNR and SSIM, as Table 4
    assert _cell(header, rows["Without-SA"], "MSE ↓", 1) == "968.64"
    assert _cell(header, rows["Without-SA"], "PSNR ↑", 1) == "18.47"


def test_step_table_cells_are_per_frame_means(results):
    (group,) = [g for g in collect(results).groups if g.preset == "tiny" and len(g.models) > 2]
    table = PaperTable("t", "Per step", "mmnist", (10, 10), "main", {"SRVP": (0.5, 0.25)}, metric="ssim", steps=(1, 2))
    lines = step_table(group, ["srvp", "persistence"], table, "paper")
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    srvp = [c.strip() for c in lines[2].strip("|").split("|")]
    ssim = _per_frame(_run_dir(results, "srvp"))[..., 3]
    assert header[2:] == ["SSIM t=1", "paper", "Δ", "SSIM t=2", "paper", "Δ"]
    assert srvp[2].strip("*") == f"{ssim[:, 0].mean():.4f}" and srvp[3] == "0.5000"
    assert srvp[5].strip("*") == f"{ssim[:, 1].mean():.4f}"
    assert srvp[7] == f"{(ssim[:, 1].mean() - 0.25) / 0.25 * 100:+.1f}%"


def test_presets_and_test_sets_are_never_mixed(results, report):
    sections = _sections((report / "mmnist.md").read_text())
    assert len(sections) == 3
    quick, = [s for k, s in sections.items() if "`quick`" in k]
    other, = [s for k, s in sections.items() if "`tiny`" in k and "TinyNet" not in s]
    assert list(_table(quick, "Results")[1]) == ["Persistence"] and "*Preset `quick` · seeds 0" in quick
    assert list(_table(other, "Results")[1]) == ["Persistence"] and "(6 test sequences)" in other
    assert "- Changed from preset `tiny`: Persistence seed 0: dataset.test_sequences: 8 -> 6." in other
    tiny = _tiny_section(report)
    assert "(8 test sequences)" in tiny and "Changed from preset" not in tiny
    assert "*Preset `tiny` · seeds 0, 1 · epochs per model" in tiny
    provenance = json.loads((_run_dir(results, "srvp") / "metrics.json").read_text())["provenance"]["label"]
    assert tiny.count(f"data: {provenance}.*") == 3  # the results, ablation and paired tables name their data
    index = (report / "README.md").read_text()
    assert index.count("[mmnist](mmnist.md)") == 3


def test_paired_comparison_is_the_bootstrap_of_the_per_sequence_differences(results, report):
    header, rows = _table(_tiny_section(report), "Paired comparison")
    assert list(rows) == ["ConvGRU", "Without-SA", "Persistence", "TinyNet"]
    srvp = _per_frame(_run_dir(results, "srvp"))[..., 0].mean(axis=1)
    convgru = np.mean([_per_frame(p)[..., 0].mean(axis=1) for p in sorted(results.glob("mmnist/convgru/*"))], axis=0)
    diff = srvp - convgru
    low, high = stats.bootstrap_ci(diff)
    assert rows["ConvGRU"][1:5] == ["1 / 2", "8", f"{diff.mean():+.2f}", f"[{low:+.2f}, {high:+.2f}]"]
    assert rows["ConvGRU"][5] == ("SRVP lower: a real difference (the CI excludes 0)" if high < 0 else
                                  "SRVP higher: a real difference (the CI excludes 0)" if low > 0 else
                                  "no clear difference (the CI includes 0)")
    assert rows["TinyNet"][3:5] == ["+0.00", "[+0.00, +0.00]"]
    assert rows["TinyNet"][5] == "no clear difference (the CI includes 0)"


def test_bootstrap_interval_matches_a_direct_computation(monkeypatch):
    values = np.random.default_rng(5).normal(1.0, 2.0, size=37)
    rng = np.random.default_rng(0)
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(2000)]
    direct = np.percentile(means, [2.5, 97.5])
    assert np.allclose(stats.bootstrap_ci(values, resamples=2000), direct, rtol=0, atol=1e-12)
    monkeypatch.setattr(stats, "_CHUNK", 100)  # several resamplings per draw, as for long test sets
    assert np.allclose(stats.bootstrap_ci(values, resamples=2000), direct, rtol=0, atol=1e-12)
    low, high = stats.bootstrap_ci(values)
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))  # normal approximation of the same interval
    assert low < values.mean() < high and abs((high - low) / 2 - half) < 0.1 * half


def test_openstl_convention_converts_measured_and_paper_values(results, tmp_path):
    build_report(results, tmp_path, convention="openstl", samples="")
    header, rows = _table(_tiny_section(tmp_path), "Results")
    # By hand: the paper's SRVP MSE 935.02 per pixel on 0-255 is 935.02 / 255^2 x 4096 = 58.898 per frame on [0, 1].
    assert _cell(header, rows["SRVP"], "MSE ↓", 1) == "58.90"
    per_frame = _per_frame(_run_dir(results, "srvp"))
    assert _cell(header, rows["SRVP"], "MSE ↓") == f"{per_frame[..., 0].mean() / 255**2 * MNIST_PIXELS:.2f}"
    assert _cell(header, rows["SRVP"], "MAE ↓") == f"{per_frame[..., 1].mean() / 255 * MNIST_PIXELS:.2f}"
    assert _cell(header, rows["SRVP"], "SSIM ↑") == f"{per_frame[..., 4].mean():.4f}"  # OpenSTL's SSIM
    csv = pd.read_csv(tmp_path / "mmnist-framewise.csv")
    first = csv[(csv.model == "srvp") & (csv.preset == "tiny") & (csv.frame == 1)].set_index("metric")["value"]
    assert first["mse"] == pytest.approx(per_frame[:, 0, 0].mean() * MNIST_PIXELS / 255**2, rel=1e-12)
    assert first["psnr"] == pytest.approx(per_frame[:, 0, 2].mean(), rel=1e-12)
    assert "summed over the pixels of a frame on the [0, 1] scale" in (tmp_path / "README.md").read_text()


def test_framewise_csv_holds_every_run_frame_and_metric(results, report):
    csv = pd.read_csv(report / "mmnist-framewise.csv")
    assert list(csv.columns[:5]) == ["model", "seed", "frame", "metric", "value"]
    assert len(csv) == 8 * 10 * 5  # 8 evaluated runs (convgru x2, srvp, srvp-no-sa, plug-in, persistence x3)
    convgru = _per_frame(sorted(results.glob("mmnist/convgru/*"))[-1])
    rows = csv[(csv.model == "convgru") & (csv.seed == 1) & (csv.metric == "ssim")].sort_values("frame")
    assert np.allclose(rows["value"], convgru[..., 3].mean(axis=0), rtol=1e-12)


def test_each_figure_is_written_and_linked(report):
    page = (report / "mmnist.md").read_text()
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", page)
    names = {p.name for p in report.glob("*.png")}
    assert set(links) == names
    (ablation,) = [n for n in names if n.endswith("-framewise-ablation.png")]
    slug = ablation.removesuffix("-framewise-ablation.png")
    assert {f"{slug}-framewise.png", f"{slug}-cost-quality.png", f"{slug}-sample0.png", f"{slug}-sample1.png"} <= names
    assert len(names) == 3 * 4 + 1  # three groups: frame-wise, cost-quality and two samples each; one ablation plot
    for name in names:
        image = matplotlib.image.imread(report / name)
        assert image.ndim == 3 and min(image.shape[:2]) > 300 and image[..., :3].std() > 0.05, name


def test_plug_in_models_are_marked_external(report):
    tiny = _tiny_section(report)
    assert "† TinyNet: external plug-in model `mylab.nets:tinynet` (mylab, 0.3)." in tiny
    index = (report / "README.md").read_text()
    assert "| TinyNet | `mylab.nets:tinynet` | mylab | 0.3 |" in index


def test_cost_table_uses_profiles_and_run_metrics(report):
    header, rows = _table(_tiny_section(report), "Cost")
    assert header == ["Model", "Params", "GFLOPs", "Latency ms (cpu)", "Train step ms (cpu)", "Peak memory MB (cpu)"]
    assert rows["ConvGRU"][1:] == ["11,632", "0.03", "12.2", "40.5", "9"]
    assert rows["Persistence"][1:] == ["0", "0.00", "-", "-", "-"]


def test_a_results_folder_with_nothing_finished(bench, tmp_path):
    running = tmp_path / "results" / "mmnist" / "convgru" / "20260101-000000-tiny-s0"
    running.mkdir(parents=True)
    (running / "config.yaml").write_text("preset: tiny\n")
    (running / "status.json").write_text('{"status": "running"}')
    code, out, err = bench("report", "--results-dir", tmp_path / "results", "--out", tmp_path / "out")
    assert (code, err) == (0, "")
    assert "No finished runs found" in (tmp_path / "out" / "README.md").read_text()
    code, _, err = bench("report", "--results-dir", tmp_path / "nowhere", "--out", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and "does not exist; pass --results-dir DIR" in err


def test_a_damaged_run_is_skipped_with_a_warning(bench, tiny_results, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(tiny_results, results)
    damaged = _run_dir(results, "convgru") / "metrics.json"
    damaged.write_text('{"model": "convgru", "mse": 12')
    code, out, err = bench("report", "--results-dir", results, "--out", tmp_path / "out", "--samples", "0,7")
    assert code == 0
    warnings = err.splitlines()
    assert len(warnings) == 2 and all(w.startswith("bench report: warning: ") for w in warnings)
    assert f"skipped {damaged.parent}: unreadable run (JSONDecodeError" in warnings[0]
    assert "--samples 7: the tiny runs of mmnist keep 2 test sequences (samples 0-1); skipped" in warnings[1]
    page = (tmp_path / "out" / "mmnist.md").read_text()
    assert "| Persistence |" in page and "| ConvGRU |" not in page
    assert "## Warnings" in (tmp_path / "out" / "README.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--samples", "0,x"], "--samples '0,x': expected comma-separated indices >= 0"),
    (["--samples", "-1"], "--samples '-1': expected comma-separated indices >= 0"),
    (["--convention", "predrnn"], "argument --convention: invalid choice"),
])
def test_bad_report_options_are_one_line_errors(bench, tmp_path, args, message):
    code, _, err = bench("report", "--results-dir", tmp_path, "--out", tmp_path / "out", *args)
    assert code == 2 and err.count("\n") == 1 and message in err


def test_a_damaged_evaluation_leaves_its_run_in_the_report(bench, tiny_results, tmp_path):
    """One `bench eval` output damaged: a warning, that evaluation left out, the trained run and its other
    evaluation kept."""
    results = tmp_path / "results"
    shutil.copytree(tiny_results, results)
    run = _run_dir(results, "convgru")
    for horizon in ("3", "4"):
        assert bench("eval", run, "--horizon", horizon)[0] == 0
    damaged, kept = sorted((run / "evaluations").iterdir())
    (damaged / "per_sequence.npz").write_bytes(b"not a zip")
    code, _, err = bench("report", "--results-dir", results, "--out", tmp_path / "out")
    assert code == 0
    (warning,) = err.splitlines()
    assert warning.startswith(f"bench report: warning: left out {damaged}: unreadable evaluation (")
    page = (tmp_path / "out" / "mmnist.md").read_text()
    assert "| ConvGRU |" in page and "| Persistence |" in page
    assert kept.name.endswith("-h4") and " → 4 (`bench eval" in page and " → 3 (`bench eval" not in page
