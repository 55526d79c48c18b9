"""Progress: a live line on a TTY, plain lines everywhere else (CI logs, Makefiles)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


class Progress:
    """Reports stage starts and ends on a stream (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None,
                 quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.quiet = quiet
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._label = ""
        self._start = 0.0

    def _write(self, text: str) -> None:
        if not self.quiet:
            self.stream.write(text)
            self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            self._write(f"\r\033[K{self._label} {time.monotonic() - self._start:5.1f}s")

    def start(self, label: str) -> None:
        self._label = label
        self._start = time.monotonic()
        if self.live:
            self._stop.clear()
            self._write(f"{label} ...")
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
        else:
            self._write(f"{label}\n")

    def done(self, label: str) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._write("\r\033[K")
        self._write(f"{label}\n")

    def note(self, text: str) -> None:
        self._write(f"{text}\n")
