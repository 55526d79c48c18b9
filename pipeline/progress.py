"""Progress: a live line on a TTY, plain lines everywhere else (CI logs, Makefiles)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

_CLEAR = "\r\033[K"


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
        # The ticker and a log line write to one terminal: `_drawn` says the live line is
        # on it, unended, and the lock keeps the two from interleaving.
        self._lock = threading.Lock()
        self._drawn = False

    def _write(self, text: str, *, drawn: bool = False) -> None:
        if self.quiet:
            return
        with self._lock:
            self.stream.write(text)
            self.stream.flush()
            self._drawn = drawn

    def write_line(self, text: str) -> None:
        """Write `text` (a whole line) on the stream, clearing the live line first: the ticker
        draws it again below."""
        with self._lock:
            if self._drawn:
                self.stream.write(_CLEAR)
                self._drawn = False
            self.stream.write(text)
            self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(0.25):
            self._write(f"{_CLEAR}{self._label} {time.monotonic() - self._start:5.1f}s", drawn=True)

    def _guard_logging(self) -> None:
        """Route the log lines that go to this terminal through `write_line`."""
        for handler in logging.getLogger().handlers:
            if not isinstance(handler, logging.StreamHandler):
                continue
            stream = handler.stream.stream if isinstance(handler.stream, _LineStream) else handler.stream
            if stream is self.stream and getattr(handler.stream, "progress", None) is not self:
                handler.setStream(_LineStream(self))

    def start(self, label: str) -> None:
        self._label = label
        self._start = time.monotonic()
        if self.live:
            self._guard_logging()
            self._stop.clear()
            self._write(f"{label} ...", drawn=True)
            self._thread = threading.Thread(target=self._tick, daemon=True)
            self._thread.start()
        else:
            self._write(f"{label}\n")

    def done(self, label: str) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._write(_CLEAR)
        self._write(f"{label}\n")

    def note(self, text: str) -> None:
        self._write(f"{text}\n")


class _LineStream:
    """What a log handler writes to while a live line is shown: each write clears it first."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.stream = progress.stream

    def write(self, text: str) -> None:
        self.progress.write_line(text)

    def flush(self) -> None:
        self.stream.flush()
