"""Data of your own and OpenSTL's small sets: ``arrays`` (npy/npz), ``videos`` (folders of clips), Moving
Fashion-MNIST (IDX files) and TaxiBJ (OpenSTL's dataset.npz), each on a small fixture in the real format."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import yaml
from helpers.video_fixtures import write_frames, write_video

from vpbench import config as cfg
from vpbench.datasets import build_dataset

RUN = ["--preset", "tiny", "--epochs", "1"]


def squares(n: int, frames: int, size: int = 16, seed: int = 0) -> np.ndarray:
    """uint8 [n, frames, size, size]: a bright 4x4 square moving one pixel right per frame."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, frames, size, size), np.uint8)
    for i in range(n):
        row, col = rng.integers(0, size - 4, 2)
        for t in range(frames):
            c = (col + t) % (size - 4)
            out[i, t, row:row + 4, c:c + 4] = 255
    return out


def one_line_error(bench, *args) -> str:
    code, _, err = bench(*args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.slow
def test_an_npz_of_moving_squares_trains_end_to_end_and_is_reported(bench, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    np.savez(data / "squares.npz", train=squares(40, 8), test=squares(6, 8, seed=1) / 255.0)
    results = tmp_path / "results"
    code, out, err = bench("run", "--models", "convgru,persistence", "--dataset", "arrays", "--data-dir", data, *RUN,
                           "--results-dir", results)
    assert code == 0, err
    config = cfg.resolve("tiny", "convgru", "arrays", data_dir=data)["dataset"]
    assert (config["input_frames"], config["output_frames"], config["channels"], config["height"]) == (4, 4, 1, 16)
    metrics = [json.loads(p.read_text()) for p in results.rglob("metrics.json")]
    assert {m["model"] for m in metrics} == {"convgru", "persistence"}
    assert all(m["provenance"]["kind"] == "arrays" and m["provenance"]["test_sequences"] == 6 for m in metrics)
    assert bench("report", "--results-dir", results, "--out", tmp_path / "report")[0] == 0
    page = (tmp_path / "report" / "arrays.md").read_text()
    assert "ConvGRU" in page and "Persistence" in page


def test_arrays_splits_clips_and_lengths(tmp_path):
    np.save(tmp_path / "train.npy", squares(20, 12))
    np.save(tmp_path / "val.npy", squares(3, 12, seed=2))
    np.save(tmp_path / "test.npy", squares(4, 12, seed=1)[:, :, None])  # [N, T, C, H, W] works too
    config = cfg.dataset_config(cfg.load_preset("paper"), "arrays", {"input_frames": 3, "output_frames": 3}, tmp_path)
    source = build_dataset("arrays", config, tmp_path, 0)
    assert source.split("test").shape == (8, 6, 1, 16, 16)  # two clips of 6 frames per 12-frame sequence
    assert source.split("val").shape == (6, 6, 1, 16, 16)
    assert np.array_equal(source.split("test")[1], squares(4, 12, seed=1)[0, 6:12, None])
    assert source.train_batch(0, 0, 5).shape == (5, 6, 1, 16, 16)
    defaults = cfg.dataset_config(cfg.load_preset("paper"), "arrays", {}, tmp_path)
    assert (defaults["input_frames"], defaults["output_frames"]) == (6, 6)


@pytest.mark.parametrize("arrays, needle", [
    ({"train": squares(4, 8).astype(np.int64), "test": squares(2, 8)}, "train array: holds int64 values"),
    ({"train": squares(4, 8)[0], "test": squares(2, 8)}, "train array: has shape (8, 16, 16)"),
    ({"train": squares(4, 8) / 100.0, "test": squares(2, 8)}, "outside [0, 1]"),
    ({"train": squares(4, 8), "test": squares(2, 8)[:0]}, "test array: holds no sequence"),
    ({"train": squares(4, 8)}, "has no array test"),
])
def test_each_bad_array_is_a_one_line_error(bench, tmp_path, arrays, needle):
    np.savez(tmp_path / "data.npz", **arrays)
    err = one_line_error(bench, "run", "--models", "persistence", "--dataset", "arrays", "--data-dir", tmp_path,
                         *RUN, "--results-dir", tmp_path / "results")
    assert needle in err
    assert not (tmp_path / "results").exists()


def test_a_sequence_length_that_the_lengths_do_not_fit(bench, tmp_path):
    np.save(tmp_path / "train.npy", squares(4, 8))
    np.save(tmp_path / "test.npy", squares(2, 8))
    err = one_line_error(bench, "run", "--models", "persistence", "--dataset", "arrays", "--data-dir", tmp_path,
                         *RUN, "--set", "dataset.input_frames=6", "--set", "dataset.output_frames=4", "--results-dir",
                         tmp_path / "results")
    assert "train array: sequences of 8 frames are shorter than input_frames + output_frames = 6 + 4" in err


def clip(seed: int, frames: int = 24) -> np.ndarray:
    """[frames, 24, 32, 3] RGB: a square moving right on gray."""
    out = np.full((frames, 24, 32, 3), 60, np.uint8)
    for t in range(frames):
        out[t, 8 + seed % 4: 16 + seed % 4, t: t + 8] = (200, 50, 50)
    return out


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for i in range(3):
        write_video(root / "train" / f"walk{i}.mp4", clip(i), "libx264")
    write_frames(root / "train" / "frames_clip", clip(5))  # a folder of numbered frames is a video too
    write_video(root / "test" / "walk9.avi", clip(9), "mpeg4")
    return root


@pytest.mark.slow
def test_a_folder_of_clips_trains_and_is_checked(bench, video_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VPBENCH_CACHE", str(tmp_path / "cache"))
    sets = ["--set", "dataset.input_frames=3", "--set", "dataset.output_frames=3", "--set", "dataset.frame_size=16",
            "--set", "dataset.grayscale=false"]
    code, out, err = bench("data", "check", "--dataset", "videos", "--data-dir", video_dir, "--preset", "tiny")
    assert code == 0, err
    assert "validation: whole training videos held out" in out and "unreadable: none" in out
    code, out, err = bench("run", "--models", "convgru,persistence", "--dataset", "videos", "--data-dir", video_dir,
                           *RUN, *sets, "--results-dir", tmp_path / "results")
    assert code == 0, err
    metrics = json.loads(next((tmp_path / "results").rglob("persistence/*/metrics.json")).read_text())
    assert metrics["shape"] == [3, 16, 16] and metrics["provenance"]["kind"] == "videos-avi+frames+mp4"
    assert metrics["provenance"]["clips"]["test"] == 4  # 24 frames: four clips of 6, counted back from the end


def test_videos_errors(bench, video_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VPBENCH_CACHE", str(tmp_path / "cache"))
    run = ("run", "--models", "persistence", "--dataset", "videos", *RUN, "--results-dir", tmp_path / "r")
    assert "videos needs --data-dir" in one_line_error(bench, *run)
    (tmp_path / "only_train" / "train").mkdir(parents=True)
    assert "has no test/ folder" in one_line_error(bench, *run, "--data-dir", tmp_path / "only_train")
    err = one_line_error(bench, *run, "--data-dir", video_dir, "--set", "dataset.output_frames=20")
    assert "no train clips of videos" in err and "shorter than 30 frames" in err


def write_idx(path, images: np.ndarray) -> None:
    header = np.array([0x803, len(images), 28, 28], dtype=">u4").tobytes()
    path.write_bytes(gzip.compress(header + images.tobytes()))


def test_moving_fashion_mnist_reads_fashion_mnist_and_its_standard_test_set(bench, tmp_path):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (50, 28, 28), dtype=np.uint8))
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (10, 28, 28), dtype=np.uint8))
    standard = rng.integers(0, 256, (20, 12, 64, 64), dtype=np.uint8)
    np.save(tmp_path / "fmnist_test_seq.npy", standard)
    config = cfg.dataset_config(cfg.load_preset("tiny"), "mfmnist", {})
    source = build_dataset("mfmnist", config, tmp_path, 0)
    assert source.provenance["kind"] == "standard" and "fmnist_test_seq.npy" in source.provenance["test_set"]
    assert np.array_equal(source.split("test")[:, :, 0], standard[:, :8].transpose(1, 0, 2, 3))
    assert "Fashion-MNIST IDX" in source.provenance["train_digits"]
    assert "mfmnist needs --data-dir" in one_line_error(bench, "run", "--models", "persistence", "--dataset",
                                                          "mfmnist", *RUN, "--results-dir", tmp_path / "r")


