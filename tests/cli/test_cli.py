"""The `bench` command line: runs, results folders, errors."""
from __future__ import annotations

import json
import os
import stat

import numpy as np
import pandas as pd
import yaml

from vpbench import store
from vpbench.store import iter_runs

RUN_FILES = {"config.yaml", "environment.json", "status.json", "metrics.json", "framewise.csv", "per_sequence.npz",
             "samples.npz", "train_log.csv", "log.txt", "checkpoints"}


def runs_of(results, model: str) -> list:
    return [r for r in iter_runs(results) if r.path.parent.name == model]


def test_run_writes_a_self_contained_folder(tiny_results):
    (run,) = runs_of(tiny_results, "convgru")
    assert RUN_FILES <= {p.name for p in run.path.iterdir()}
    assert {p.name for p in (run.path / "checkpoints").iterdir()} == {"best.pt", "last.pt"}
    metrics = run.read_json("metrics.json")
    assert {"mse", "mae", "psnr", "ssim", "status", "provenance", "params", "flops"} <= set(metrics)
    assert metrics["status"] == "finished" and metrics["provenance"]["kind"] == "embedded"
    per_frame = np.load(run.file("per_sequence.npz"))["per_frame"]
    assert per_frame.shape == (8, 10, 5)  # tiny: 8 test sequences, 10 predicted frames, 5 metrics
    assert metrics["mse"] == per_frame[..., 0].mean()
    framewise = pd.read_csv(run.file("framewise.csv"))
    assert np.allclose(framewise["ssim"], per_frame[..., 3].mean(axis=0))
    config = yaml.safe_load(run.file("config.yaml").read_text())
    assert config["model"]["name"] == "convgru" and config["preset"] == "tiny"
    assert json.loads(run.file("environment.json").read_text())["torch"]


def test_atomic_writes_get_the_mode_of_an_ordinary_file(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    store.atomic_write_bytes(tmp_path / "a.json", b"{}")
    (tmp_path / "b.json").write_bytes(b"{}")
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == stat.S_IMODE((tmp_path / "b.json").stat().st_mode)


def test_same_seed_same_metrics_and_no_overwrite(own_results, bench):
    code, out, _ = bench("run", "--models", "convgru", "--dataset", "mmnist", "--preset", "tiny",
                         "--results-dir", own_results)
    assert code == 0
    first, second = runs_of(own_results, "convgru")
    keys = ("mse", "mae", "psnr", "ssim")
    a, b = first.read_json("metrics.json"), second.read_json("metrics.json")
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert first.path != second.path


def test_first_line_names_the_preset(own_results, bench):
    code, out, _ = bench("run", "--models", "persistence", "--dataset", "mmnist", "--set",
                         "dataset.test_sequences=2", "--set", "dataset.train_sequences=8", "--set",
                         "dataset.val_sequences=2", "--results-dir", own_results)
    assert code == 0
    assert out.splitlines()[0] == "preset: quick (default on CPU; --preset paper to change)"


def test_list_names_models_groups_and_datasets(bench):
    code, out, _ = bench("list")
    assert code == 0
    for word in ("convgru", "persistence", "all", "rnn", "mmnist", "mmnist-long"):
        assert f"  {word} " in out


def one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err


def test_unknown_model_is_a_one_line_error(bench, tmp_path):
    code, _, err = bench("run", "--models", "nosuch", "--dataset", "mmnist", "--results-dir", tmp_path)
    one_line_error(code, err, "unknown model 'nosuch'", "bench list")


def test_corrupt_standard_test_file_is_a_one_line_error(bench_subprocess, tmp_path):
    (tmp_path / "mnist_test_seq.npy").write_bytes(b"\x93NUMPY garbage")
    proc = bench_subprocess("run", "--models", "persistence", "--dataset", "mmnist", "--preset", "tiny",
                            "--data-dir", tmp_path, "--results-dir", tmp_path / "results")
    one_line_error(proc.returncode, proc.stderr, "mnist_test_seq.npy", "expected the uint8 array")


def test_wrong_size_idx_file_is_a_one_line_error(bench, tmp_path):
    header = np.array([0x803, 60000, 28, 28], dtype=">u4").tobytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(header + bytes(784 * 3))
    code, _, err = bench("run", "--models", "persistence", "--dataset", "mmnist", "--preset", "tiny",
                         "--data-dir", tmp_path, "--results-dir", tmp_path / "results")
    one_line_error(code, err, "train-images-idx3-ubyte", "header announces 60000 images")


def test_missing_data_dir_and_unwritable_results_are_one_line_errors(bench, tmp_path):
    code, _, err = bench("run", "--models", "persistence", "--dataset", "mmnist", "--preset", "tiny",
                         "--data-dir", tmp_path / "nowhere", "--results-dir", tmp_path / "results")
    one_line_error(code, err, "data directory", "does not exist")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = bench("run", "--models", "persistence", "--dataset", "mmnist", "--preset", "tiny",
                         "--results-dir", blocker / "results")
    one_line_error(code, err, "is not writable")


def test_usage_errors_are_one_line(bench):
    code, _, err = bench("run", "--dataset", "mmnist", "--models", "convgru", "--bogus")
    one_line_error(code, err, "unrecognized arguments: --bogus")


def test_profile_json_has_the_documented_keys(bench, tmp_path):
    code, out, _ = bench("profile", "--models", "convgru,persistence", "--dataset", "mmnist", "--preset", "tiny",
                         "--format", "json", "--results-dir", tmp_path)
    assert code == 0
    rows = json.loads(out)  # stdout holds the JSON alone; notes go to stderr
    keys = {"model", "dataset", "preset", "params", "flops", "latency_ms", "train_step_ms", "peak_mem_mb"}
    assert [r["model"] for r in rows] == ["convgru", "persistence"] and all(keys <= set(r) for r in rows)
    assert rows[0]["flops"] > 0 and rows[1]["flops"] == 0 and rows[1]["params"] == 0
    assert (tmp_path / "profiles" / "mmnist-tiny-cpu.json").is_file()


def test_profile_without_timing_keeps_earlier_timings(bench, tmp_path):
    args = ["profile", "--models", "convgru", "--dataset", "mmnist", "--preset", "tiny", "--format", "json",
            "--results-dir", tmp_path]
    code, out, err = bench(*args, "--no-timing")
    (row,) = json.loads(out)
    assert code == 0 and row["params"] > 0 and row["flops"] > 0
    assert row["latency_ms"] is row["train_step_ms"] is row["peak_mem_mb"] is None
    assert bench(*args)[0] == 0
    assert bench(*args, "--no-timing")[0] == 0  # a later profile without timings loses none
    (saved,) = json.loads((tmp_path / "profiles" / "mmnist-tiny-cpu.json").read_text())
    assert saved["train_step_ms"] > 0 and saved["latency_ms"] > 0


def test_profile_says_when_it_would_time_the_paper_preset_on_a_cpu(bench, tmp_path):
    code, out, err = bench("profile", "--models", "persistence", "--dataset", "mmnist", "--preset", "paper",
                           "--format", "json", "--results-dir", tmp_path)
    assert code == 0 and json.loads(out)[0]["model"] == "persistence"
    assert "--no-timing gives parameters and FLOPs" in err
