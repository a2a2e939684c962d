"""Each reference code's configuration of a model on a data set, as vpbench options: what ``bench import`` builds a
checkpoint's model with.

vpbench's full presets hold each code's Moving MNIST configuration (``openstl`` for OpenSTL's configs/mmnist/*.py,
``paper`` for the SRVP, PredFormer and SimVP authors'). OpenSTL configures some models otherwise on other data
sets (configs/<data>/*.py and configs/<data>/simvp/*.py); :data:`OPENSTL` holds those differences, keyed by
vpbench dataset and OpenSTL config file, in vpbench's option names. Moving Fashion-MNIST's and Moving
MNIST-CIFAR's configs are Moving MNIST's. PredNet's and CrevNet's configs (branch OpenSTLv0.3.0) are the same on
every data set but for the frame's channels, which vpbench reads from the data; WaST's only config
(configs/taxibj/WaST.py, branch OpenSTL-Lightning) is what vpbench's ``openstl`` preset holds.
"""
from __future__ import annotations

from typing import Any, Mapping

from vpbench.errors import UserError

# vpbench model (and translator) -> OpenSTL's config file.
CONFIG_FILES = {"convlstm": "ConvLSTM.py", "stlstm": "PredRNN.py", "causallstm": "PredRNNpp.py", "mim": "MIM.py",
                "mau": "MAU.py", "e3dlstm": "E3DLSTM.py", "phydnet": "PhyDNet.py", "predrnnv2": "PredRNNv2.py",
                "mmvp": "MMVP.py", "tau": "TAU.py", "swinlstm": "SwinLSTM-D.py", "dmvfn": "DMVFN.py",
                "simvp": "simvp/SimVP_IncepU.py", "prednet": "PredNet.py", "crevnet": "CrevNet.py", "wast": "WaST.py"}
SIMVP_FILES = {"gsta": "gSTA", "convmixer": "ConvMixer", "convnext": "ConvNeXt", "hornet": "HorNet", "mlp": "MLPMixer",
               "moga": "MogaNet", "poolformer": "Poolformer", "swin": "Swin", "uniformer": "Uniformer", "van": "VAN",
               "vit": "ViT"}

_PATCH_2 = {"patch_size": 2}
_KTH_SIMVP = {"temporal_hidden": 256, "spatial_layers": 2, "temporal_layers": 6, "drop_path": 0.1}
_TAXIBJ_SIMVP = {"spatial_hidden": 32, "temporal_hidden": 256, "spatial_layers": 2, "drop_path": 0.1}


def _incepu(options: dict[str, Any]) -> dict[str, Any]:
    """SimVP+IncepU's options of a config: its Inception translator has no stochastic depth to set."""
    return {k: v for k, v in options.items() if k != "drop_path"}


