"""vpbench: a benchmark suite for video prediction (SRVP and the models it is compared with)."""

__version__ = "0.1.0"
