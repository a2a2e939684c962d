"""KTH and Human3.6M from small real AVI/MP4 files and frame folders: splits, preprocessing, clips,
the frame cache, `bench data check`, the errors, and an end-to-end run."""
from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.video_fixtures import (
    BLUE,
    GREEN,
    KTH_SEQUENCES,
    KTH_VIDEOS,
    RED,
    h36m_frame,
    kth_frame,
    level,
    luma,
    make_h36m,
    make_h36m_openstl,
    make_kth,
    write_frames,
)
from PIL import Image

from vpbench import config as cfg
from vpbench.datasets import build_dataset
from vpbench.datasets.kth import read_sequences
from vpbench.datasets.video import decode as video
from vpbench.models import build_model, model_names


@pytest.fixture(scope="module")
def kth_dir(tmp_path_factory) -> Path:
    return make_kth(tmp_path_factory.mktemp("kth"))


@pytest.fixture(scope="module")
def h36m_dir(tmp_path_factory) -> Path:
    return make_h36m(tmp_path_factory.mktemp("h36m"))


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """A fresh frame cache for every test."""
    monkeypatch.setenv("VPBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """Names of the sources decoded while the test runs."""
    calls: list[str] = []
    real = video.decode

    def counting(source, prep):
        calls.append(source.name)
        return real(source, prep)

    monkeypatch.setattr(video, "decode", counting)
    return calls


def dataset(name: str, data_dir: Path, preset: str = "tiny", seed: int = 0, **sets):
    config = cfg.dataset_config(cfg.load_preset(preset), name, sets)
    return build_dataset(name, config, data_dir, seed)


def clip_keys(source, split: str) -> list[tuple[str, int]]:
    return [(source.keys[v], int(s)) for v, s in source.clips[split]]


def with_sequences(kth_dir: Path, tmp_path: Path) -> Path:
    """The KTH fixture plus 00sequences.txt (the videos are linked, not copied)."""
    root = tmp_path / "kth_seq"
    for path in kth_dir.rglob("*.avi"):
        (root / path.parent.name).mkdir(parents=True, exist_ok=True)
        os.symlink(path, root / path.parent.name / path.name)
    (root / "00sequences.txt").write_text(KTH_SEQUENCES)
    return root


# -- KTH --------------------------------------------------------------------------------------------


def test_kth_splits_shapes_and_values(kth_dir):
    data = dataset("kth", kth_dir, test_sequences=100, val_sequences=1)
    assert data.spec.total_frames == 20 and (data.spec.channels, data.spec.height, data.spec.width) == (1, 64, 64)
    subjects = {split: {int(key[6:8]) for key, _ in clip_keys(data, split)} for split in ("train", "val", "test")}
    assert subjects["test"] == {17, 25}
    assert subjects["train"] | subjects["val"] <= set(range(1, 17)) and not subjects["train"] & subjects["val"]
    # Whole videos are held out: 4 training-subject videos, one (or more) of them for validation.
    assert len({k for k, _ in clip_keys(data, "train")} | {k for k, _ in clip_keys(data, "val")}) == 4
    test = data.split("test")
    assert test.dtype == np.uint8 and test.shape == (6, 20, 1, 64, 64)
    batch = data.train_batch(0, 0, 3)
    assert batch.dtype == np.uint8 and batch.shape == (3, 20, 1, 64, 64)
    # Frame i of a clip starting at s has level(s + i) in the bottom half (mpeg4: within a few levels).
    for (key, start), clip in zip(clip_keys(data, "test"), test):
        expected = [level(start + i) for i in range(20)]
        np.testing.assert_allclose(clip[:, 0, 40:, :].mean(axis=(1, 2)), expected, atol=3)
    # Center crop: the white side bars are gone; the top-left quadrant is the colour's luma.
    assert test[:, :, :, :, :2].max() < 250
    np.testing.assert_allclose(test[:, :, 0, 4:28, 4:28].mean(), luma((200, 100, 50)), atol=4)


def test_kth_clip_stride_follows_predrnn(kth_dir):
    data = dataset("kth", kth_dir, test_sequences=100, val_sequences=100)  # val: 3 whole videos, every clip
    # Test clips of 20 frames counted back from the last frame: stride 20 for boxing, 3 for running.
    assert clip_keys(data, "test") == [("person17_boxing_d1", 5), ("person17_boxing_d1", 25),
                                       ("person25_running_d3", 1), ("person25_running_d3", 4),
                                       ("person25_running_d3", 7), ("person25_running_d3", 10)]
    expected = {"person01_boxing_d1": [5, 25], "person02_boxing_d1": [5, 25],
                "person03_jogging_d2": [1, 4, 7, 10], "person16_walking_d4": [0, 20]}
    seen: dict[str, list[int]] = {}
    for split in ("train", "val"):
        for key, start in clip_keys(data, split):
            seen.setdefault(key, []).append(start)
    assert seen == expected
    assert data.provenance["clips"]["test"] == 6 and data.provenance["videos"]["test"] == 2


def test_kth_00sequences_ranges(kth_dir, tmp_path):
    ranges = read_sequences(with_sequences(kth_dir, tmp_path) / "00sequences.txt")
    assert ranges["person17_boxing_d1"] == ((1, 20), (21, 45)) and ranges["person25_running_d3"] == ((5, 30),)
    assert len(ranges) == 4  # the header lines are not videos
    data = dataset("kth", tmp_path / "kth_seq", test_sequences=100, val_sequences=100)
    # No clip spans two ranges; each range is counted back from its own end.
    assert clip_keys(data, "test") == [("person17_boxing_d1", 0), ("person17_boxing_d1", 25),
                                       ("person25_running_d3", 4), ("person25_running_d3", 7),
                                       ("person25_running_d3", 10)]
    starts = [s for split in ("train", "val") for k, s in clip_keys(data, split) if k == "person01_boxing_d1"]
    assert sorted(starts) == [2, 25]


def test_kth_frame_folders_crop_resize_gray_exactly(tmp_path):
    """Lossless PNG frames: gray = ITU-R 601 luma, the 120x120 center, box-filtered to 64x64."""
    root = make_kth(tmp_path / "frames", {"person01_boxing_d1": 20, "person02_walking_d1": 20,
                                          "person18_handwaving_d2": 20}, layout="frames")
    data = dataset("kth", root, val_sequences=1)
    clip = data.split("test")[0, :, 0]
    for i, frame in enumerate(clip):  # quadrant boundary at 60 of 120 -> exactly 32 of 64
        expected = np.full((64, 64), level(i), np.uint8)
        expected[:32, :32] = luma((200, 100, 50))
        np.testing.assert_array_equal(frame, expected)
    assert data.provenance["kind"] == "kth-frames"


def test_preprocess_options():
    frame = Image.fromarray(kth_frame(3))
    area, bilinear = (video.Preprocess(64, gray=True, interpolation=i)(frame) for i in ("area", "bilinear"))
    assert area.shape == bilinear.shape == (1, 64, 64)
    assert (area != bilinear).any()  # they differ at the quadrant edges
    rgb = video.Preprocess(100, gray=False)(Image.fromarray(h36m_frame(0, 200, 240)))
    assert rgb.shape == (3, 100, 100)


def test_training_batches_depend_on_seed_epoch_index_only(kth_dir):
    a, b = dataset("kth", kth_dir, seed=3), dataset("kth", kth_dir, seed=3)
    np.testing.assert_array_equal(a.train_batch(1, 2, 4), b.train_batch(1, 2, 4))
    assert a.batches_per_epoch(4) == max(1, min(16, len(a.clips["train"])) // 4)
    orders = {tuple(a._order(epoch)) for epoch in range(4)}
    assert len(orders) > 1  # reshuffled every epoch
    np.testing.assert_array_equal(a.split("test"), b.split("test"))
    assert a.provenance["test_sha256"] == b.provenance["test_sha256"]
    clone = pickle.loads(pickle.dumps(a))  # as a DataLoader worker gets it: memory maps travel as paths
    assert all(isinstance(f, np.memmap) for f in clone.frames)
    np.testing.assert_array_equal(clone.train_batch(1, 2, 4), a.train_batch(1, 2, 4))


def test_cache_second_load_decodes_nothing(kth_dir, cache, decodes):
    first = dataset("kth", kth_dir)
    assert sorted(decodes) == sorted(f"{k.split('_')[1]}/{k}_uncomp" for k in KTH_VIDEOS)
    assert len(list((cache / "kth").glob("*.npy"))) == len(KTH_VIDEOS)
    decodes.clear()
    second = dataset("kth", kth_dir, seed=1)
    for epoch in range(2):
        for index in range(second.batches_per_epoch(4)):
            second.train_batch(epoch, index, 4)
    assert decodes == []
    np.testing.assert_array_equal(first.split("test"), second.split("test"))
    # Another preprocessing, or a changed file, decodes again (that video only).
    dataset("kth", kth_dir, interpolation="bilinear")
    assert len(decodes) == len(KTH_VIDEOS)
    decodes.clear()
    avi = kth_dir / "boxing" / "person01_boxing_d1_uncomp.avi"
    os.utime(avi, ns=(avi.stat().st_atime_ns, avi.stat().st_mtime_ns + 10**9))
    dataset("kth", kth_dir)
    assert decodes == ["boxing/person01_boxing_d1_uncomp"]


def test_damaged_cache_file_is_decoded_again(kth_dir, cache, decodes):
    dataset("kth", kth_dir)
    for path in (cache / "kth").glob("*person17*.npy"):
        path.write_bytes(b"not an array")
    decodes.clear()
    dataset("kth", kth_dir)
    assert decodes == ["boxing/person17_boxing_d1_uncomp"]


def test_cache_dir_option(kth_dir, tmp_path):
    dataset("kth", kth_dir, cache_dir=str(tmp_path / "elsewhere"))
    assert len(list((tmp_path / "elsewhere" / "kth").glob("*.npy"))) == len(KTH_VIDEOS)
    assert not list(kth_dir.rglob("*.npy"))  # nothing written into the data directory


# -- Human3.6M --------------------------------------------------------------------------------------


def test_h36m_splits_shapes_colours_and_clips(h36m_dir):
    data = dataset("human36m", h36m_dir, test_sequences=100)
    assert (data.spec.total_frames, data.spec.channels, data.spec.height, data.spec.width) == (8, 3, 100, 100)
    keys = set(data.keys)
    assert "S1 WalkDog.54138969" not in keys and not any("Dog" in k for k in keys)
    assert {k for k, _ in clip_keys(data, "test")} == {"S9 Walking.60457274", "S11 WalkTogether.54138969"}
    assert {k for k, _ in clip_keys(data, "train")} | {k for k, _ in clip_keys(data, "val")} == {
        "S1 Walking.54138969", "S1 WalkTogether 1.55011271", "S5 Walking 1.58860488"}
    # 45 frames, every 5th kept -> 9 frames; 8-frame clips: train stride 1 (starts 0, 1), test stride 8 (start 1).
    assert [s for _, s in clip_keys(data, "test")] == [1, 1]
    assert sorted(s for _, s in clip_keys(data, "train")) == [0, 0, 1, 1]
    test = data.split("test")
    assert test.shape == (2, 8, 3, 100, 100) and test.dtype == np.uint8
    for colour, (rows, cols) in ((RED, (slice(5, 45), slice(5, 45))), (GREEN, (slice(5, 45), slice(55, 95))),
                                 (BLUE, (slice(55, 95), slice(5, 45)))):
        np.testing.assert_allclose(test[:, :, :, rows, cols].mean(axis=(0, 1, 3, 4)), colour, atol=12)
    # Kept frame j of a clip starting at s is raw frame 5 (s + j).
    gray = test[0, :, :, 55:95, 55:95].mean(axis=(1, 2, 3))
    np.testing.assert_allclose(gray, [level(5 * (1 + j)) for j in range(8)], atol=3)
    crop = data.train_batch(0, 0, 4)  # includes the 200x208 video: cropped to its center square
    assert crop.shape == (4, 8, 3, 100, 100)


def test_h36m_openstl_frame_layout(tmp_path):
    root = make_h36m_openstl(tmp_path / "human")
    write_frames(tmp_path / "human" / "S5" / "Images" / "WalkTogether 2.58860488",
                 np.stack([h36m_frame(i) for i in range(45)]), name="frame_{:06d}.png")
    data = dataset("human36m", root, test_sequences=100)
    assert set(data.keys) == {"S1 Walking.54138969", "S5 WalkTogether 2.58860488", "S9 WalkTogether 1.55011271"}
    gray = data.split("test")[0, :, :, 55:95, 55:95].mean(axis=(1, 2, 3))
    np.testing.assert_allclose(gray, [level(5 * (1 + j)) for j in range(8)], atol=3)  # frames 6, 11, ..., 41
    assert data.provenance["kind"] == "human36m-frames"


@pytest.mark.parametrize("name", model_names())
def test_every_model_runs_on_h36m_frames(name):
    torch.manual_seed(0)
    model = build_model(cfg.resolve("tiny", name, "human36m")).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 4, 3, 100, 100), 4)
    assert out.shape == (2, 4, 3, 100, 100)
    for preset in ("quick", "paper"):  # the full-size models build too (3x100x100 and 1x64x64)
        for data in ("human36m", "kth"):
            with torch.device("meta"):
                build_model(cfg.resolve(preset, name, data))


# -- data check, errors, end to end ----------------------------------------------------------------


def test_data_check_reports_splits_and_missing(bench, kth_dir, tmp_path):
    code, out, err = bench("data", "check", "--dataset", "kth", "--data-dir", with_sequences(kth_dir, tmp_path),
                           "--preset", "tiny")
    assert code == 0, err
    rows = {line.split()[0]: line.split()[1:4] for line in out.splitlines() if line.split()[:1] in
            (["train"], ["val"], ["test"])}
    assert rows["test"] == ["2", "75", "4"]  # 5 clips, 4 evenly spaced (tiny: test_sequences 4)
    assert int(rows["train"][0]) + int(rows["val"][0]) == 4
    assert "person13: handclapping_d3" in out and "00sequences.txt" in out
    assert "unreadable: none" in out


def test_data_check_lists_unreadable_and_fails(bench, kth_dir, tmp_path):
    root = with_sequences(kth_dir, tmp_path)
    (root / "boxing" / "person04_boxing_d1_uncomp.avi").write_bytes(b"RIFF not a video")
    code, out, err = bench("data", "check", "--dataset", "kth", "--data-dir", root, "--preset", "tiny")
    assert code == 2
    assert "person04_boxing_d1_uncomp.avi: cannot be decoded" in out
    assert len(err.strip().splitlines()) == 1 and "1 unreadable videos" in err


def test_h36m_data_check(bench, h36m_dir):
    code, out, err = bench("data", "check", "--dataset", "human36m", "--data-dir", h36m_dir, "--preset", "tiny")
    assert code == 0, err
    assert "S6: no Walking or WalkTogether video" in out
    s1 = next(line for line in out.splitlines() if line.strip().startswith("S1:"))
    assert "Walking (cameras 55011271, 58860488, 60457274)" in s1


def one_line_error(bench, *args) -> str:
    code, _, err = bench(*args)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    return err


def test_errors(bench, kth_dir, tmp_path):
    run = ("run", "--models", "persistence", "--dataset", "kth", "--preset", "tiny", "--results-dir", tmp_path / "r")
    assert "does not exist" in one_line_error(bench, *run, "--data-dir", tmp_path / "nowhere")
    assert "kth needs --data-dir" in one_line_error(bench, *run)
    assert "does not exist" in one_line_error(bench, "data", "check", "--dataset", "kth", "--data-dir",
                                              tmp_path / "nowhere")
    # A video that does not decode: the message names it.
    broken = tmp_path / "broken"
    shutil.copytree(kth_dir, broken)
    (broken / "boxing" / "person04_boxing_d1_uncomp.avi").write_bytes(b"RIFF not a video")
    err = one_line_error(bench, *run, "--data-dir", broken)
    assert "person04_boxing_d1_uncomp.avi: cannot be decoded" in err
    # No test subject: the test split is empty.
    train_only = tmp_path / "train_only"
    shutil.copytree(kth_dir / "boxing", train_only / "boxing", ignore=shutil.ignore_patterns("person17*"))
    shutil.copytree(kth_dir / "running", train_only / "running", ignore=shutil.ignore_patterns("person25*"))
    err = one_line_error(bench, *run, "--data-dir", train_only)
    assert "no test videos of kth (subjects person17-person25)" in err
    # A cache folder that cannot be written.
    (tmp_path / "a_file").write_text("")
    err = one_line_error(bench, *run, "--data-dir", kth_dir, "--set", f"dataset.cache_dir={tmp_path / 'a_file'}")
    assert "cannot write the frame cache" in err and "dataset.cache_dir" in err
    # Videos too short for a clip.
    short = make_kth(tmp_path / "short", {"person01_boxing_d1": 20, "person02_boxing_d1": 20,
                                          "person20_boxing_d1": 12})
    assert "no test clips of kth" in one_line_error(bench, *run, "--data-dir", short)


@pytest.mark.slow
def test_bench_run_end_to_end(bench, kth_dir, tmp_path):
    models = "convgru,srvp"
    code, out, err = bench("run", "--models", models, "--dataset", "kth", "--data-dir", kth_dir, "--preset", "tiny",
                           "--device", "cpu", "--results-dir", tmp_path / "results")
    assert code == 0, err
    metrics = [json.loads(p.read_text()) for p in (tmp_path / "results" / "kth").rglob("metrics.json")]
    assert sorted(m["model"] for m in metrics) == sorted(models.split(","))
    for m in metrics:
        assert m["status"] == "finished" and m["provenance"]["kind"] == "kth-avi"
        assert m["provenance"]["test_sequences"] == 4 and 0 <= m["mse"] < 255**2


def test_h36m_errors(bench, h36m_dir, tmp_path):
    """The Human3.6M rows of the README's bad-input table."""
    run = ("run", "--models", "persistence", "--dataset", "human36m", "--preset", "tiny",
           "--results-dir", tmp_path / "r")
    assert "human36m needs --data-dir" in one_line_error(bench, *run)
    # No training subject: the train split is empty.
    test_only = tmp_path / "test_only"
    for subject in ("S9", "S11"):
        shutil.copytree(h36m_dir / subject, test_only / subject)
    assert "no train videos of human36m (subjects S1, S5, S6, S7, S8)" in one_line_error(bench, *run, "--data-dir",
                                                                                         test_only)
    # A video that does not decode.
    broken = tmp_path / "broken"
    shutil.copytree(h36m_dir, broken)
    (broken / "S9" / "Videos" / "Walking.60457274.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    assert "Walking.60457274.mp4: cannot be decoded" in one_line_error(bench, *run, "--data-dir", broken)
    # Test videos too short for a clip of 8 kept frames (one in 5): the test split has no clips.
    short = make_h36m(tmp_path / "short", {"S1/Videos/Walking.54138969.mp4": (45, 200),
                                           "S5/Videos/Walking.54138969.mp4": (45, 200),
                                           "S9/Videos/Walking.54138969.mp4": (30, 200)})
    assert "no test clips of human36m" in one_line_error(bench, *run, "--data-dir", short)
    assert not (tmp_path / "r").exists() or not list((tmp_path / "r").rglob("config.yaml"))
