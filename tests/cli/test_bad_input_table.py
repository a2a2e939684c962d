"""Bad input, table-driven, across the commands: each case is exit code 2 with one line on stderr (naming the
problem), no traceback, nothing computed, and no file of an existing results folder changed."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from vpbench.store import iter_runs

TINY = ["--dataset", "mmnist", "--preset", "tiny"]


@pytest.fixture(scope="module")
def world(tiny_results, tmp_path_factory) -> dict[str, Path]:
    """A finished results folder (tiny convgru and persistence runs) and the bad files the cases point at."""
    root = tmp_path_factory.mktemp("bad-inputs")
    results = Path(shutil.copytree(tiny_results, root / "results"))
    runs = {r.path.parent.name: r.path for r in iter_runs(results)}
    files = root / "files"
    files.mkdir()
    frames = np.zeros((10, 64, 64), np.float32)
    np.save(files / "nan.npy", np.where(np.arange(64) == 3, np.nan, frames))
    np.save(files / "inf.npy", np.where(np.arange(64) == 3, np.inf, frames))
    np.save(files / "wide.npy", np.full((10, 64, 64), 2.0, np.float32))
    np.save(files / "ints.npy", np.zeros((10, 64, 64), np.int64))
    np.save(files / "flat.npy", np.zeros((10, 64), np.uint8))
    np.save(files / "few.npy", np.zeros((2, 64, 64), np.uint8))
    np.save(files / "objects.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    (files / "damaged.npy").write_bytes(b"\x93NUMPY garbage")
    (files / "pngs").mkdir()
    for name in ("001.png", "002.png"):
        (files / "pngs" / name).write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    (files / "no-images").mkdir()
    (files / "no-images" / "notes.txt").write_text("no frames here")
    (files / "video.mp4").write_bytes(b"not a video")
    for name, arrays in {"object-npz": {"train": np.array([1, "a"], dtype=object), "test": np.zeros((2, 8, 8, 8))},
                         "nan-npy": None, "float-range": None, "empty": None, "shape": None}.items():
        (files / name).mkdir()
        if arrays is not None:
            np.savez(files / name / "data.npz", **arrays)
    np.save(files / "nan-npy" / "train.npy", np.full((4, 8, 8, 8), np.nan, np.float32))
    np.save(files / "nan-npy" / "test.npy", np.zeros((4, 8, 8, 8), np.float32))
    np.save(files / "float-range" / "train.npy", np.full((4, 8, 8, 8), 3.0, np.float32))
    np.save(files / "float-range" / "test.npy", np.zeros((4, 8, 8, 8), np.float32))
    np.save(files / "shape" / "train.npy", np.zeros((4, 8), np.uint8))
    np.save(files / "shape" / "test.npy", np.zeros((4, 8), np.uint8))
    (files / "profiles").mkdir()
    return {"results": results, "convgru": runs["convgru"], "persistence": runs["persistence"], "files": files,
            "out": root / "out", "nowhere": root / "nowhere"}


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``folder``: size, modification time and content digest."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


RUN = ["run", "--models", "convgru", *TINY, "--results-dir", "{results}"]
ARRAYS = ["run", "--models", "convgru", "--dataset", "arrays", "--preset", "tiny", "--results-dir", "{results}"]
PREDICT = ["predict", "{convgru}", "--out", "{out}"]
CASES = [
    # bench run
    (["run", "--models", "nosuch", *TINY, "--results-dir", "{results}"], "unknown model 'nosuch'"),
    (["run", "--models", "convgru", "--dataset", "nosuch", "--results-dir", "{results}"], "unknown dataset 'nosuch'"),
    (["run", "--models", "convgru", "--dataset", "mmnist", "--preset", "fast", "--results-dir", "{results}"],
     "unknown preset 'fast'"),
    ([*RUN, "--epochs", "0"], "--epochs 0 trains nothing"),
    ([*RUN, "--epochs=-1"], "invalid value train.epochs=-1"),
    ([*RUN, "--set", "train.epochs=0"], "--epochs 0 trains nothing"),
    ([*RUN, "--set", "train.lr=inf"], "invalid value train.lr=inf: must be a number > 0"),
    ([*RUN, "--set", "train.lr=nan"], "invalid value train.lr=nan"),
    ([*RUN, "--set", "train.lr=-1"], "invalid value train.lr=-1"),
    ([*RUN, "--set", "train.weight_decay=-inf"], "invalid value train.weight_decay=-inf"),
    ([*RUN, "--set", "train.grad_clip=inf"], "invalid value train.grad_clip=inf"),
    ([*RUN, "--set", "train.momentum=1.5"], "invalid value train.momentum=1.5"),
    ([*RUN, "--set", "train.nosuch=1"], "unknown training option train.nosuch"),
    ([*RUN, "--set", "lr=1"], "--set 'lr=1': expected SECTION.KEY=VALUE"),
    ([*RUN, "--set", "model.nosuch=1"], "takes no option nosuch"),
    ([*RUN, "--set", "dataset.nosuch=1"], "has no option nosuch"),
    ([*RUN, "--set", "dataset.test_sequences=0"], "dataset.test_sequences"),
    ([*RUN, "--seeds", "x"], "--seeds 'x': expected seeds >= 0"),
    ([*RUN, "--seeds=-2"], "--seeds '-2'"),
    ([*RUN, "--device", "tpu"], "--device 'tpu': expected auto, cpu, cuda or cuda:N"),
    ([*RUN, "--data-dir", "{nowhere}"], "does not exist"),
    ([*RUN, "--init", "{nowhere}"], "is not a run folder (no config.yaml)"),
    ([*RUN, "--init", "{persistence}"], "has no checkpoint to evaluate"),
    ([*RUN, "--resume", "--set", "train.lr=0.5"], "has another configuration (train.lr: 0.001 -> 0.5)"),
    ([*RUN, "--precision", "fp8"], "argument --precision: invalid choice"),
    ([*RUN, "--nosuch"], "unrecognized arguments: --nosuch"),
    (ARRAYS, "arrays needs --data-dir"),
    ([*ARRAYS, "--data-dir", "{files}/object-npz"], "data.npz[train]: cannot be read (ValueError: Object arrays"),
    ([*ARRAYS, "--data-dir", "{files}/nan-npy"], "train array: float values in [nan, nan], outside [0, 1]"),
    ([*ARRAYS, "--data-dir", "{files}/float-range"], "train array: float values in [3, 3], outside [0, 1]"),
    ([*ARRAYS, "--data-dir", "{files}/shape"], "train array: has shape (4, 8)"),
    ([*ARRAYS, "--data-dir", "{files}/empty"], "no train.npy or test.npy in"),
    # bench eval
    (["eval", "{nowhere}"], "is not a run folder (no config.yaml)"),
    (["eval", "{results}"], "is not a run folder (no config.yaml)"),
    (["eval", "{persistence}"], "has no checkpoint to evaluate"),
    (["eval", "{convgru}", "--horizon", "0"], "--horizon 0: must be at least 1 frame"),
    (["eval", "{convgru}", "--horizon=-3"], "--horizon -3: must be at least 1 frame"),
    (["eval", "{convgru}", "--horizon", "1000000"], "GiB of memory"),
    (["eval", "{convgru}", "--dataset", "nosuch"], "unknown dataset 'nosuch'"),
    (["eval", "{convgru}", "--set", "train.lr=1"], "takes --set dataset.KEY=VALUE and metrics.KEY=VALUE only"),
    (["eval", "{convgru}", "--set", "dataset.input_frames=4"], "trained on 10 input frames, the test data has 4"),
    (["eval", "{convgru}", "--device", "tpu"], "--device 'tpu'"),
    (["eval", "{convgru}", "--horizon", "x"], "argument --horizon: invalid int value"),
    # bench predict
    ([*PREDICT, "--input", "{files}/nan.npy"], "NaN or infinite values"),
    ([*PREDICT, "--input", "{files}/inf.npy"], "NaN or infinite values"),
    ([*PREDICT, "--input", "{files}/wide.npy"], "float32 values in [2, 2]; expected uint8 (0-255) or float in [0, 1]"),
    ([*PREDICT, "--input", "{files}/ints.npy"], "int64 values; expected uint8"),
    ([*PREDICT, "--input", "{files}/flat.npy"], "an array of shape (10, 64)"),
    ([*PREDICT, "--input", "{files}/few.npy"], "2 frames, but the run's model reads 10"),
    ([*PREDICT, "--input", "{files}/objects.npy"], "cannot be read as .npy"),
    ([*PREDICT, "--input", "{files}/damaged.npy"], "cannot be read as .npy"),
    ([*PREDICT, "--input", "{files}/pngs"], "001.png: not an image PIL can read"),
    ([*PREDICT, "--input", "{files}/no-images"], "no image"),
    ([*PREDICT, "--input", "{files}/video.mp4"], "not an image folder, a .npy array or a video"),
    ([*PREDICT, "--input", "{nowhere}/x.npy"], "cannot be read as .npy"),
    ([*PREDICT, "--input", "{files}/few.npy", "--horizon", "0"], "--horizon 0: must be at least 1 frame"),
    (["predict", "{persistence}", "--input", "{files}/few.npy", "--out", "{out}"], "has no checkpoint to evaluate"),
    # bench report
    (["report", "--results-dir", "{nowhere}", "--out", "{out}"], "does not exist; pass --results-dir DIR"),
    (["report", "--results-dir", "{results}", "--out", "{out}", "--samples", "x"], "--samples 'x'"),
    (["report", "--results-dir", "{results}", "--out", "{out}", "--figure-format", "bmp"], "bmp"),
    (["report", "--results-dir", "{results}", "--out", "{out}", "--convention", "x"], "argument --convention"),
    # bench data check
    (["data", "check", "--dataset", "nosuch", "--data-dir", "{files}"], "unknown dataset 'nosuch'"),
    (["data", "check", "--dataset", "kth", "--data-dir", "{nowhere}"], "does not exist"),
    (["data", "check", "--dataset", "arrays", "--data-dir", "{files}/object-npz"], "Object arrays"),
    (["data", "check", "--dataset", "arrays", "--data-dir", "{files}/empty"], "no train.npy or test.npy"),
    (["data", "check", "--dataset", "mmnist"], "the following arguments are required: --data-dir"),
    # bench profile
    (["profile", "--models", "nosuch", *TINY, "--results-dir", "{results}"], "unknown model 'nosuch'"),
    (["profile", "--models", "convgru", "--dataset", "arrays", "--preset", "tiny", "--results-dir", "{results}"],
     "arrays needs --data-dir"),
    (["profile", "--models", "convgru", *TINY, "--set", "train.lr=inf", "--results-dir", "{results}"],
     "invalid value train.lr=inf"),
    (["profile", "--models", "convgru", *TINY, "--set", "model.nosuch=1", "--results-dir", "{results}"],
     "takes no option nosuch"),
    (["profile", "--models", "convgru", *TINY, "--format", "xml"], "argument --format: invalid choice"),
    # bench status
    (["status", "--results-dir", "{nowhere}"], "does not exist; pass --results-dir DIR"),
    (["status", "--results-dir", "{results}", "--format", "xml"], "argument --format: invalid choice"),
]


@pytest.mark.parametrize("args, needle", CASES, ids=[f"{i:02d}-{' '.join(a[:1] + a[-2:])}" for i, (a, _) in
                                                        enumerate(CASES)])
def test_a_bad_input_is_one_line_and_changes_no_result(world, bench, args, needle):
    before = snapshot(world["results"])
    code, _, err = bench(*(a.format(**world) for a in args))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert needle in err, err
    assert snapshot(world["results"]) == before
    assert not world["out"].exists() and not world["nowhere"].exists()


def test_the_table_covers_every_command_and_forty_cases():
    commands = {args[0] for args, _ in CASES}
    assert commands == {"run", "eval", "predict", "report", "data", "profile", "status"} and len(CASES) >= 40
