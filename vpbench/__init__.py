"""vpbench: a benchmark suite for video prediction (SRVP and the models it is compared with)."""

import time

__version__ = "0.1.0"
STARTED = time.time()  # when this process imported vpbench: a child process's start-up cost is about the same
