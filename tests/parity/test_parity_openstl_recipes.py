"""vpbench's trainer against OpenSTL's own training code, several optimiser steps (golden files:
``tools/golden/openstl_recipes.py``).

The golden files hold what OpenSTL's method class, optimiser and scheduler builder and sampling function did over
6 optimiser steps (2 epochs of 3 batches, float64): the rate of each step, its loss, the weights after it, and the
numpy draws of its scheduled sampling. Here vpbench's trainer (``fit``, the loop ``bench run`` runs) trains vpbench's
model, loaded with the same initial weights, on the same batches under the model's own ``openstl`` recipe (only the
run's length, batch, peak rate and schedule constants set to the golden's), with OpenSTL's draws given to it
(``fit(..., uniform=...)``), and every step must match: rate (1e-15), loss and weights (1e-10).

* ``stlstm`` (PredRNN): Adam + OneCycle stepped every batch + ``mse_all_frames`` with scheduled sampling, against
  ``PredRNN.training_step`` (``schedule_sampling``: P(true frame) past the input window 1 - rate x (step + 1), 0
  from ``sampling_stop_iter`` on).
* ``simvp2`` (SimVP, gSTA): Adam + OneCycle stepped every batch + MSE, against ``SimVP.training_step`` (the MSE of
  the raw output, which the golden's spreads over [-0.5, 1.5]); weights compared by their sketches
  (``helpers.parity.sketch``), batch-norm statistics included. OpenSTL's stochastic depth at drop_path 0 is off on
  both sides (see the generator).
* ``predrnnv2`` (PredRNN.V2): Adam + OneCycle + ``mse_decoupling`` with reverse scheduled sampling, against
  ``PredRNNv2.training_step`` (``reserve_schedule_sampling_exp``: both of its draws injected; the schedule from step
  1 to 4 at alpha 2 covers its three phases in 6 steps).
"""
from __future__ import annotations

from typing import Any, Mapping

import pytest
import torch
from helpers.parity import load_golden
from helpers.recipes import assert_steps_match, train_like_bench

from vpbench.config import load_preset, train_config
from vpbench.models import create
from vpbench.reference.mappings.recurrent import openstl_predrnnv2, openstl_stack
from vpbench.reference.mappings.simvp import frame_map, rules_for

pytestmark = pytest.mark.usefixtures("one_thread")


def recipe(model: str, golden: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """The model's ``openstl`` recipe as ``bench run`` resolves it, at the golden's length, batch and schedule
    constants (``changes``: one more key changed, to see the test fail)."""
    return train_config(load_preset("openstl"), model, "mmnist", {**golden["config"]["vpbench"]["train"], **changes},
                        None)


def openstl_sampling_draws(golden: Mapping[str, Any], input_frames: int):
    """OpenSTL's scheduled-sampling draws as vpbench's stack asks for them: [B, steps], column t for step t.
    ``schedule_sampling`` draws [B, T_out - 1] for the steps past the input window; ``reserve_schedule_sampling_exp``
    also draws [B, T_in - 1] first, for steps 1..T_in-1. NaN where OpenSTL draws none (a comparison with it would
    read the model's own prediction and show)."""

    def draws(step: int, shape: tuple[int, ...]) -> torch.Tensor:
        *inside, past = golden["draws"][step]
        out = torch.full(shape, float("nan"), dtype=torch.float64)
        out[:, input_frames:] = past
        if inside:
            out[:, 1:input_frames] = inside[0]
        return out

    return draws


def stack_run(name: str, model_name: str, mapping, **changes: Any):
    """vpbench's trainer on the golden ``recipe_<name>.pt`` of an OpenSTL recurrent method: ``model_name``'s
    ``openstl`` recipe, OpenSTL's sampling draws, weights mapped by ``mapping``."""
    golden = load_golden(f"recipe_{name}")
    model = create(model_name, preset="openstl", **golden["config"]["vpbench"]["model"]).double()
    options = {"name": model_name, **golden["config"]["vpbench"]["model"]}
    weights = mapping(golden["state_dict"], model.state_dict(), options)
    model.load_state_dict(weights.to_vpbench(golden["state_dict"]))
    recorder = train_like_bench(model, golden, recipe(model_name, golden, **changes),
                                openstl_sampling_draws(golden, golden["config"]["input_frames"]))
    return recorder, golden, lambda ours: weights.to_reference(ours, golden["state_dict"]), weights.unused


def predrnn_run(**changes: Any):
    return stack_run("predrnn", "stlstm", openstl_stack, **changes)


def test_predrnn_recipe_matches_openstl() -> None:
    """PredRNN: Adam + OneCycle + scheduled sampling, 6 steps."""
    recorder, golden, to_reference, unused = predrnn_run()
    assert_steps_match(recorder, golden, to_reference, skip=unused)


@pytest.mark.parametrize("changes", [{"sampling_changing_rate": 0.2}, {"sampling_stop_iter": 2},
                                     {"sampling": "none"}, {"scheduler": "none"}])
def test_predrnn_golden_sees_a_changed_recipe(changes: dict[str, Any]) -> None:
    """One thing of the recipe changed (the sampling schedule's slope or end, no sampling, a constant rate): the
    steps no longer match."""
    with pytest.raises(AssertionError, match="differs from the reference"):
        recorder, golden, to_reference, unused = predrnn_run(**changes)
        assert_steps_match(recorder, golden, to_reference, skip=unused)


def simvp_run(**changes: Any):
    golden = load_golden("recipe_simvp")
    model = create("simvp2", preset="openstl", **golden["config"]["vpbench"]["model"]).double()
    weights = frame_map(golden["state_dict"], model.state_dict(), rules_for("gsta"))
    model.load_state_dict(weights.to_vpbench(golden["state_dict"]))
    recorder = train_like_bench(model, golden, recipe("simvp2", golden, **changes))
    return recorder, golden, lambda ours: weights.to_reference(ours, golden["state_dict"])


def test_simvp_recipe_matches_openstl() -> None:
    """SimVP (gSTA): Adam + OneCycle + MSE of the raw output, 6 steps."""
    assert_steps_match(*simvp_run())


@pytest.mark.parametrize("changes", [{"loss": "mse"}, {"weight_decay": 1e-2}])
def test_simvp_golden_sees_a_changed_recipe(changes: dict[str, Any]) -> None:
    """The loss on the clamped output, or a weight decay: the steps no longer match."""
    with pytest.raises(AssertionError, match="differs from the reference"):
        assert_steps_match(*simvp_run(**changes))


def predrnnv2_run(**changes: Any):
    return stack_run("predrnnv2", "predrnnv2", openstl_predrnnv2, **changes)


def test_predrnnv2_recipe_matches_openstl() -> None:
    """PredRNN.V2: Adam + OneCycle + MSE and decoupling term + reverse scheduled sampling, 6 steps."""
    recorder, golden, to_reference, unused = predrnnv2_run()
    assert_steps_match(recorder, golden, to_reference, skip=unused)


@pytest.mark.parametrize("changes", [{"r_exp_alpha": 1}, {"r_sampling_step_2": 5}, {"sampling": "linear",
                                     "sampling_stop_iter": 3, "sampling_changing_rate": 0.25}])
def test_predrnnv2_golden_sees_a_changed_recipe(changes: dict[str, Any]) -> None:
    """The reverse schedule's scale or end, or plain scheduled sampling: the steps no longer match."""
    with pytest.raises(AssertionError, match="differs from the reference"):
        recorder, golden, to_reference, unused = predrnnv2_run(**changes)
        assert_steps_match(recorder, golden, to_reference, skip=unused)
