"""Cut a stream of mono samples into the model's hops.

``HopFramer`` is a stage: ``process(samples)`` takes any number of samples at the
model's rate and returns the complete hops it now holds; the remainder waits for the
next call. It adds up to one hop of delay (``delay_seconds`` = hop [s]): a hop is only
emitted when its last sample has arrived. ``flush()`` zero-pads the final partial hop
at the end of a stream. Positions are counted in samples from the stream's start; a
gap (``skip``) advances the position by the audio that was lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rtmer.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Hop:
    """One hop of one stream, ready for the engine.

    ``audio`` float32 [hop_samples], mono at the model's rate. ``end_seconds`` is the
    stream time [s] of the hop's last sample (counted from the stream's first sample).
    ``gap`` says that audio was lost or the source jumped before this hop, so the
    engine must reset the stream's model state before it.
    """

    stream: str
    audio: np.ndarray
    end_seconds: float
    gap: bool = False


class HopFramer:
    """Stage: samples -> complete hops of ``hop_samples`` for one stream.

    Notes
    -----
    Buffers fewer than ``hop_samples`` samples between calls (at most one hop).
    """

    def __init__(self, stream: str, *, hop_samples: int, sample_rate: int) -> None:
        if hop_samples <= 0:
            raise ConfigError(f"hop_samples={hop_samples!r} must be a positive integer [samples]")
        if sample_rate <= 0:
            raise ConfigError(f"sample_rate={sample_rate!r} must be a positive integer [Hz]")
        self.stream = stream
        self.hop_samples = hop_samples
        self.sample_rate = sample_rate
        self.delay_seconds = hop_samples / sample_rate
        self._buf = np.zeros(hop_samples, dtype=np.float32)
        self._fill = 0
        self._position = 0  # samples since the stream's start, including lost ones
        self._gap = False

    def skip(self, lost_samples: int) -> None:
        """Audio was lost: drop the partial hop, advance the clock, mark the next hop as a gap."""
        self._position += max(0, int(lost_samples))
        self._fill = 0
        self._gap = True

    def process(self, samples: np.ndarray) -> list[Hop]:
        hops: list[Hop] = []
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        i = 0
        while i < x.shape[0]:
            take = min(self.hop_samples - self._fill, x.shape[0] - i)
            self._buf[self._fill : self._fill + take] = x[i : i + take]
            self._fill += take
            self._position += take
            i += take
            if self._fill == self.hop_samples:
                hops.append(self._emit())
        return hops

    def flush(self) -> Hop | None:
        """End of stream: the final partial hop, zero-padded, or None if there is none."""
        if self._fill == 0:
            return None
        pad = self.hop_samples - self._fill
        self._buf[self._fill :] = 0.0
        self._position += pad
        self._fill = self.hop_samples
        return self._emit()

    def _emit(self) -> Hop:
        hop = Hop(self.stream, self._buf.copy(), self._position / self.sample_rate, self._gap)
        self._fill = 0
        self._gap = False
        return hop

    def reset(self) -> None:
        self._fill = 0
        self._position = 0
        self._gap = False
