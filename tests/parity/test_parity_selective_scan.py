"""Parity of vpbench's selective scan with the mamba-ssm package's own pure-PyTorch reference
(``selective_scan_ref``; golden file: tools/golden/selective_scan.py).

``selective_scan.pt``: two cases, VMRNN's (B and C per scan direction, skip, step bias and softplus) and the Mamba
block's (B and C shared, gate z), in float32 (the reference computes in float32 whatever its inputs). vpbench's
:func:`~vpbench.models.layers.selective_scan.selective_scan_reference` must give the same output and the same
gradients with respect to every input, to float32 precision; in float64 it must agree with its float32 result to
that precision too (it computes in its input's dtype).
"""
from __future__ import annotations

import pytest
import torch
from helpers.parity import assert_close, load_golden

from vpbench.models.layers.selective_scan import selective_scan, selective_scan_reference

pytestmark = pytest.mark.usefixtures("one_thread")
FLOAT32 = 2e-5


@pytest.mark.parametrize("case", ["vmamba", "gated"])
def test_output_and_gradients_equal_mambas_reference_scan(case):
    golden = load_golden("selective_scan")["cases"][case]
    leaves = {k: v.clone().requires_grad_() for k, v in golden["inputs"].items()}
    out = selective_scan_reference(**leaves, **golden["options"])
    assert out.dtype == torch.float32
    assert_close(out, golden["output"], f"{case}: output", FLOAT32)
    (out * golden["weights"]).sum().backward()
    for name, grad in golden["grads"].items():
        assert_close(leaves[name].grad, grad, f"{case}: gradient of {name}", FLOAT32)


def test_float64_inputs_are_scanned_in_float64():
    golden = load_golden("selective_scan")["cases"]["vmamba"]
    wide = {k: v.double() for k, v in golden["inputs"].items()}
    out = selective_scan_reference(**wide, **golden["options"])
    assert out.dtype == torch.float64
    assert_close(out, golden["output"], "float64 output", FLOAT32)


def test_on_a_cpu_the_scan_is_the_reference_loop():
    golden = load_golden("selective_scan")["cases"]["gated"]
    assert torch.equal(selective_scan(**golden["inputs"], **golden["options"]),
                       selective_scan_reference(**golden["inputs"], **golden["options"]))
