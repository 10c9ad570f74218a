"""Raw PCM on stdin (``--stream stdin``, ``rtmer analyze - --format``): ``PcmInput``."""

from __future__ import annotations

import os
import select
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO

import numpy as np

from rtmer.core.resample import MonoResampler
from rtmer.errors import ConfigError
from rtmer.inputs.base import Block, check_layout

PCM_FORMATS: dict[str, np.dtype[Any]] = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4"), "s32le": np.dtype("<i4")}
PCM_POLL_SECONDS = 10.0  # most raw PCM one poll of PcmInput reads [s of audio]


# ---- raw PCM on stdin ----------------------------------------------------------------
class PcmInput:
    """Raw interleaved PCM from a pipe (stdin by default), read without blocking.

    ``fmt`` is one of ``PCM_FORMATS`` (little-endian); ``rate`` [Hz] and ``channels``
    describe the bytes, within ``check_layout``'s bounds. Partial frames are carried
    over between reads; one ``poll`` reads at most ``PCM_POLL_SECONDS`` of audio.

    Notes
    -----
    The descriptor is never switched to non-blocking mode: that flag belongs to the
    open file, which a terminal or a pipe shares with the shell and the other programs
    on it, so setting it would leave the next ``cat`` failing with EAGAIN. ``poll``
    reads only while ``select`` says there is data (or the end).
    """

    def __init__(
        self,
        stream: str,
        *,
        fmt: str,
        rate: int,
        channels: int,
        model_rate: int,
        pick: Sequence[int] | None = None,
        source: BinaryIO | None = None,
    ) -> None:
        if fmt not in PCM_FORMATS:
            raise ConfigError(f"format={fmt!r} must be one of {', '.join(PCM_FORMATS)}")
        check_layout(rate=rate, channels=channels)
        if pick is not None and max(pick) >= channels:
            raise ConfigError(f"stdin has {channels} channels; channel {max(pick) + 1} was asked for")
        self.name = "stdin"
        self.stream = stream
        self.streams = [stream]
        self.finished = False
        self.error: str | None = None
        self.dtype = PCM_FORMATS[fmt]
        self.channels = channels
        self._scale = 1.0 / 32768.0 if fmt == "s16le" else (1.0 / 2147483648.0 if fmt == "s32le" else 1.0)
        self._frame_bytes = self.dtype.itemsize * channels
        self._fd = (source or sys.stdin.buffer).fileno()
        self._pending = b""
        self._converter = MonoResampler(in_rate=rate, out_rate=model_rate, channels=pick)
        self._poll_bytes = max(1, int(PCM_POLL_SECONDS * rate)) * self._frame_bytes
        self.bytes_read = 0

    def start(self) -> None:
        pass

    def _readable(self) -> bool:
        try:
            ready, _, _ = select.select([self._fd], [], [], 0)
        except (OSError, ValueError):
            return True  # let the read report it
        return bool(ready)

    def fileno(self) -> int | None:
        return None if self.finished else self._fd

    def next_due(self) -> float | None:
        return None

    def poll(self) -> list[Block]:
        chunks = [self._pending] if self._pending else []
        eof = False
        room = self._poll_bytes  # one poll's audio is bounded, so its resampled size and its time are too
        while room > 0:
            if not self._readable():
                break
            try:
                data = os.read(self._fd, min(1 << 16, room))
            except BlockingIOError:  # a descriptor someone else made non-blocking
                break
            except OSError as exc:
                self.error = f"read failed ({exc})"
                eof = True
                break
            if not data:
                eof = True
                break
            chunks.append(data)
            self.bytes_read += len(data)
            room -= len(data)
        raw = b"".join(chunks)
        usable = len(raw) - len(raw) % self._frame_bytes
        self._pending = raw[usable:]
        parts: list[np.ndarray] = []
        if usable:
            x = np.frombuffer(raw[:usable], dtype=self.dtype).reshape(-1, self.channels)
            parts.append(self._converter.process(x.astype(np.float32) * np.float32(self._scale)))
        if eof:
            parts.append(self._converter.flush())
            self.finished = True
        parts = [p for p in parts if p.shape[0]]
        bad = self._converter.take_nonfinite()
        if not parts and not bad:
            return []
        samples = np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros(0, np.float32))
        return [Block(self.stream, samples, nonfinite_samples=bad)]

    @property
    def resampler_delay_seconds(self) -> float:
        return self._converter.delay_seconds

    def stats(self) -> dict[str, int]:
        return {"bytes": self.bytes_read, "partial_bytes": len(self._pending)}

    def close(self) -> None:
        self.finished = True
