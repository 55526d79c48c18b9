"""A member's bytes as a stream: forward-only reads with peek and push-back, a worker
thread that decodes a little ahead, and the size budget of a whole image.

Each compression (codecs.py) reads its member from a Stream and hands its output
on as bounded chunks, which become a Stream again for the newc parser; what a
decoder did not use goes back into the outer stream, so the walk goes on after
the member, as the kernel does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import TracebackType
from typing import BinaryIO

# Output per yielded chunk and input per read: big enough for speed, small for memory.
OUT_CHUNK = 1 << 20
IN_CHUNK = 1 << 18


class DataError(ValueError):
    """A compressed member is damaged or unsupported; the message says how."""


class LimitExceeded(DataError):
    """Decompressed data went past the configured size limit (a decompression bomb)."""


class Stream:
    """A forward-only byte stream over a chunk source, with peek, push-back and a position.

    `pos` counts bytes handed out since the start, which is what newc padding
    and member offsets are relative to.
    """

    def __init__(self, pull: Callable[[], bytes]) -> None:
        self._pull = pull
        self._buf = b""
        self._off = 0
        self._eof = False
        self.pos = 0

    @classmethod
    def from_file(cls, fh: BinaryIO, chunk: int = OUT_CHUNK) -> Stream:
        return cls(lambda: fh.read(chunk))

    @classmethod
    def from_chunks(cls, chunks: Iterator[bytes]) -> Stream:
        def pull() -> bytes:
            for chunk in chunks:
                if chunk:
                    return chunk
            return b""
        return cls(pull)

    def _fill(self) -> bool:
        """Load the next chunk if the buffer is empty; False at end of stream."""
        while self._off >= len(self._buf):
            if self._eof:
                return False
            chunk = self._pull()
            if not chunk:
                self._eof = True
                return False
            self._buf, self._off = chunk, 0
        return True

    def read_some(self, n: int) -> bytes:
        """Up to `n` bytes (at least one unless at end), without joining chunks."""
        if n <= 0 or not self._fill():
            return b""
        end = min(len(self._buf), self._off + n)
        out = self._buf[self._off:end]
        self._off = end
        self.pos += len(out)
        return out

    def read(self, n: int) -> bytes:
        """Exactly `n` bytes, or fewer only at end of stream."""
        off = self._off
        end = off + n
        if end <= len(self._buf):  # the common case: inside the current chunk
            self._off = end
            self.pos += n
            return self._buf[off:end]
        first = self.read_some(n)
        if len(first) == n or not first:
            return first
        parts = [first]
        got = len(first)
        while got < n:
            more = self.read_some(n - got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def peek(self, n: int) -> bytes:
        """The next `n` bytes (fewer at end) without consuming them."""
        data = self.read(n)
        self.unread(data)
        return data

    def unread(self, data: bytes) -> None:
        """Push `data` back in front of the stream."""
        if not data:
            return
        rest = self._buf[self._off:]
        self._buf = bytes(data) + rest if rest else bytes(data)
        self._off = 0
        self.pos -= len(data)

    def skip(self, n: int) -> int:
        """Drop `n` bytes without copying them; returns how many were there."""
        end = self._off + n
        if end <= len(self._buf):
            self._off = end
            self.pos += n
            return n
        left = n
        while left > 0 and self._fill():
            step = min(left, len(self._buf) - self._off)
            self._off += step
            self.pos += step
            left -= step
        return n - left

    def skip_zeros(self) -> int:
        """Drop NUL bytes; returns how many."""
        count = 0
        while self._fill():
            view = self._buf
            i = self._off
            end = len(view)
            stripped = view[i:end].lstrip(b"\0")
            dropped = (end - i) - len(stripped)
            self._off += dropped
            self.pos += dropped
            count += dropped
            if self._off < end:
                break
        return count

    def at_end(self) -> bool:
        return not self._fill()


class Prefetch:
    """Runs a chunk iterator (a member's decoder) in a worker thread, a little ahead.

    The decompressors release the GIL, so decompression overlaps whatever the
    consumer does with the chunks (parsing headers, writing files). At most
    `depth` batches of about `batch` bytes wait in the queue, so memory stays
    bounded. Errors the iterator raises come out of `__iter__` at the point
    the consumer reaches them. Use as a context manager: leaving it stops the
    worker and waits for it, after which the decoder's input stream is the
    consumer's again.
    """

    def __init__(self, chunks: Iterator[bytes], *, batch: int = OUT_CHUNK, depth: int = 2) -> None:
        self._chunks = chunks
        self._batch = batch
        # Imported here: a walk without prefetch (`respin initrd list`) starts faster.
        import queue
        import threading

        self._full, self._empty = queue.Full, queue.Empty
        self._queue: queue.Queue[tuple[list[bytes], BaseException | None, bool]] = \
            queue.Queue(maxsize=depth)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="initrd-decode", daemon=True)
        self._thread.start()

    def _put(self, item: tuple[list[bytes], BaseException | None, bool]) -> bool:
        while not self._stop:
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except self._full:
                continue
        return False

    def _run(self) -> None:
        batch: list[bytes] = []
        size = 0
        try:
            for chunk in self._chunks:
                batch.append(chunk)
                size += len(chunk)
                if size >= self._batch:
                    if not self._put((batch, None, False)):
                        return
                    batch, size = [], 0
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((batch, exc, True))
            return
        finally:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                close()
        self._put((batch, None, True))

    def __iter__(self) -> Iterator[bytes]:
        while True:
            batch, error, done = self._queue.get()
            yield from batch
            if error is not None:
                raise error
            if done:
                return

    def close(self) -> None:
        """Stop the worker (if still running) and wait for it."""
        self._stop = True
        while self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except self._empty:
                pass
            self._thread.join(0.01)

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Budget:
    """Counts decompressed bytes against the limit for the whole image."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, n: int) -> None:
        self.used += n
        if self.used > self.limit:
            raise LimitExceeded(f"decompresses to more than {self.limit} bytes (the size limit; "
                                "raise it with --max-size if the image is genuine)")
