"""Limits the two network servers (``rtmer.outputs.websocket``, ``rtmer.outputs.web``) share.

- ``TokenBucket``: a rate limit of ``rate`` events a second with bursts of ``burst``.
- ``AcceptErrorLog``: an ``accept()`` that fails for want of file descriptors (EMFILE,
  ENFILE) or memory is logged at most once a second, without a traceback, with the
  number of failures since the last line. Whoever calls ``accept`` retries on its own.
"""

from __future__ import annotations

import errno
import logging
import time

OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""``accept()`` errors that say the process or the system has run out of something."""
LOG_EVERY = 1.0
"""Seconds between two log lines about failing accepts."""


class TokenBucket:
    """``rate`` events a second [1/s] on average, with up to ``burst`` at once.

    ``take()`` spends one token and says whether there was one. The bucket starts full.
    """

    def __init__(self, rate: float, burst: int) -> None:
        if not rate > 0 or burst < 1:
            raise ValueError(f"token bucket rate={rate!r} [1/s] and burst={burst!r} must be positive")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class AcceptErrorLog:
    """Logs failing ``accept()`` calls of one server (``what``) once a second at most."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._log = logger
        self._what = what
        self._next = 0.0
        self._count = 0

    def failed(self, exc: OSError) -> None:
        self._count += 1
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + LOG_EVERY
        self._log.warning("%s cannot accept connections (%s: %s; %d failed accept%s since the last line); "
                          "retrying, logged once a second at most", self._what, type(exc).__name__, exc,
                          self._count, "" if self._count == 1 else "s")
        self._count = 0
