"""Moving MNIST-CIFAR (CIFAR-10 python batches as fixtures, read without unpickling anything but arrays) and
noisy Moving MNIST (OpenSTL's perceptual, missing and dynamic noise on the training inputs only)."""
from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from helpers.format_writers import write_cifar_batch

from vpbench import config as cfg
from vpbench.datasets import build_dataset
from vpbench.datasets import moving_mnist as mm

RUN = ["--preset", "tiny", "--epochs", "1"]


def write_cifar(root, images_per_batch: int = 6) -> None:
    """CIFAR-10's python batches: training images of level 40 + batch, test images of level 90."""
    folder = root / "cifar-10-batches-py"
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", np.full((images_per_batch, 32, 32, 3), 40 + i, np.uint8))
    write_cifar_batch(folder / "test_batch", np.full((images_per_batch, 32, 32, 3), 90, np.uint8))


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_cifar(root)
    return root


def source(name, data, **sets):
    return build_dataset(name, cfg.dataset_config(cfg.load_preset("tiny"), name, sets), data, 0)


def test_binarised_digits_move_over_a_still_cifar_background(cifar):
    seqs = source("mmnist_cifar", cifar)
    train, test = seqs.train_batch(0, 0, 3), seqs.split("test")
    assert train.shape == (3, 20, 3, 64, 64) and test.shape == (8, 20, 3, 64, 64)
    for batch, levels in ((train, set(range(41, 46))), (test, {90})):
        background = batch.min(axis=(1, 2, 3, 4))
        assert set(background.tolist()) <= levels  # one CIFAR image per sequence, from the split's batches
        assert set(np.unique(batch).tolist()) <= levels | {255}  # digits are 255 where drawn
        assert ((batch == 255).reshape(len(batch), 20, -1).any(axis=2)).all()  # and present in every frame
    assert not np.array_equal(train[:, 0], train[:, -1])
    assert seqs.provenance["backgrounds"].startswith("CIFAR-10")


def test_openstls_fixed_test_set_is_read_when_there(tmp_path):
    write_cifar(tmp_path)
    fixed = np.random.default_rng(0).integers(0, 256, (20, 9, 64, 64, 3), dtype=np.uint8)
    np.save(tmp_path / "mnist_cifar_test_seq.npy", fixed)
    test = source("mmnist_cifar", tmp_path).split("test")
    assert np.array_equal(test, fixed[:, :8].transpose(1, 0, 4, 2, 3))


def one_line_error(bench, *args) -> str:
    code, _, err = bench(*args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_missing_batches_and_a_malicious_pickle_are_one_line_errors(bench, tmp_path):
    run = ("run", "--models", "persistence", "--dataset", "mmnist_cifar", *RUN, "--results-dir", tmp_path / "r")
    assert "mmnist_cifar needs --data-dir" in one_line_error(bench, *run)
    assert "no cifar-10-batches-py/" in one_line_error(bench, *run, "--data-dir", tmp_path)
    assert "no cifar-10-batches-py/" in one_line_error(bench, "data", "check", "--dataset", "mmnist_cifar",
                                                         "--data-dir", tmp_path)
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    assert "no test_batch" in one_line_error(bench, *run, "--data-dir", tmp_path)
    write_cifar(tmp_path)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps({b"data": Payload()}, protocol=2))
    err = one_line_error(bench, *run, "--data-dir", tmp_path)
    assert "data_batch_3: not a CIFAR-10 python batch (refused to load posix.system" in err
    assert not marker.exists()  # refused before anything ran
    write_cifar_batch(tmp_path / "cifar-10-batches-py" / "data_batch_3", np.zeros((4, 32, 32, 1), np.uint8))
    assert "expected CIFAR-10's uint8 images of shape [N, 3072]" in one_line_error(bench, *run, "--data-dir",
                                                                                   tmp_path)


def clean_twin(noisy, epoch, index, size):
    """The clean sequences the noisy batch was made from (the noise draws come after the sequences')."""
    rng = np.random.default_rng([noisy.seed, epoch, index])
    return mm.generate(rng, noisy.train_digits, size, noisy.spec.total_frames)


