"""Regenerate the golden parity files in ``tests/golden/`` from clones of the reference code.

    python tools/golden/make.py --srvp ~/src/SRVP --openstl ~/src/OpenSTL --predrnn ~/src/predrnn-pytorch \
        --simvp ~/src/SimVP --mimovp ~/src/MIMO-VP [--only srvp_convgru,simvp_mimovp] [--out tests/golden]

Each family module in this folder is named by the models it covers (``srvp_convgru.py``, ``recurrent_cells.py``,
...; the parity test of its files is ``tests/parity/test_parity_<family>.py``), declares the clones it needs
(``SOURCES``) and writes its files with ``make(clones, out)``; ``golden_files.py`` holds what they share. Every
golden file is a ``torch.save`` dict made by running the reference code in float64 at a tiny configuration: its
weights, a fixed input, its output and its parameter gradients after one backward pass of a fixed loss (see
``tests/helpers/parity.py``). The reference code is read from the clones by vpbench's loader
(``vpbench.reference.clones``), never copied into vpbench. A family whose clones are not given is skipped with a
line saying so.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(HERE), str(ROOT)]  # the family modules, and this checkout's vpbench

from vpbench.errors import UserError  # noqa: E402

# Clone options: name -> what to point it at.
CLONES = {
    "srvp": "github.com/yuseonk/SRVP",
    "openstl": "github.com/chengtan9907/OpenSTL (branch OpenSTL-Lightning; OpenSTLv0.3.0 for DMVFN)",
    "openstl_v030": "github.com/chengtan9907/OpenSTL checked out at branch OpenSTLv0.3.0",
    "predrnn": "github.com/thuml/predrnn-pytorch",
    "simvp": "github.com/A4Bio/SimVP",
    "mimovp": "github.com/ningshuliang/MIMO-VP",
    "dmvfn": "github.com/hzwer/CVPR2023-DMVFN",
    "predformer": "github.com/yyyujintang/PredFormer",
    "iam4vp": "github.com/seominseok0429/Implicit-Stacked-Autoregressive-Model-for-Video-Prediction",
    "mamba": "github.com/state-spaces/mamba (selective_scan_ref)",
    "vmrnn": "github.com/yyyujintang/VMRNN-PyTorch",
    "earthformer": "github.com/amazon-science/earth-forecasting-transformer",
    "mcvd": "github.com/voletiv/mcvd-pytorch (an export of its models/ folder is enough)",
}


def families() -> list[str]:
    """Every family module of this folder (a module with ``SOURCES`` and ``make``)."""
    return sorted(p.stem for p in HERE.glob("*.py") if p.stem not in ("make", "golden_files"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, what in CLONES.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=Path, metavar="PATH", help=f"clone of {what}")
    parser.add_argument("--only", help=f"comma-separated families to regenerate: {', '.join(families())} "
                                       "(default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "golden")
    args = parser.parse_args(argv)
    clones = {name: getattr(args, name) for name in CLONES if getattr(args, name) is not None}
    chosen = args.only.split(",") if args.only else families()
    unknown = sorted(set(chosen) - set(families()))
    if unknown:
        parser.error(f"--only {args.only}: no family {', '.join(unknown)}; the families are {', '.join(families())}")
    args.out.mkdir(parents=True, exist_ok=True)
    for family in chosen:
        module = importlib.import_module(family)
        absent = [s for s in module.SOURCES if s not in clones]
        if absent:
            print(f"{family}: skipped, needs --{' --'.join(a.replace('_', '-') for a in absent)}")
            continue
        try:
            for path in module.make({s: clones[s] for s in module.SOURCES}, args.out):
                print(f"{family}: wrote {path}")
        except UserError as err:
            raise SystemExit(f"{family}: {err}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