def test_taxibj_reads_openstls_npz_with_its_normalisation(bench, tmp_path):
    rng = np.random.default_rng(0)
    x = {k: rng.uniform(-1, 1, (n, 4, 2, 32, 32)).astype(np.float32)
         for k, n in (("X_train", 30), ("Y_train", 30), ("X_test", 5), ("Y_test", 5))}
    (tmp_path / "taxibj").mkdir()
    np.savez(tmp_path / "taxibj" / "dataset.npz", **x)
    config = cfg.dataset_config(cfg.load_preset("tiny"), "taxibj", {})
    source = build_dataset("taxibj", config, tmp_path, 0)
    test = source.split("test")
    assert test.shape == (5, 8, 2, 32, 32)
    expected = np.round((np.concatenate([x["X_test"], x["Y_test"]], axis=1) + 1) / 2 * 255)
    assert np.abs(test.astype(float) - expected).max() == 0
    code, _, err = bench("run", "--models", "persistence", "--dataset", "taxibj", "--data-dir", tmp_path, *RUN,
                         "--results-dir", tmp_path / "results")
    assert code == 0, err
    np.savez(tmp_path / "taxibj" / "dataset.npz", X_train=x["X_train"])
    assert "no array Y_train" in one_line_error(bench, "run", "--models", "persistence", "--dataset", "taxibj",
                                                  "--data-dir", tmp_path, *RUN, "--results-dir", tmp_path / "r")


