"""Golden file of Mamba's selective scan, from the mamba-ssm package's own pure-PyTorch function.

Writes ``tests/golden/selective_scan.pt`` (read by ``tests/parity/test_parity_selective_scan.py``) from a clone of
github.com/state-spaces/mamba (``--mamba``): ``selective_scan_ref`` of ``mamba_ssm/ops/selective_scan_interface.py``,
imported alone (its package's compiled kernels, Triton layer norm and autocast helpers stand in; einops is needed:
``pip install --target DIR einops``, ``PYTHONPATH=DIR``). The reference computes in float32 whatever its inputs'
dtype, so the file is float32 throughout. Two cases:

* ``vmamba``: as VMRNN's SS2D calls it (``forward_corev0``): 2 sequences, 4 scan directions x 3 channels, 5 states,
  12 positions; B and C per direction ([B, 4, N, L]), the skip D, a step bias and softplus, no gate;
* ``gated``: as the Mamba block calls it: B and C shared by every channel ([B, N, L]), the gate z, no bias or
  softplus.

Each holds the inputs, the output, and the gradients of ``(output * weights).sum()`` with respect to every input.
"""
from __future__ import annotations

from pathlib import Path

import torch
from golden_files import save
from torch import nn

from vpbench.reference.authors_clones import mamba_reference_scan
from vpbench.reference.clones import commit_of, restored_modules

SOURCES = ("mamba",)
REPOSITORY = "github.com/state-spaces/mamba"
SEED = 20261211


def case(scan, generator: torch.Generator, *, grouped: bool, gated: bool) -> dict:
    batch, groups, per_group, states, length = 2, 4, 3, 5, 12
    channels = groups * per_group
    maps = (batch, groups, states, length) if grouped else (batch, states, length)
    inputs = {"u": torch.randn(batch, channels, length, generator=generator),
              "delta": 0.5 * torch.randn(batch, channels, length, generator=generator),
              "A": -torch.exp(0.5 * torch.randn(channels, states, generator=generator)),
              "B": torch.randn(maps, generator=generator), "C": torch.randn(maps, generator=generator),
              "D": torch.randn(channels, generator=generator)}
    if gated:
        inputs["z"] = torch.randn(batch, channels, length, generator=generator)
        inputs["delta"] = inputs["delta"].abs()  # no softplus: positive steps
    else:
        inputs["delta_bias"] = torch.randn(channels, generator=generator)
    options = {"delta_softplus": not gated}
    leaves = {k: nn.Parameter(v.clone()) for k, v in inputs.items()}
    out = scan(**leaves, **options)
    weights = torch.randn(out.shape, generator=generator)
    (out * weights).sum().backward()
    return {"inputs": inputs, "options": options, "output": out.detach(), "weights": weights,
            "grads": {k: v.grad.clone() for k, v in leaves.items()}}


def make(clones: dict[str, Path], out: Path) -> list[Path]:
    with restored_modules("mamba_ssm"):
        scan = mamba_reference_scan(clones["mamba"])
        generator = torch.Generator().manual_seed(SEED)
        cases = {"vmamba": case(scan, generator, grouped=True, gated=False),
                 "gated": case(scan, generator, grouped=False, gated=True)}
    return [save(out / "selective_scan.pt", reference={"repository": REPOSITORY, "commit": commit_of(clones["mamba"]),
                                                       "file": "mamba_ssm/ops/selective_scan_interface.py "
                                                               "(selective_scan_ref)"},
                 seed=SEED, cases=cases, notes="float32: the reference computes in float32")]
