"""Ctrl-C during a batch, remembered.

Python turns SIGINT into a KeyboardInterrupt wherever the main thread happens to be; inside a
library's finaliser or callback that exception can be swallowed, and the run would carry on as
if nothing was pressed. ``CtrlC`` raises it the same way and also keeps the fact, so the loop
that collects results stops at the next one at the latest."""

from __future__ import annotations

import signal
import threading


class CtrlC:
    """While entered (in the main thread; elsewhere it only reads False): ``pressed`` tells
    whether SIGINT came, and each SIGINT raises KeyboardInterrupt as Python's own handler does."""

    def __init__(self):
        self.pressed = False
        self._previous = None

    def _handle(self, signum, frame):
        self.pressed = True
        raise KeyboardInterrupt

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
