"""VMRNN: its cross-scan, SS2D's initialisation, the cell's fusing, the contract, recipe and options. Its fidelity
to the authors' code is tested in tests/parity/test_parity_vmrnn.py, its scan against mamba-ssm's in
tests/parity/test_parity_selective_scan.py."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vpbench import config as cfg
from vpbench.errors import UserError
from vpbench.models import create, get_entry
from vpbench.models.layers.vision_mamba import SS2D, cross_merge, cross_scan

pytestmark = pytest.mark.usefixtures("one_thread")


def test_cross_scan_reads_four_orders_and_cross_merge_sums_them_back():
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    orders = cross_scan(x)
    assert orders[0, :, 0].tolist() == [[0, 1, 2, 3, 4, 5], [0, 3, 1, 4, 2, 5], [5, 4, 3, 2, 1, 0],
                                        [5, 2, 4, 1, 3, 0]]
    assert torch.equal(cross_merge(orders, 2, 3), 4 * x.flatten(2))


def test_ss2d_starts_as_mamba():
    torch.manual_seed(0)
    mixer = SS2D(32, d_state=4)
    assert mixer.rank == 2 and mixer.x_proj.shape == (4, 2 + 8, 64) and mixer.dt_proj_weight.shape == (4, 64, 2)
    assert torch.equal(-torch.exp(mixer.A_log), -torch.arange(1.0, 5.0).expand(256, 4))
    assert torch.equal(mixer.skip, torch.ones(256))
    steps = F.softplus(mixer.dt_proj_bias)
    assert steps.min() >= 1e-3 * (1 - 1e-5) and steps.max() <= 0.1 * (1 + 1e-5)
    assert mixer.dt_proj_weight.abs().max() <= 2**-0.5


def test_only_a_cells_first_block_fuses_the_hidden_state():
    model = create("vmrnn", preset="tiny", depths_down=[2, 1], img_size=(16, 16))
    assert [b.fuse is not None for b in model.down[0].blocks] == [True, False]


@pytest.mark.parametrize("patch_size", [2, 4])
def test_predictions_have_the_contract_shape_and_range_and_frames_are_padded(patch_size):
    torch.manual_seed(0)
    model = create("vmrnn", preset="tiny", img_size=(20, 18), patch_size=patch_size).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 1, 20, 18), 2)
    assert out.shape == (2, 2, 1, 20, 18) and out.min() >= 0 and out.max() <= 1


def test_registered_with_the_authors_recipe():
    assert get_entry("vmrnn").label == "VMRNN"
    train = cfg.resolve("paper", "vmrnn", "mmnist")["train"]
    assert {k: train[k] for k in ("loss", "optimizer", "scheduler", "lr", "batch_size")} == {
        "loss": "mse_all_frames", "optimizer": "adam", "scheduler": "cosine", "lr": 1e-4, "batch_size": 4}


@pytest.mark.parametrize("kwargs, message", [({"patch_size": 1}, "patch_size >= 2"), ({"embed_dim": 5}, "even"),
                                             ({"depths_up": [1]}, "one positive depth per level")])
def test_bad_options_are_user_errors(kwargs, message):
    with pytest.raises(UserError, match=message):
        create("vmrnn", preset="tiny", **kwargs)