def test_perceptual_noise_hides_a_24x24_square_of_each_input_frame():
    noisy = source("mmnist_noisy", None, noise="perceptual")
    batch, clean = noisy.train_batch(0, 1, 4), clean_twin(noisy, 0, 1, 4)
    assert np.array_equal(batch[:, 10:], clean[:, 10:])  # targets untouched
    changed = batch[:, :10, 0] != clean[:, :10, 0]
    assert (batch[:, :10, 0][changed] == 0).all()  # hidden pixels are black
    boxes = []
    for i, t in np.ndindex(4, 10):
        rows, cols = np.nonzero(changed[i, t])
        if len(rows):
            boxes.append((rows.max() - rows.min() + 1, cols.max() - cols.min() + 1))
    assert len(boxes) > 20 and max(max(b) for b in boxes) <= 24  # each within one 24x24 square
    assert max(h * w for h, w in boxes) > 300  # a square, not a few pixels
    assert np.array_equal(noisy.split("test"), source("mmnist", None).split("test"))  # a clean test set


def test_missing_noise_blanks_input_frames_only():
    noisy = source("mmnist_noisy", None, noise="missing", missing_prob=1.0)
    batch = noisy.train_batch(0, 0, 4)
    assert (batch[:, :10] == 0).all() and (batch[:, 10:].reshape(4, 10, -1).max(axis=2) > 0).all()
    assert (noisy.split("val")[:, :10].reshape(4, 10, -1).max(axis=2) > 0).all()
    kept = source("mmnist_noisy", None, noise="missing", missing_prob=0.0)
    assert np.array_equal(kept.train_batch(0, 0, 4), clean_twin(kept, 0, 0, 4))


def test_dynamic_noise_jitters_the_velocity_of_the_input_frames_only():
    rng = np.random.default_rng(0)
    y, x, theta = rng.random(50), rng.random(50), rng.random(50) * 2 * np.pi
    clean = np.stack(mm.bounce(y, x, theta, 20))
    assert np.array_equal(np.stack(mm.bounce(y, x, theta, 20, jitter=(np.zeros((50, 20)),) * 2)), clean)
    noisy = source("mmnist_noisy", None, noise="dynamic", sigma=0.2)
    paths = np.stack(noisy.jittered_paths(np.random.default_rng(1), 500, 20))  # [2, n, T]
    steps = np.abs(np.diff(paths, axis=2))
    speed = (36 * 0.1)  # free canvas x step: a clean digit moves this far along its direction, each frame
    clean_steps = np.abs(np.diff(np.stack(mm.trajectories(np.random.default_rng(1), 500, 20)), axis=2))
    assert np.hypot(*clean_steps).max() <= speed + 1.5
    assert np.hypot(*steps[:, :, :9]).max() > speed + 1.5  # noisy inputs move faster or slower
    assert np.hypot(*steps[:, :, 11:]).max() <= speed + 1.5  # the targets at the clean speed


def test_a_probability_above_one_is_a_one_line_error(bench, tmp_path):
    err = one_line_error(bench, "run", "--models", "persistence", "--dataset", "mmnist_noisy", *RUN, "--set",
                         "dataset.noise=missing", "--set", "dataset.missing_prob=1.5", "--results-dir", tmp_path)
    assert "dataset.missing_prob=1.5: must be a number in [0, 1]" in err


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["mmnist_cifar", "mmnist_noisy"])
def test_persistence_and_convgru_train_and_evaluate_on_it(bench, cifar, tmp_path, dataset):
    code, out, err = bench("data", "check", "--dataset", dataset, "--data-dir", cifar, "--preset", "tiny")
    assert code == 0, err
    assert ("backgrounds: CIFAR-10" if dataset == "mmnist_cifar" else "noise: perceptual on the training inputs") in out
    code, _, err = bench("run", "--models", "convgru,persistence", "--dataset", dataset, "--data-dir", cifar, *RUN,
                         "--results-dir", tmp_path / "results")
    assert code == 0, err
    metrics = [json.loads(p.read_text()) for p in (tmp_path / "results").rglob("metrics.json")]
    assert {m["model"] for m in metrics} == {"convgru", "persistence"}
    channels = 3 if dataset == "mmnist_cifar" else 1
    assert all(m["shape"] == [channels, 64, 64] for m in metrics)