# OpenSTL's configuration where it differs from Moving MNIST's: dataset -> config file -> vpbench options.
OPENSTL: dict[str, dict[str, dict[str, Any]]] = {
    "kth": {
        "ConvLSTM.py": _PATCH_2, "PredRNN.py": _PATCH_2, "PredRNNpp.py": _PATCH_2, "MAU.py": {"sr_size": 2},
        "PredRNNv2.py": {"patch_size": 2, "decouple_beta": 0.01}, "MMVP.py": {"spatial_hidden": 16, "temporal_hidden": 96},
        "TAU.py": _KTH_SIMVP, "simvp/SimVP_IncepU.py": {**_incepu(_KTH_SIMVP), "temporal_layers": 4},
        **{f"simvp/SimVP_{name}.py": _KTH_SIMVP for name in ("ConvMixer", "ConvNeXt", "MLPMixer", "Poolformer", "Swin")},
        **{f"simvp/SimVP_{name}.py": {**_KTH_SIMVP, "temporal_layers": 4} for name in ("Uniformer", "ViT")},
        **{f"simvp/SimVP_{name}.py": {**_KTH_SIMVP, "drop_path": 0.2} for name in ("HorNet", "MogaNet", "VAN", "gSTA")},
    },
    "taxibj": {
        **{name: _PATCH_2 for name in ("ConvLSTM.py", "E3DLSTM.py", "MIM.py", "PhyDNet.py", "PredRNN.py",
                                       "PredRNNpp.py", "PredRNNv2.py")},
        "MAU.py": {"sr_size": 2}, "TAU.py": _TAXIBJ_SIMVP, "simvp/SimVP_IncepU.py": _incepu(_TAXIBJ_SIMVP),
        **{f"simvp/SimVP_{name}.py": _TAXIBJ_SIMVP for name in SIMVP_FILES.values()},
    },
    "kitticaltech": {
        **{name: _PATCH_2 for name in ("ConvLSTM.py", "MIM.py", "PredRNN.py", "PredRNNpp.py", "PredRNNv2.py")},
        "MAU.py": {"sr_size": 2}, "TAU.py": _KTH_SIMVP, "simvp/SimVP_IncepU.py": {**_incepu(_KTH_SIMVP), "temporal_layers": 4},
        **{f"simvp/SimVP_{name}.py": _KTH_SIMVP for name in ("ConvMixer", "ConvNeXt", "HorNet", "MLPMixer", "MogaNet",
                                                              "Poolformer", "Swin", "VAN")},
        **{f"simvp/SimVP_{name}.py": {**_KTH_SIMVP, "drop_path": 0.2} for name in ("gSTA",)},
        "simvp/SimVP_Uniformer.py": {**_KTH_SIMVP, "temporal_layers": 4, "drop_path": 0.2},
        "simvp/SimVP_ViT.py": {**_KTH_SIMVP, "temporal_layers": 4},
    },
    "bair": {
        **{name: _PATCH_2 for name in ("ConvLSTM.py", "E3DLSTM.py", "MIM.py", "PhyDNet.py", "PredRNN.py",
                                       "PredRNNpp.py", "PredRNNv2.py")},
        "MAU.py": {"sr_size": 2}, "TAU.py": {"temporal_hidden": 256, "spatial_layers": 2, "drop_path": 0.1},
    },
    "human36m": {
        "E3DLSTM.py": {"patch_size": 8}, "TAU.py": {"drop_path": 0.1},
        **{f"simvp/SimVP_{name}.py": {"drop_path": 0.1} for name in ("ConvMixer", "ConvNeXt", "MLPMixer", "Poolformer",
                                                                     "Swin", "Uniformer", "VAN")},
        "simvp/SimVP_HorNet.py": {"temporal_layers": 6, "drop_path": 0.1},
        "simvp/SimVP_IncepU.py": {"temporal_layers": 6},
        "simvp/SimVP_MogaNet.py": {"temporal_hidden": 256, "temporal_layers": 6, "drop_path": 0.1},
        **{f"simvp/SimVP_{name}.py": {"temporal_hidden": 256, "drop_path": 0.1} for name in ("ViT", "gSTA")},
    },
}
# Configurations vpbench's model cannot express: (dataset, config file) -> why.
UNSUPPORTED = {("kth", "E3DLSTM.py"): "OpenSTL's KTH E3D-LSTM convolves with stride 2, which vpbench's E3D-LSTM "
                                      "does not"}


def config_file(model: str, options: Mapping[str, Any]) -> str | None:
    """OpenSTL's config file of vpbench's ``model`` with ``options`` (the translator of ``simvp2``)."""
    if model == "simvp2":
        translator = options.get("translator", "gsta")
        return f"simvp/SimVP_{SIMVP_FILES[translator]}.py" if translator in SIMVP_FILES else None
    return CONFIG_FILES.get(model)


def openstl_options(model: str, dataset: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The model options that make vpbench's full ``openstl`` preset OpenSTL's configuration of ``model`` on
    ``dataset`` (``given``: the options the user set, which decide the translator)."""
    file = config_file(model, given)
    if (dataset, file) in UNSUPPORTED:
        raise UserError(f"{model} on {dataset}: {UNSUPPORTED[(dataset, file)]}; it cannot be imported")
    return dict(OPENSTL.get(dataset, {}).get(file, {}))