def test_a_run_remembers_its_data_and_eval_reuses_it_while_it_is_there(bench, tmp_path):
    """``bench eval RUN`` without --data-dir: the run's own --data-dir (absolute, from config.yaml), said in a line;
    once that folder is gone, a line says so and the dataset asks for --data-dir."""
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "train.npy", squares(12, 8))
    np.save(data / "test.npy", squares(4, 8, seed=1))
    results = tmp_path / "results"
    code, _, err = bench("run", "--models", "convgru", "--dataset", "arrays", "--data-dir", data, *RUN,
                         "--results-dir", results)
    assert code == 0, err
    (run,) = results.glob("arrays/convgru/*")
    recorded = yaml.safe_load((run / "config.yaml").read_text())["data"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert recorded == {"dir": str(data.resolve()), "digest": metrics["provenance"]["test_sha256"]}
    code, out, err = bench("eval", run, "--horizon", "3")
    assert code == 0, err
    assert f"data: {data.resolve()} (the run's --data-dir)" in out and "arrays 4 -> 3" in out
    code, out, err = bench("eval", run)  # its own test set again: the same digest, no note
    assert code == 0 and "differs from the one the run was tested on" not in out
    np.save(data / "test.npy", squares(4, 8, seed=2))
    code, out, _ = bench("eval", run)
    assert code == 0 and "differs from the one the run was tested on" in out
    data.rename(tmp_path / "moved")
    code, out, err = bench("eval", run, "--horizon", "3")
    assert f"data: the run's data folder {data.resolve()} is gone; pass --data-dir" in out
    assert code == 2 and "arrays needs --data-dir" in err
    code, out, err = bench("eval", run, "--horizon", "3", "--data-dir", tmp_path / "moved")
    assert code == 0 and "the run's --data-dir" not in out, err
