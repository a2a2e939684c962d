"""The signal handlers the signal tests rely on, set explicitly. A suite started with SIGINT ignored (``nohup make
test &``, a background job of a script) passes that on to the test process and to every child it starts: Ctrl-C
(or ``_thread.interrupt_main``) would then do nothing, and a test waiting for it would wait forever."""
from __future__ import annotations

import contextlib
import signal
from typing import Iterator


def default_signals() -> None:
    """``preexec_fn`` of a child a test signals: SIGINT and SIGTERM at their defaults, whatever this process
    inherited (Python then turns SIGINT into KeyboardInterrupt)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


@contextlib.contextmanager
def ctrl_c_raises() -> Iterator[None]:
    """In the test process, for the block: SIGINT (and ``_thread.interrupt_main``) raises KeyboardInterrupt."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
