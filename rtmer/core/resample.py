"""The first DSP stage: channel pick, downmix to mono and streaming resampling (soxr).

Every input (``rtmer.inputs``) and ``Tracker`` turn their frames into mono samples at
the model's rate with it. Pure: arrays in, arrays out.

Declared latency: the resampler (soxr HQ streaming) adds ``delay_seconds`` (0 when no
resampling is needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import soxr

from rtmer.errors import ConfigError

SAMPLE_LIMIT = 1e6  # |sample| beyond this is clipped before the downmix and resampler, which would overflow float32


# ---- channel selection, downmix, resampling -------------------------------------------
class MonoResampler:
    """Stage: frames [n, channels] at ``in_rate`` -> mono float32 at ``out_rate``.

    Picks ``channels`` (0-based; None = all), averages them, and resamples with soxr's
    streaming resampler (bypassed when the rates are equal). Non-finite samples of the
    picked channels (NaN, inf) become 0 first and are counted; ``take_nonfinite()``
    returns the count since it was last called. Replacing them before the resampler
    keeps one bad sample from spreading over the filter's length.

    Notes
    -----
    The resampler keeps its filter history between calls; its output does not depend on
    how the input is chunked. ``flush()`` drains it at the end of a stream.
    """

    def __init__(self, *, in_rate: int, out_rate: int, channels: Sequence[int] | None = None) -> None:
        if in_rate <= 0:
            raise ConfigError(f"input sample rate={in_rate!r} must be a positive integer [Hz]")
        self.in_rate = int(in_rate)
        self.out_rate = int(out_rate)
        self.channels = list(channels) if channels is not None else None
        self._rs: Any = None
        self._nonfinite = 0
        self.reset()

    def take_nonfinite(self) -> int:
        """Non-finite input samples replaced by 0 since the last call [count]."""
        n, self._nonfinite = self._nonfinite, 0
        return n

    @property
    def delay_seconds(self) -> float:
        return 0.0 if self._rs is None else float(self._rs.delay()) / self.out_rate

    def _mono(self, frames: np.ndarray) -> np.ndarray:
        x = np.asarray(frames, dtype=np.float32)
        if self.channels is not None and x.ndim > 1:
            x = x[:, self.channels]
        finite = np.isfinite(x)
        if not finite.all():
            self._nonfinite += int(x.size - np.count_nonzero(finite))
            x = np.where(finite, x, np.float32(0.0))
        if x.size and float(np.max(np.abs(x))) > SAMPLE_LIMIT:  # finite, but the mean or soxr would overflow to inf
            x = np.clip(x, -SAMPLE_LIMIT, SAMPLE_LIMIT)
        if x.ndim == 1:
            return x
        return x[:, 0].copy() if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)

    def process(self, frames: np.ndarray) -> np.ndarray:
        mono = self._mono(frames)
        if self._rs is None:
            return np.ascontiguousarray(mono, dtype=np.float32)
        return np.asarray(self._rs.resample_chunk(np.ascontiguousarray(mono)), dtype=np.float32)

    def flush(self) -> np.ndarray:
        if self._rs is None:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self._rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True), dtype=np.float32)

    def reset(self) -> None:
        self._rs = (
            None
            if self.in_rate == self.out_rate
            else soxr.ResampleStream(self.in_rate, self.out_rate, 1, dtype="float32", quality="HQ")
        )
