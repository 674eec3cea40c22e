"""Turning SIGINT / SIGTERM into a polite stop request that training checks between chunks."""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """Context manager: the first SIGINT or SIGTERM sets ``requested``; a second SIGINT raises
    KeyboardInterrupt as usual, for a user who really wants out."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __call__(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name} received: saving a checkpoint after the current chunk...", flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, h in self._previous.items():
            signal.signal(s, h)
        return False

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum) if self.signum is not None else 0
