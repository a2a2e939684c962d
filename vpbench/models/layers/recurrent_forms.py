"""What the recurrent rows share: their hyperparameters per preset, OpenSTL's recipe for them, and the
one builder of their factories (:func:`recurrent_model`).

Under the SRVP paper's protocol a recurrent model is the paper's encoder-forecaster (Fig. 1,
:class:`~vpbench.models.layers.encoder_forecaster.EncoderForecaster`); under OpenSTL's it is OpenSTL's single
stack with scheduled sampling (:class:`~vpbench.models.layers.openstl_stack.RecurrentStack`). The option
``form`` picks one, from the same cell files.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from torch import nn

from vpbench import presets
from vpbench.errors import UserError
from vpbench.models.layers.encoder_forecaster import EncoderForecaster, LayerFactory
from vpbench.models.layers.openstl_stack import RecurrentStack

# Hyperparameters of every recurrent model, per preset.
RNN_PRESETS: dict[str, dict[str, Any]] = {
    # Paper Sec. 3.1: L=4, M=128, kernel 5 on full-resolution frames (the official code uses patch 1).
    "paper": {"hidden": 128, "layers": 4, "kernel_size": 5, "patch_size": 1},
    # Small enough for a 2-core CPU: 8x8 patches (a third of the FLOPs of PredRNN's 4x4 patches, and sharper
    # predictions after a short run) where they tile the frames, else 4x4 (100x100 Human3.6M), kernel 3.
    "quick": {"hidden": 32, "layers": 2, "kernel_size": 3, "patch_size": [8, 4]},
    "tiny": {"hidden": 8, "layers": 1, "kernel_size": 3, "patch_size": 4},
}
# The same under OpenSTL's protocol: its configs/mmnist/{ConvLSTM,PredRNN,PredRNNpp,MIM}.py, 4 x 128, filter 5,
# patch 4, no layer norm, in OpenSTL's form.
OPENSTL_RNN_PRESETS: dict[str, dict[str, Any]] = {
    "openstl": {"form": "stack", "hidden": 128, "layers": 4, "kernel_size": 5, "patch_size": 4},
    "openstl-quick": {"form": "stack", "hidden": 32, "layers": 2, "kernel_size": 3, "patch_size": 4},
    "openstl-tiny": {"form": "stack", "hidden": 8, "layers": 1, "kernel_size": 3, "patch_size": 4},
}
FORMS: dict[str, type[nn.Module]] = {"encoder-forecaster": EncoderForecaster, "stack": RecurrentStack}


def rnn_presets(**quick: Any) -> dict[str, dict[str, Any]]:
    """``RNN_PRESETS`` with a model's own sizes at the quick preset (``quick``) over the shared ones: the quick
    scale sizes each model by what it learns in a `make demo` run, measured per model."""
    return {preset: {**kw, **quick} if preset == "quick" else dict(kw) for preset, kw in RNN_PRESETS.items()}


def openstl_recipe(lr: float, quick_lr: float = 3.0e-3) -> dict[str, dict[str, Any]]:
    """OpenSTL's training of its recurrent models per OpenSTL preset: MSE over every predicted frame with
    scheduled sampling (the rate of using the true frame falls from 1 by 2e-5 per step and is 0 from step
    50,000 on, epoch 80 of 200 on Moving MNIST), at the model's peak rate ``lr``. The smaller presets end
    the sampling at the same fraction (40%) of their much shorter runs (100 and 4 steps)."""
    schedules = {"openstl": (lr, 50000, 2.0e-5), "openstl-quick": (quick_lr, 40, 0.025), "openstl-tiny": (quick_lr, 2, 0.5)}
    return {preset: {**presets.protocol_recipe(preset), "loss": "mse_all_frames", "lr": rate, "sampling": "linear",
                     "sampling_stop_iter": stop, "sampling_changing_rate": change}
            for preset, (rate, stop, change) in schedules.items()}


_SHAPE_OPTIONS = {"form": "encoder-forecaster", "in_channels": 1, "img_size": (64, 64), "patch_size": 1,
                  "hidden": 128, "layers": 4, "kernel_size": 5}


def recurrent_model(make_layers: LayerFactory, **cell_options: Any) -> Callable[..., nn.Module]:
    """The factory of a recurrent model over the cells that ``make_layers`` builds.

    It takes ``form`` (``encoder-forecaster``, the paper's; ``stack``, OpenSTL's), the frames' and stack's
    options (``in_channels``, ``img_size``, ``patch_size``, ``hidden``, ``layers``, ``kernel_size``) and the
    cells' own (``cell_options``, with their defaults, e.g. ConvGRU's ``dropout``), all by keyword; its
    signature lists them, so that an unknown option is a clear error."""
    names = {**_SHAPE_OPTIONS, **cell_options}

    def factory(**kwargs: Any) -> nn.Module:
        options = {**names, **kwargs}
        form = options.pop("form")
        if form not in FORMS:
            raise UserError(f"invalid value model.form={form!r}: must be {' or '.join(FORMS)}")
        cells = {k: options.pop(k) for k in cell_options}
        return FORMS[form](functools.partial(make_layers, **cells), **options)

    factory.__signature__ = inspect.Signature(
        [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in names.items()])
    factory.__doc__ = f"Recurrent model of ``{make_layers.__name__}``: {(make_layers.__doc__ or '').strip()}"
    return factory
