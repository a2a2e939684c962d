"""``bench weights list`` and ``bench weights download NAME``: the published checkpoints vpbench imports, and the
weights of its perceptual metrics.

OpenSTL's released checkpoints (:func:`vpbench.fetch.catalogue.openstl_checkpoints`) are named
``<data>_<method>_<schedule>_ep<epochs>.pth``; :func:`released` reads which vpbench model (and options) and
dataset each one is, and lists those that vpbench has a weight mapping for (:mod:`vpbench.reference.mappings`).
The SRVP, PredFormer and SimVP authors release no checkpoints: ``bench import srvp|predformer|simvp`` reads the
ones their code writes when you train it.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from vpbench.errors import UserError
from vpbench.fetch import Remote, fetch, mirror_from
from vpbench.fetch.catalogue import file_name, metric_weights, openstl_checkpoints
from vpbench.models import model_names
from vpbench.reference.mappings import mapping_for

# OpenSTL's data set in a file name -> vpbench's dataset (None: vpbench does not read that data set yet).
DATASETS: dict[str, str | None] = {"mmnist": "mmnist", "fmnist": "mfmnist", "mmnist_cifar": "mmnist_cifar",
                                   "kth20": "kth", "kitticaltech": "kitticaltech", "human": "human36m",
                                   "taxibj": "taxibj", "weather_t2m": None, "weather_r": None, "weather_tcc": None,
                                   "weather_uv10": None}
# OpenSTL's MetaVP translators in a file name -> vpbench's ``model.translator``.
TRANSLATORS = {"gsta": "gsta", "convmixer": "convmixer", "convnext": "convnext", "hornet": "hornet",
               "mlpmixer": "mlp", "moganet": "moga", "poolformer": "poolformer", "swin": "swin",
               "uniformer": "uniformer", "van": "van", "vit": "vit"}
# OpenSTL's method in a file name -> (vpbench model, its options); SimVP's translators are added below.
METHODS: dict[str, tuple[str, tuple[str, ...]]] = {
    "convlstm": ("convlstm", ()), "convlstm_l": ("convlstm", ("model.hidden=192",)),  # ConvLSTM-L: 4 x 192
    "predrnn": ("stlstm", ()), "predrnnpp": ("causallstm", ()), "mim": ("mim", ()), "mau": ("mau", ()),
    "e3dlstm": ("e3dlstm", ()), "phydnet": ("phydnet", ()), "predrnnv2": ("predrnnv2", ()), "dmvfn": ("dmvfn", ()),
    "prednet": ("prednet", ()), "crevnet": ("crevnet", ()),  # OpenSTL v0.3.0's; WaST has no released checkpoint
    "tau": ("tau", ()), "simvp_incepu": ("simvp", ()), "simvp_gsta": ("simvp2", ()),
    **{f"simvp_{name}": ("simvp2", (f"model.translator={ours}",)) for name, ours in TRANSLATORS.items()
       if name != "gsta"},
}
STEM = re.compile(rf"^(?P<data>{'|'.join(sorted(DATASETS, key=len, reverse=True))})_(?P<method>.+)_"
                  r"(?P<schedule>one|cos)_ep(?P<epochs>\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    """A released checkpoint vpbench imports: ``bench import <code> FILE --model <model> --dataset <dataset>``
    with ``sets``; ``dataset`` None when vpbench does not read the data set it was trained on."""

    name: str
    url: str
    code: str
    model: str
    sets: tuple[str, ...]
    data: str  # the data set as its code names it
    dataset: str | None
    epochs: int

    @property
    def remote(self) -> Remote:
        return Remote(self.url, file_name(self.url))


def parse_openstl(url: str) -> Checkpoint | None:
    """The checkpoint at ``url`` (one of OpenSTL's released files), or None when its name is not one vpbench reads."""
    stem = file_name(url).removesuffix(".pth")
    match = STEM.fullmatch(stem)
    if match is None:
        return None
    method = re.sub(r"^simvp_s_", "simvp_", match["method"])  # Moving MNIST's MetaVP files: simvp_s_<translator>
    if method not in METHODS:
        return None
    model, sets = METHODS[method]
    return Checkpoint(stem, url, "openstl", model, sets, match["data"], DATASETS[match["data"]], int(match["epochs"]))


@lru_cache(maxsize=None)
def released() -> dict[str, Checkpoint]:
    """Every released checkpoint whose model vpbench has and can map, by name (the file's stem)."""
    found = (parse_openstl(url) for url in openstl_checkpoints())
    return {c.name: c for c in found if c is not None and c.model in model_names() and mapping_for(c.code, c.model)}


def find_released(path: str | Path) -> Checkpoint | None:
    """The released checkpoint a file is, by its name (``mmnist_convlstm_one_ep200.pth``), if any."""
    return released().get(Path(path).name.removesuffix(".pth"))


def listing(model: str | None = None, dataset: str | None = None) -> list[str]:
    """``bench weights list``: the checkpoints (filtered by vpbench model and dataset), then the metrics' weights."""
    rows = [c for c in released().values() if (model is None or c.model == model)
            and (dataset is None or c.dataset == dataset)]
    lines = [f"# OpenSTL's released checkpoints vpbench imports ({len(rows)}): NAME  MODEL [OPTIONS]  DATASET  EPOCHS  "
             "URL"]
    for c in sorted(rows, key=lambda c: (c.data, c.model, c.sets, c.epochs)):
        options = f" [{' '.join(c.sets)}]" if c.sets else ""
        dataset_text = c.dataset or f"({c.data}: not in vpbench)"
        lines.append(f"{c.name}  {c.model}{options}  {dataset_text}  {c.epochs}  {c.url}")
    if model is None and dataset is None:
        lines += ["", "# The perceptual metrics' weights: NAME  WHAT  URL  (then how a run uses the file)"]
        lines += [f"{w.name}  {w.title}  {w.remote.url}\n    {w.use}" for w in metric_weights().values()]
        lines += ["", "# The SRVP, PredFormer and SimVP authors release no checkpoints: `bench import srvp|predformer|"
                  "simvp FILE` reads the ones their code writes."]
    return lines


def remote_of(name: str) -> Remote:
    """The file ``bench weights download NAME`` fetches."""
    if name in released():
        return released()[name].remote
    if name in metric_weights():
        return metric_weights()[name].remote
    close = [n for n in [*released(), *metric_weights()] if name in n][:5]
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `bench weights list`"
    raise UserError(f"no published weights named {name!r}{hint}")


def download(name: str, to: str | Path = "weights", *, mirror: str | None = None, sha256: str | None = None) -> Path:
    """Fetch the weights ``name`` into ``to`` (resumable, checked); returns the file."""
    remote = remote_of(name)
    source = mirror_from(mirror)
    print(f"{remote.url}" + (f" (through the mirror {source})" if source else ""))
    path = fetch(remote, Path(to).expanduser(), mirror=source, sha256=sha256)
    print(f"done: {path}")
    checkpoint = released().get(name)
    if checkpoint is not None:
        if checkpoint.dataset is None:
            print(f"trained on OpenSTL's {checkpoint.data}, which vpbench does not read yet")
        else:
            sets = "".join(f" --set {s}" for s in checkpoint.sets)
            print(f"next: bench import openstl {path} --model {checkpoint.model} --dataset {checkpoint.dataset}{sets}")
    elif name in metric_weights():
        print(f"use it with: {metric_weights()[name].use.replace('FILE', str(path))}")
    return path


def command(args: argparse.Namespace) -> None:
    """``bench weights list|download``."""
    if args.weights_command == "list":
        print("\n".join(listing(args.model, args.dataset)))
    else:
        download(args.name, args.to, mirror=args.mirror, sha256=args.sha256)
