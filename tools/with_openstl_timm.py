"""Run ``bench`` with timm 0.6.11 importable beside a CPU torch, for ``bench speed --parts openstl`` on SwinLSTM.

OpenSTL's SwinLSTM is built from timm's Swin blocks, and timm imports torchvision, whose wheels here do not load
beside the CPU torch. This loads timm 0.6.11 (``pip install --target DIR timm==0.6.11``; DIR on PYTHONPATH) the
way the golden files are made (tools/golden/openstl_rnn3.py: its models package alone, torchvision stubbed), then
runs the command line. Usage: PYTHONPATH=DIR python tools/with_timm_0_6_11.py speed --parts openstl ...
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))

from openstl_rnn3 import timm_0_6_11  # noqa: E402

from vpbench.cli import main  # noqa: E402

if __name__ == "__main__":
    with timm_0_6_11():
        sys.exit(main(sys.argv[1:]))
