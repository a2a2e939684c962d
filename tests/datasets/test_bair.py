"""BAIR robot pushing from TFRecord files (framing and tf.train.Example written here byte by byte): every
window of T frames, validation videos held out, damaged files as one-line errors, data check and tiny runs."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from helpers.format_writers import encode_example, write_tfrecord

from vpbench import config as cfg
from vpbench.datasets import build_dataset

RUN = ["--preset", "tiny", "--epochs", "1"]


def video(number: int, frames: int = 30) -> bytes:
    """One BAIR record: frame t of video ``number`` is a 64x64 RGB image of value (number, t, 7)."""
    features = {}
    for t in range(frames):
        image = np.zeros((64, 64, 3), np.uint8)
        image[...] = (number, t, 7)
        features[f"{t}/action"] = [0.1 * t, -0.2, 0.0, 1.0]
        features[f"{t}/endeffector_pos"] = [0.5, 0.25, float(t)]
        features[f"{t}/image_aux1/encoded"] = image.tobytes()
    return encode_example(features)


def write_bair(root, train=((0, 1), (2, 3)), test=((10, 11),)) -> None:
    for split, files in (("train", train), ("test", test)):
        for numbers in files:
            write_tfrecord(root / "softmotion30_44k" / split / f"traj_{numbers[0]}_to_{numbers[-1]}.tfrecords",
                           [video(n) for n in numbers])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bair")
    write_bair(root)
    return root


def source(name, data, **sets):
    return build_dataset(name, cfg.dataset_config(cfg.load_preset("tiny"), name, sets), data, 0)


def test_every_window_of_each_video_is_a_clip(data):
    bair = source("bair", data, test_sequences=None, val_sequences=15)
    assert (bair.spec.input_frames, bair.spec.output_frames, bair.spec.total_frames) == (2, 14, 16)
    assert bair.videos == {"train": 3, "val": 1, "test": 2}
    assert {k: len(c) for k, c in bair.clips.items()} == {"train": 45, "val": 15, "test": 30}  # 15 per video
    test = bair.split("test")
    assert test.shape == (30, 16, 3, 64, 64)
    assert test[:, 0, 0, 0, 0].tolist() == [10] * 15 + [11] * 15  # video number
    assert test[:15, :, 1, 0, 0].tolist() == [list(range(s, s + 16)) for s in range(15)]  # frames s .. s + 15
    assert (test[:, :, 2] == 7).all()
    batch = bair.train_batch(0, 0, 4)
    assert batch.shape == (4, 16, 3, 64, 64)
    assert all((np.diff(b[:, 1, 0, 0].astype(int)) == 1).all() for b in batch)
    held = set(bair.split("val")[:, 0, 0, 0, 0].tolist())
    trained = {int(v) for i in range(11) for v in bair.train_batch(0, i, 4)[:, 0, 0, 0, 0]}
    assert len(held) == 1 and not held & trained  # whole videos held out


def test_a_pickled_source_reads_the_same_clips(data):
    bair = source("bair", data)
    copy = pickle.loads(pickle.dumps(bair))  # as DataLoader workers receive it
    assert np.array_equal(copy.train_batch(0, 1, 3), bair.train_batch(0, 1, 3))


def test_the_long_setup_takes_one_clip_per_video(data):
    bair = source("bair-long", data, test_sequences=None)
    assert (bair.spec.input_frames, bair.spec.output_frames) == (2, 28)
    assert len(bair.clips["test"]) == 2 and bair.split("test").shape == (2, 30, 3, 64, 64)


def one_line_error(bench, *args) -> str:
    code, _, err = bench(*args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_missing_folders_and_damaged_files_are_one_line_errors(bench, tmp_path):
    run = ("run", "--models", "persistence", "--dataset", "bair", *RUN, "--results-dir", tmp_path / "r")
    assert "bair needs --data-dir" in one_line_error(bench, *run)
    write_bair(tmp_path / "d", test=())
    assert "no test/*.tfrecords" in one_line_error(bench, *run, "--data-dir", tmp_path / "d")
    write_bair(tmp_path / "d")
    test_file = tmp_path / "d" / "softmotion30_44k" / "test" / "traj_10_to_11.tfrecords"
    raw = bytearray(test_file.read_bytes())
    raw[500] ^= 0xFF  # a flipped byte in the first record's data
    test_file.write_bytes(bytes(raw))
    assert "is damaged (its data checksum does not match)" in one_line_error(bench, *run, "--data-dir", tmp_path / "d")
    test_file.write_bytes(bytes(raw[:-100]))
    assert "truncated in record 1" in one_line_error(bench, *run, "--data-dir", tmp_path / "d")
    write_tfrecord(test_file, [video(10, frames=12)])
    err = one_line_error(bench, *run, "--data-dir", tmp_path / "d")
    assert "the test videos have 12 frames, fewer than input_frames + output_frames = 16" in err
    write_tfrecord(test_file, [encode_example({f"{t}/image_aux1/encoded": b"\x00" * 100 for t in range(30)})])
    assert "has 100 bytes; expected 12288 (a raw 64x64 RGB image)" in one_line_error(bench, *run, "--data-dir",
                                                                                    tmp_path / "d")


@pytest.mark.slow
def test_persistence_and_convgru_train_and_evaluate_on_it(bench, data, tmp_path):
    code, out, err = bench("data", "check", "--dataset", "bair", "--data-dir", data, "--preset", "tiny")
    assert code == 0, err
    assert "train       2       3      30       45" in out and "test        1       2      30        4" in out
    code, _, err = bench("run", "--models", "convgru,persistence", "--dataset", "bair", "--data-dir", data, *RUN,
                         "--results-dir", tmp_path / "results")
    assert code == 0, err
    metrics = [json.loads(p.read_text()) for p in (tmp_path / "results").rglob("metrics.json")]
    assert {m["model"] for m in metrics} == {"convgru", "persistence"}
    assert all(m["shape"] == [3, 64, 64] and m["provenance"]["test_sequences"] == 4 for m in metrics)
