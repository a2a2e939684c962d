"""Stopping a command cleanly: SIGTERM handled like Ctrl-C, and a watchdog that ends the process when a long
native call keeps the main thread from acting on either."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from typing import Iterator


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler, torchrun stopping its workers): handled like Ctrl-C."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


# Seconds the main thread has to act on Ctrl-C or SIGTERM before the process stops at once. Python runs
# signal handlers between bytecodes only, so a long native op (a training step of the paper preset on
# a CPU takes minutes) would delay the stop; a run gets longer to mark itself interrupted.
GRACE_SECONDS = {"run": 20.0}
DEFAULT_GRACE = 2.0


def stopped_line(command: str, what: str) -> str:
    """The line a stopped command ends with, on a line of its own (a progress bar may hold the current one)."""
    return f"\nbench {command}: {what}" + ("; resume with --resume" if command == "run" else "")


class Watchdog:
    """Ends the process ``grace`` seconds after Ctrl-C or SIGTERM unless the command has stopped by then.

    Python's C-level handler writes the number of every signal that has a Python handler to the wakeup socket
    at once, whatever the main thread is doing; this thread reads them there and acts on SIGINT and SIGTERM only
    (torch's DataLoader handles SIGCHLD, which each exiting worker sends)."""

    def __init__(self, command: str, grace: float) -> None:
        self.command, self.grace = command, grace
        self.done = threading.Event()
        self._read, self._write = socket.socketpair()
        self._write.setblocking(False)
        self._previous = signal.set_wakeup_fd(self._write.fileno(), warn_on_full_buffer=False)
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        signum = None
        while signum not in (signal.SIGINT, signal.SIGTERM):
            try:
                data = self._read.recv(1)
            except OSError:
                return
            if not data:
                return
            signum = data[0]
        if self.done.wait(self.grace):
            return
        what = "terminated" if signum == signal.SIGTERM else "interrupted"
        print(stopped_line(self.command, what), file=sys.stderr, flush=True)
        os._exit(128 + signum)

    def close(self) -> None:
        self.done.set()
        signal.set_wakeup_fd(self._previous)
        self._write.close()
        self._read.close()


@contextlib.contextmanager
def stoppable(command: str) -> Iterator[None]:
    """While ``command`` runs: SIGTERM raises :class:`Terminated`, and the watchdog ends the process if the
    main thread has not stopped within the command's grace after Ctrl-C or SIGTERM. In the main thread only
    (signal handlers live there); elsewhere nothing is set."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    watchdog = Watchdog(command, GRACE_SECONDS.get(command, DEFAULT_GRACE))
    try:
        yield
    finally:
        watchdog.close()
        signal.signal(signal.SIGTERM, previous)
