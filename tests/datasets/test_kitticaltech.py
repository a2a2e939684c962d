"""KittiCaltech from PredNet's KITTI hickle files (hickle 2.x's layout, written here with h5py) and OpenSTL's
Caltech cache: clips by PredNet's rule, the test clips of the cache, errors, data check and tiny runs."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from helpers.format_writers import write_hickle2

from vpbench import config as cfg
from vpbench.datasets import build_dataset
from vpbench.datasets.kitticaltech import caltech_starts

RUN = ["--preset", "tiny", "--epochs", "1"]


def frames(first: int, count: int) -> np.ndarray:
    """uint8 [count, 128, 160, 3]; frame i carries its number first + i in pixel (0, 0) of channel 0 and
    a channel ramp (R < G < B) so a channel swap shows."""
    out = np.zeros((count, 128, 160, 3), np.uint8)
    out[..., 0], out[..., 1], out[..., 2] = 10, 20, 30
    out[:, 0, 0, 0] = first + np.arange(count)
    return out


def write_kitticaltech(root, train_runs=(25, 13, 14), val_runs=(12, 16), caltech_videos=(40, 30)) -> None:
    kitti, caltech = root / "kitti_hkl", root / "caltech"
    kitti.mkdir(parents=True)
    caltech.mkdir()
    for split, runs in (("train", train_runs), ("val", val_runs)):
        write_hickle2(kitti / f"X_{split}.hkl", frames(0, sum(runs)))
        write_hickle2(kitti / f"sources_{split}.hkl", [f"city-2011_09_26_drive_{i:04d}_sync" for i, n in
                                                        enumerate(runs) for _ in range(n)])
    np.save(caltech / "data_cache.npy", frames(100, sum(caltech_videos)))
    # OpenSTL's index: clips of 11 frames counted back from the end of each video, in the order it found them
    starts, offset = [], 0
    for n in caltech_videos:
        starts += list(range(offset + n - 11, offset - 1, -11))
        offset += n
    np.save(caltech / "indices_cache.npy", np.array(sorted(starts, reverse=True), np.int32))


@pytest.fixture
def data(tmp_path):
    write_kitticaltech(tmp_path / "data")
    return tmp_path / "data"


def source(name, data, **sets):
    return build_dataset(name, cfg.dataset_config(cfg.load_preset("tiny"), name, sets), data, 0)


def test_clips_follow_prednets_rule_and_the_caltech_cache(data):
    kc = source("kitticaltech", data, train_sequences=None, val_sequences=None, test_sequences=None)
    # KITTI: runs of 25, 13 and 14 frames; clips of 11 counted back from each run's end, one after the other
    assert sorted(kc.clips["train"][:, 1].tolist()) == [3, 14, 27, 41]
    assert sorted(kc.clips["val"][:, 1].tolist()) == [1, 17]
    # Caltech: the cache's clips, in its order
    assert kc.clips["test"][:, 1].tolist() == [59, 48, 29, 18, 7]
    test = kc.split("test")
    assert test.shape == (5, 11, 3, 128, 160)
    assert test[0, :, 0, 0, 0].tolist() == list(range(159, 170))
    assert (test[:, :, :, 5, 5] == [10, 20, 30]).all()  # channels as stored
    batch = kc.train_batch(0, 0, 3)
    assert batch.shape == (3, 11, 3, 128, 160)
    assert all(b[:, 0, 0, 0].tolist() == list(range(b[0, 0, 0, 0], b[0, 0, 0, 0] + 11)) for b in batch)
    assert kc.provenance["clips"] == {"train": 4, "val": 2, "test": 5}


def test_the_extended_horizon_cuts_its_clips_within_the_caches_stretches(data):
    kc = source("kitticaltech-long", data, test_sequences=None)
    assert (kc.spec.input_frames, kc.spec.output_frames) == (10, 5)
    assert sorted(kc.clips["test"][:, 1].tolist()) == [10, 25, 55]  # stretches [7, 40) and [48, 70)
    assert "stretches" in kc.provenance["test_rule"]
    assert caltech_starts(np.array([29, 18, 7]), 11, 40)[0].tolist() == [29, 18, 7]


def test_a_pickled_source_carries_paths_not_frames(data):
    kc = source("kitticaltech", data)
    kc.split("val")
    copy = pickle.loads(pickle.dumps(kc))  # as DataLoader workers receive it
    assert len(pickle.dumps(kc)) < 20_000 < kc.frames[0].nbytes
    assert np.array_equal(copy.train_batch(1, 0, 2), kc.train_batch(1, 0, 2))
    assert np.array_equal(copy.split("test"), kc.split("test"))


def test_caltech_bgr_reverses_the_test_channels_only(data):
    kc = source("kitticaltech", data, caltech_bgr=True)
    assert (kc.split("test")[:, :, :, 5, 5] == [30, 20, 10]).all()
    assert (kc.split("val")[:, :, :, 5, 5] == [10, 20, 30]).all()


def one_line_error(bench, *args) -> str:
    code, _, err = bench(*args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_missing_files_and_wrong_shapes_are_one_line_errors(bench, data, tmp_path):
    run = ("run", "--models", "persistence", "--dataset", "kitticaltech", *RUN, "--results-dir", tmp_path / "r")
    assert "kitticaltech needs --data-dir" in one_line_error(bench, *run)
    (data / "caltech" / "indices_cache.npy").unlink()
    (data / "kitti_hkl" / "sources_val.hkl").unlink()
    err = one_line_error(bench, *run, "--data-dir", data)
    assert "kitti_hkl/sources_val.hkl, caltech/indices_cache.npy not found" in err
    write_kitticaltech(tmp_path / "small")
    write_hickle2(tmp_path / "small" / "kitti_hkl" / "X_train.hkl", np.zeros((52, 64, 64, 3), np.uint8))
    err = one_line_error(bench, *run, "--data-dir", tmp_path / "small")
    assert "X_train.hkl: holds uint8 frames of shape (52, 64, 64, 3); expected uint8 [N, 128, 160, 3]" in err
    (tmp_path / "small" / "kitti_hkl" / "X_train.hkl").write_bytes(b"not hdf5")
    assert "cannot be read as HDF5" in one_line_error(bench, *run, "--data-dir", tmp_path / "small")
    assert not list((tmp_path / "r").rglob("*.json"))  # no run recorded


@pytest.mark.slow
def test_persistence_and_convgru_train_and_evaluate_on_it(bench, data, tmp_path):
    code, out, err = bench("data", "check", "--dataset", "kitticaltech", "--data-dir", data, "--preset", "tiny")
    assert code == 0, err
    assert "train        52          3       4  X_train.hkl" in out and "test         70          -       4" in out
    code, _, err = bench("run", "--models", "convgru,persistence", "--dataset", "kitticaltech", "--data-dir", data,
                         *RUN, "--results-dir", tmp_path / "results")
    assert code == 0, err
    metrics = [json.loads(p.read_text()) for p in (tmp_path / "results").rglob("metrics.json")]
    assert {m["model"] for m in metrics} == {"convgru", "persistence"}
    assert all(m["shape"] == [3, 128, 160] and m["provenance"]["test_sequences"] == 4 for m in metrics)


def test_openstls_published_values_are_declared_with_the_dataset():
    from vpbench.report.paper import tables_for

    table, = tables_for("kitticaltech", (10, 1), "main", "openstl")
    assert table.value("PredRNN", "mse") == 130.4 and table.value("TAU", "lpips") == 0.05494
    assert table.costs["SimVP+gSTA"] == {"params": 15.6e6, "flops": 96.3e9, "fps": 40}
    assert not tables_for("kitticaltech-long", (10, 5), "main", "openstl")
