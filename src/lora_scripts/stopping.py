"""Ctrl-C (or SIGTERM: the web UI's Stop, docker stop) during long work: the first asks the work to stop at
its next safe point (a training step, a batch of images), where what is done can be saved whole; a second,
or one while `at_once()` holds (e.g. between steps, while samples are drawn), stops at once.

Python's own handling raises KeyboardInterrupt wherever the signal lands, half-way through a write; no
library offers "finish this unit first" for both signals, so this is the one place that does.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


class GracefulStop:
    """A context in which stop signals set `requested` (said once through `say`) instead of interrupting.
    Outside the main thread (where Python cannot install handlers) it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, say: Callable[[], None], at_once: Callable[[], bool] = lambda: False):
        self.requested = False
        self._say, self._at_once = say, at_once
        self._old: dict = {}

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            self._old = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested or self._at_once():
            raise KeyboardInterrupt
        self.requested = True
        self._say()

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old = {}
