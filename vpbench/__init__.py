"""vpbench: a benchmark suite for video prediction (SRVP and the models it is compared with)."""
import os

import numba

__version__ = "0.1.0"

# The compiled kernels (metrics, Moving MNIST) run in parallel in processes that DataLoader workers
# fork; GNU OpenMP, numba's usual threading layer on Linux, aborts a forked child. "forksafe" picks a
# layer that survives fork (TBB if installed, else numba's own work queue). NUMBA_THREADING_LAYER wins.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "forksafe"
