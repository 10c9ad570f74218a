"""A fixed-capacity, single-producer single-consumer ring buffer for captured audio.

Overflow policy: the producer never waits and never fails; when the consumer falls
behind by more than ``capacity`` frames, the OLDEST frames are overwritten. The consumer
notices on its next read, skips what was lost, counts one overrun and the lost frames,
and reports a gap so that the engine resets that stream's model state.

The producer side (``write``) is meant for an audio callback: it only copies into the
preallocated array and updates two integers. It does not allocate buffers, take locks,
block or log. Correctness without locks rests on two counters: ``_reserved`` is raised
*before* a write touches the array and ``_written`` *after*; a reader that copied frames
the producer may have been overwriting meanwhile throws them away as lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtmer.errors import ConfigError


@dataclass(frozen=True, slots=True)
class RingRead:
    """What one ``read`` returns.

    ``frames`` float32 [n, channels] is a fresh array the caller owns. ``lost`` is the
    number of frames [frames] dropped by an overrun just before ``frames``; when it is
    non-zero there is a gap between the previous read and this one.
    """

    frames: np.ndarray
    lost: int


class RingBuffer:
    """Fixed capacity [frames] of float32 audio with ``channels`` channels; drops the oldest.

    Notes
    -----
    Holds at most ``capacity`` frames between ``write`` and ``read``. ``overruns`` counts
    overrun events and ``dropped_frames`` the frames lost to them, both seen by the reader.
    """

    def __init__(self, capacity: int, *, channels: int = 1) -> None:
        if not isinstance(capacity, int) or capacity <= 0:
            raise ConfigError(f"ring capacity={capacity!r} must be a positive integer [frames]")
        if not isinstance(channels, int) or channels <= 0:
            raise ConfigError(f"ring channels={channels!r} must be a positive integer")
        self.capacity = capacity
        self.channels = channels
        self._buf = np.zeros((capacity, channels), dtype=np.float32)
        self._reserved = 0  # frames the producer has started to write (monotonic)
        self._written = 0  # frames the producer has finished writing (monotonic)
        self._read = 0  # frames the consumer has taken or skipped (monotonic)
        self.overruns = 0
        self.dropped_frames = 0
        self.producer_truncations = 0  # writes longer than capacity (only the newest part kept)

    # ---- producer (audio callback) -------------------------------------------------
    def write(self, frames: np.ndarray) -> None:
        """Copy ``frames`` [n, channels] in. Never blocks; overwrites the oldest on overrun."""
        n = frames.shape[0]
        if n > self.capacity:
            self.producer_truncations += 1
            self._reserved += n - self.capacity
            self._written = self._reserved
            frames = frames[n - self.capacity :]
            n = self.capacity
        start = self._written % self.capacity
        self._reserved = self._written + n
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = frames[:first]
        if first < n:
            self._buf[: n - first] = frames[first:]
        self._written = self._reserved

    # ---- consumer ---------------------------------------------------------------------
    @property
    def available(self) -> int:
        """Frames ready to read (may exceed what survives an overrun)."""
        return self._written - self._read

    def read(self, max_frames: int | None = None) -> RingRead:
        """Take up to ``max_frames`` of the oldest unread frames (all of them when None)."""
        written = self._written
        lost = 0
        oldest_valid = written - self.capacity
        if self._read < oldest_valid:
            lost = oldest_valid - self._read
            self._read = oldest_valid
        n = written - self._read
        if max_frames is not None:
            n = min(n, max_frames)
        out = np.empty((n, self.channels), dtype=np.float32)
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._buf[start : start + first]
        if first < n:
            out[first:] = self._buf[: n - first]
        # Frames the producer may have overwritten while we copied are not trustworthy.
        clobbered = self._reserved - self.capacity - self._read
        if clobbered > 0:
            clobbered = min(clobbered, n)
            out = out[clobbered:]
            lost += clobbered
        self._read += n
        if lost:
            self.overruns += 1
            self.dropped_frames += lost
        return RingRead(frames=out, lost=lost)

    def clear(self) -> None:
        """Forget unread frames (consumer side); not counted as an overrun."""
        self._read = self._written
