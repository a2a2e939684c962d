"""Run ``bench`` with OpenSTL's timm (0.6.11) importable beside a CPU torch, for ``bench speed --parts openstl`` on
SwinLSTM and the SimVP translators built from timm's blocks.

timm 0.6.11's package does not import here (it imports torchvision, whose wheels do not load beside the CPU torch,
and one of its models fails on Python 3.11). Install it with ``pip install --no-deps --target DIR timm==0.6.11``;
this runs the command line inside ``vpbench.reference.openstl_clone.openstl_timm`` (the loader the golden files are
made with: timm's model files alone, torchvision standing in). Usage:

    PYTHONPATH=DIR python tools/with_openstl_timm.py speed --parts openstl --openstl PATH ...
"""
import sys
from pathlib import Path

from vpbench.cli import main
from vpbench.errors import UserError
from vpbench.reference.openstl_clone import openstl_timm


def run(argv: list[str]) -> int:
    """``bench argv`` with timm 0.6.11 loaded; exit code 2 and one line when it is not on the path."""
    try:
        with openstl_timm():
            return main(argv)
    except UserError as err:
        print(f"{Path(__file__).name}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
