"""Golden parity files: outputs and gradients of the reference code, for the parity tests.

Each ``tests/golden/<name>.pt`` was written by ``tools/golden/make.py`` from a clone of the
reference code, in float64 at a tiny configuration. It holds at least:

* ``reference``: repository, commit and file of the reference code;
* ``config``: the configuration (the reference's constructor arguments and vpbench's options);
* ``state_dict``: the reference model's weights;
* ``inputs`` and ``output``: a fixed input and the reference's output for it;
* ``grads``: the reference's parameter gradients (by its names) after ``output``'s fixed loss
  (the mean of ``output * loss_weights``, ``loss_weights`` also stored) is backpropagated.

The tests load the weights into vpbench's model through the package's weight mappings
(:mod:`vpbench.reference.mappings`, which ``bench import`` uses too), run the same input and compare
outputs and gradients in float64 (``TOLERANCE``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import pytest
import torch

from vpbench.reference.mappings.links import WeightMap

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
TOLERANCE = 1e-10  # float64 throughout


def load_golden(name: str) -> dict[str, Any]:
    """The golden file ``tests/golden/<name>.pt``."""
    path = GOLDEN / f"{name}.pt"
    if not path.is_file():
        pytest.fail(f"{path} is missing; regenerate it with tools/golden/make.py")
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str, tol: float = TOLERANCE) -> None:
    """Same shape, and every value within ``tol`` of the reference's (absolute)."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != reference {tuple(expected.shape)}"
    diff = (actual.detach().double() - expected.double()).abs().max().item() if actual.numel() else 0.0
    assert diff <= tol, f"{what}: differs from the reference by {diff:.3g} (tolerance {tol:.0e})"


def assert_grads(ours: Mapping[str, torch.Tensor], golden: Mapping[str, torch.Tensor],
                 to_reference: Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]],
                 tol: float = TOLERANCE) -> None:
    """vpbench's gradients, mapped to the reference's names and layouts, equal the reference's."""
    mapped = to_reference(ours)
    missing = sorted(set(golden) - set(mapped))
    assert not missing, f"no vpbench gradient maps to the reference's {missing[:5]}"
    for name, grad in golden.items():
        assert_close(mapped[name], grad, f"gradient of {name}", tol)


def squared_loss_target(output: torch.Tensor, loss_weights: torch.Tensor) -> torch.Tensor:
    """The target y at which the MSE of the reference's ``output`` has the golden file's gradients: the gradient
    of mean((output - y)^2) with respect to the output, 2 (output - y) / N, is that of the fixed linear loss,
    loss_weights / N, when y = output - loss_weights / 2 (broadcast to the output's shape). A loss computed on a
    clamped output differs wherever the output leaves [0, 1]; the MSE is then mean(loss_weights^2) / 4."""
    return output - loss_weights.expand_as(output) / 2


def grads_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """vpbench's parameter gradients by name (zeros where the loss did not reach a parameter)."""
    return {n: (p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()}


# -- the package's weight mappings, applied to golden files

def load_mapped(model: torch.nn.Module, weights: WeightMap, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """The reference's ``state`` into ``model`` through ``weights`` (every vpbench tensor and every reference
    tensor covered: ``strict`` and :meth:`WeightMap.check`)."""
    model.load_state_dict(weights.to_vpbench(state), strict=True)
    return model


def by_reference(weights: WeightMap, state: Mapping[str, torch.Tensor]
                 ) -> Callable[[Mapping[str, torch.Tensor]], Mapping[str, torch.Tensor]]:
    """vpbench's gradients under the reference's names and layouts (for ``assert_grads``)."""
    return lambda ours: weights.to_reference(ours, state)


# -- golden files too large to hold every weight and gradient (CrevNet's 3D predictor: 1.2 M parameters at its
#    smallest): the weights are drawn from a seed, the gradients kept as sketches

def seeded_weights(shapes: Mapping[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    """Float64 weights for the parameters ``shapes`` (in order) from ``seed``: N(0, 1 / fan_in) for tensors of
    2 or more dimensions (fan_in: their size over their first dimension), 1 + N(0, 0.04) for norm weights
    (``*.weight`` of one dimension), N(0, 0.01) for the other vectors."""
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for name, shape in shapes.items():
        x = torch.randn(shape, generator=generator, dtype=torch.float64)
        if len(shape) > 1:
            weights[name] = x / (torch.Size(shape).numel() / shape[0]) ** 0.5
        else:
            weights[name] = 1 + 0.2 * x if name.endswith(".weight") else 0.1 * x
    return weights


def seeded_sequences(golden: Mapping[str, Any], batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets [batch, *in_shape] (float64) drawn again from the golden file's ``data_seed``, for a file
    whose frames would be too large to store (IAM4VP's: ``config["reference"]["in_shape"]``)."""
    generator = torch.Generator().manual_seed(golden["data_seed"])
    shape = golden["config"]["reference"]["in_shape"]
    return tuple(torch.rand(batch, *shape, generator=generator, dtype=torch.float64) for _ in range(2))


def sketch(tensors: Mapping[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Each tensor as [its dot product with a N(0, 1) tensor drawn from ``seed`` (in order), its norm]: two tensors
    that differ anywhere differ there, but by chance."""
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.stack([(t.double() * torch.randn(t.shape, generator=generator, dtype=torch.float64)).sum(),
                               t.double().norm()]) for name, t in tensors.items()}
