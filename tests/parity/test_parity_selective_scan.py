"""Parity of vpbench's selective scans with the mamba-ssm package's own pure-PyTorch reference
(``selective_scan_ref``; golden file: tools/golden/selective_scan.py), and of the chunked scan with the loop.

``selective_scan.pt``: two cases, VMRNN's (B and C per scan direction, skip, step bias and softplus) and the Mamba
block's (B and C shared, gate z), in float32 (the reference computes in float32 whatever its inputs), 12 positions.
vpbench's loop (:func:`~vpbench.models.layers.selective_scan.selective_scan_reference`) and its chunked scan
(:func:`~vpbench.models.layers.selective_scan.selective_scan_chunked`, in chunks of 5 so that the last is partial)
must give the same output and the same gradients with respect to every input, to float32 precision; in float64
they must agree with each other to float64 precision (they compute in their input's dtype).
"""
from __future__ import annotations

import functools

import pytest
import torch
from helpers.parity import assert_close, load_golden

from vpbench.models.layers.selective_scan import selective_scan, selective_scan_chunked, selective_scan_reference

pytestmark = pytest.mark.usefixtures("one_thread")
FLOAT32, FLOAT64 = 2e-5, 1e-12
SCANS = {"loop": selective_scan_reference, "chunked": functools.partial(selective_scan_chunked, chunk_length=5)}


def output_and_grads(scan, inputs: dict[str, torch.Tensor], options: dict, weights: torch.Tensor):
    """The scan's output and the gradients of sum(output * weights) with respect to every input."""
    leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}
    out = scan(**leaves, **options)
    grads = torch.autograd.grad((out * weights).sum(), list(leaves.values()))
    return out, dict(zip(leaves, grads))


@pytest.mark.parametrize("scan", SCANS)
@pytest.mark.parametrize("case", ["vmamba", "gated"])
def test_output_and_gradients_equal_mambas_reference_scan(case, scan):
    golden = load_golden("selective_scan")["cases"][case]
    out, grads = output_and_grads(SCANS[scan], golden["inputs"], golden["options"], golden["weights"])
    assert out.dtype == torch.float32
    assert_close(out, golden["output"], f"{case}: output", FLOAT32)
    for name, grad in golden["grads"].items():
        assert_close(grads[name], grad, f"{case}: gradient of {name}", FLOAT32)


@pytest.mark.parametrize("scan", SCANS)
def test_float64_inputs_are_scanned_in_float64(scan):
    golden = load_golden("selective_scan")["cases"]["vmamba"]
    wide = {k: v.double() for k, v in golden["inputs"].items()}
    out = SCANS[scan](**wide, **golden["options"])
    assert out.dtype == torch.float64
    assert_close(out, golden["output"], "float64 output", FLOAT32)


@pytest.mark.parametrize("length, chunk", [(13, 4), (13, None), (3, 8), (1, None)])
@pytest.mark.parametrize("case", ["vmamba", "gated"])
def test_chunked_scan_equals_the_loop_in_float64(case, length, chunk):
    """Lengths that are not a multiple of the chunk, one shorter than a chunk, one position; the default chunk.
    Steps delta in [0, 1) (the gated case has no softplus), so that the states decay as in a trained model."""
    golden = load_golden("selective_scan")["cases"][case]
    generator = torch.Generator().manual_seed(length)
    draw = {"delta": torch.rand, "u": torch.randn, "z": torch.randn, "B": torch.randn, "C": torch.randn}
    inputs = {k: (draw[k](*v.shape[:-1], length, generator=generator) if k in draw else v).double()
              for k, v in golden["inputs"].items()}
    weights = torch.randn(golden["output"].shape[:-1] + (length,), generator=generator, dtype=torch.float64)
    expected, expected_grads = output_and_grads(selective_scan_reference, inputs, golden["options"], weights)
    chunked = functools.partial(selective_scan_chunked, chunk_length=chunk)
    out, grads = output_and_grads(chunked, inputs, golden["options"], weights)
    assert_close(out, expected, "chunked output", FLOAT64)
    for name, grad in expected_grads.items():
        assert_close(grads[name], grad, f"chunked gradient of {name}", FLOAT64)


def test_on_a_cpu_the_scan_is_the_chunked_scan():
    golden = load_golden("selective_scan")["cases"]["gated"]
    assert torch.equal(selective_scan(**golden["inputs"], **golden["options"]),
                       selective_scan_chunked(**golden["inputs"], **golden["options"]))
