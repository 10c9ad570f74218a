"""Text outputs: NDJSON / CSV sinks for pipes and files.

The NDJSON sink writes an update as the WebSocket sink sends it, one object per line:
``rtmer.protocol.update_to_dict`` (``{"type": "va", ...}``).

Both sinks write in the caller's thread by default (``queue_size=0``): every line is
written and flushed, nothing is dropped, and a reader that stops reading a pipe
blocks the writer once the OS pipe buffer (64 KiB on Linux, several hundred lines) is
full. That is what ``rtmer analyze`` and ``rtmer run`` on files and stdin want: the
input waits for the reader, and every update reaches it. For a live input (a sound
card, which cannot wait) pass ``queue_size=N``: lines then go through a bounded queue
of N lines to a daemon writer thread, ``publish`` never blocks, and when the queue is
full the OLDEST line is dropped and counted in ``dropped``; lines still queued when
``close`` gives up waiting are counted there too, so ``written + dropped`` is every
line handed over. A CSV header is written before the queue starts and never dropped.

A write that fails (a closed pipe: ``BrokenPipeError``; a closed file) is logged once
and sets ``failed`` (with ``error``); later lines are counted in ``dropped`` and not
written.
"""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections import deque
from typing import TextIO

from rtmer.core.update import Update
from rtmer.errors import ConfigError
from rtmer.protocol import update_to_json

log = logging.getLogger(__name__)

CSV_COLUMNS = ("time_s", "valence", "arousal", "valence_raw", "arousal_raw", "mood", "stream", "seq", "status")


def csv_row(update: Update) -> list[str]:
    """One CSV row in ``CSV_COLUMNS`` order; floats as ``repr`` so they round-trip exactly."""
    return [
        repr(float(update.t)),
        repr(float(update.valence)),
        repr(float(update.arousal)),
        repr(float(update.valence_raw)),
        repr(float(update.arousal_raw)),
        update.mood,
        update.stream,
        str(int(update.seq)),
        update.status,
    ]


class _LineWriter:
    """Writes text lines to a file, inline or through a bounded drop-oldest queue.

    ``queue_size=0`` writes in the caller's thread; ``queue_size>0`` hands lines to a
    daemon thread through a ``deque(maxlen=queue_size)`` (drops the oldest, counts it).
    ``header`` is written at once, before the writer thread starts, and never dropped.
    """

    def __init__(self, file: TextIO, *, queue_size: int, name: str, header: str | None = None) -> None:
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 0:
            raise ConfigError(f"queue_size={queue_size!r} must be an integer >= 0 (0 writes inline)")
        self._file = file
        self._name = name
        self.written = 0
        """Lines written [count]."""
        self.dropped = 0
        """Lines not written: dropped from a full queue, after a write error, or still
        queued when ``close`` stopped waiting [count]."""
        self.error: str | None = None
        """Why the file stopped taking lines (the first write error), or None."""
        self._failed = False
        self._closed = False
        self._writing = False  # the writer thread is inside a write
        self._abandoned = False  # close stopped waiting: counters are final
        self._queue: deque[str] | None = None
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        if header is not None:
            self._write(header)
        if queue_size > 0:
            self._queue = deque(maxlen=queue_size)
            self._thread = threading.Thread(target=self._run, name=f"rtmer-{name}-writer", daemon=True)
            self._thread.start()

    @property
    def failed(self) -> bool:
        """True once a write failed (the reader of a pipe went away, a closed file)."""
        return self._failed

    def put(self, line: str) -> None:
        """Write ``line`` (which ends in a newline) now, or queue it; never raises on I/O errors."""
        if self._closed:
            self.dropped += 1
            return
        if self._queue is None:
            self._write(line)
            return
        with self._cond:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
            self._queue.append(line)
            self._cond.notify()

    def _write(self, line: str) -> None:
        if self._failed:
            self.dropped += 1
            return
        try:
            self._file.write(line)
            self._file.flush()
        except (OSError, ValueError) as exc:  # BrokenPipeError, closed file
            self._failed = True
            self.error = f"{type(exc).__name__}: {exc}"
            self.dropped += 0 if self._abandoned else 1
            log.warning("%s output stopped: %s; further lines are dropped and counted", self._name, exc)
            return
        except KeyboardInterrupt:  # a second Ctrl-C while a reader blocks the pipe: do not flush again
            self._failed = True
            self.error = "interrupted while the reader was not reading"
            self.dropped += 1
            raise
        if not self._abandoned:
            self.written += 1

    def _run(self) -> None:
        assert self._queue is not None
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                line = self._queue.popleft()
                self._writing = True
            self._write(line)
            with self._cond:
                self._writing = False
                if self._abandoned:
                    return

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (waiting at most ``timeout`` [s]) and flush; leaves the file open.

        Lines still queued after ``timeout`` are not written and are counted in ``dropped``.
        """
        if self._closed:
            return
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            with self._cond:
                assert self._queue is not None
                if self._thread.is_alive():  # the writer is stuck in a write: these will never be written
                    self._abandoned = True
                    self.dropped += len(self._queue) + (1 if self._writing else 0)
                    self._queue.clear()
        if not self._failed and not self._abandoned:  # a stuck writer would block the flush too
            try:
                self._file.flush()
            except (OSError, ValueError) as exc:
                self._failed = True
                self.error = self.error or f"{type(exc).__name__}: {exc}"


class _LineSink:
    """What the line-based sinks share: a ``_LineWriter`` and its counters."""

    _out: _LineWriter
    _header_lines = 0
    published = 0
    """Updates handed to ``publish`` [count]."""

    @property
    def written(self) -> int:
        """Lines written [count]; the CSV header counts."""
        return self._out.written

    @property
    def updates_written(self) -> int:
        """Updates written [count]: ``written`` without the header."""
        return max(0, self._out.written - self._header_lines)

    @property
    def dropped(self) -> int:
        """Lines dropped from a full queue, after a write error, or still queued at close [count]."""
        return self._out.dropped

    @property
    def failed(self) -> bool:
        """True once a write failed: the reader of a pipe went away, or the file was closed."""
        return self._out.failed

    @property
    def error(self) -> str | None:
        """The first write error, as text, or None."""
        return self._out.error

    def close(self) -> None:
        """Write what is queued and flush; the file stays open."""
        self._out.close()


class NdjsonSink(_LineSink):
    """Writes one JSON object (``rtmer.protocol.update_to_dict``) per line per update, flushed at once.

    ``file`` is an open text file or ``sys.stdout``; the caller owns it and ``close()``
    flushes but does not close it. ``queue_size`` [lines]: 0 writes in the caller's
    thread and never drops; N > 0 writes from a daemon thread and drops the oldest line
    when N lines are waiting (see the module notes).
    """

    def __init__(self, file: TextIO, *, queue_size: int = 0) -> None:
        self._out = _LineWriter(file, queue_size=queue_size, name="NDJSON")
        self.published = 0

    def publish(self, update: Update) -> None:
        """Write (or queue) the line for ``update``."""
        self.published += 1
        self._out.put(update_to_json(update) + "\n")


class CsvSink(_LineSink):
    """Writes a CSV header, then one row per update, flushed at once.

    Columns: ``time_s,valence,arousal,valence_raw,arousal_raw,mood,stream,seq,status`` where
    ``time_s`` is ``update.t``, the end of the hop [s] in stream time, and ``status`` flags
    a gap or a model failure (``Update.status``). Floats are written
    with ``repr`` (shortest string that parses back to the same float), so reading the
    file gives back exactly the values that were published. ``queue_size`` as in
    ``NdjsonSink``. ``close()`` flushes but does not close ``file``.
    """

    def __init__(self, file: TextIO, *, queue_size: int = 0) -> None:
        self._buf = io.StringIO()
        self._csv = csv.writer(self._buf, lineterminator="\n")
        self._header_lines = 1
        self.published = 0
        self._out = _LineWriter(file, queue_size=queue_size, name="CSV", header=self._line(list(CSV_COLUMNS)))

    def _line(self, row: list[str]) -> str:
        self._buf.seek(0)
        self._buf.truncate()
        self._csv.writerow(row)
        return self._buf.getvalue()

    def publish(self, update: Update) -> None:
        """Write (or queue) the row for ``update``."""
        self.published += 1
        self._out.put(self._line(csv_row(update)))
