"""The composite stage: per stream resample -> frame, then every stream's hops -> engine.

``Pipeline`` is what ``Tracker`` and the runner (``rtmer.app.runner``) drive, so the
stages are wired in one place:

    frames of stream s -> MonoResampler (s) -> HopFramer (s) -> hops
    hops of every stream -> Engine (one batched model call per round) -> Updates

A stream is opened with its input rate (``in_rate``): its frames are resampled to the
model's rate here. Opened without one, its frames are already mono at the model's rate
(the inputs of ``rtmer.inputs`` resample themselves: one device feeds several streams,
each with its own channels) and go straight to the framer.

The two halves are open to the caller: ``frame`` (resample and cut into hops) and
``run`` (the engine), so the runner can hold back hops past ``--seconds`` between them;
``process`` is both for blocks of several streams.

Declared latency: ``delay_seconds(stream)`` [s], the resampler's (a few ms, 0 without
one) plus the framer's hop; the engine adds its own (``Engine.latency``).

Notes
-----
Keeps per stream, between calls: the resampler's filter history and fewer than one hop
of samples (the framer); the engine keeps each stream's model state, smoother and mood.
``end`` drains a stream (resampler, then the zero-padded last hop), ``close`` forgets it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from rtmer.core.engine import Engine, StreamStats
from rtmer.core.framing import Hop, HopFramer
from rtmer.core.model import ModelInfo
from rtmer.core.resample import MonoResampler
from rtmer.core.update import Update


@dataclass(slots=True)
class _Chain:
    resampler: MonoResampler | None
    framer: HopFramer


class Pipeline:
    """Stage: blocks of many streams -> resample -> frame -> ``engine`` -> ``Update``s."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._chains: dict[str, _Chain] = {}

    @property
    def info(self) -> ModelInfo:
        return self.engine.info

    @property
    def streams(self) -> list[str]:
        """The open streams, in the order they were opened."""
        return list(self._chains)

    def __contains__(self, stream: object) -> bool:
        return stream in self._chains

    def open(self, stream: str, *, in_rate: int | None = None) -> None:
        """Start ``stream``: frames at ``in_rate`` [Hz] (resampled here), or None: mono at the
        model's rate already. Raises ``ValueError`` for a stream that is open."""
        if stream in self._chains:
            raise ValueError(f"stream id {stream!r} is used twice")
        info = self.engine.info
        resampler = None if in_rate is None else MonoResampler(in_rate=in_rate, out_rate=info.sample_rate)
        framer = HopFramer(stream, hop_samples=info.hop_samples, sample_rate=info.sample_rate)
        self._chains[stream] = _Chain(resampler, framer)

    def delay_seconds(self, stream: str) -> float:
        """Declared delay [s] of ``stream``'s resampler and framer."""
        chain = self._chains[stream]
        return (0.0 if chain.resampler is None else chain.resampler.delay_seconds) + chain.framer.delay_seconds

    # ---- the first half: resample and frame ------------------------------------------------
    def frame(self, stream: str, frames: np.ndarray) -> list[Hop]:
        """The complete hops ``stream`` holds after ``frames`` ([n] or [n, channels] at its rate)."""
        chain = self._chains[stream]
        samples = frames if chain.resampler is None else chain.resampler.process(frames)
        return chain.framer.process(samples)

    def skip(self, stream: str, lost_samples: int) -> None:
        """Audio of ``stream`` was lost [samples at the model's rate]: its next hop is a gap."""
        self._chains[stream].framer.skip(lost_samples)

    def end(self, stream: str) -> list[Hop]:
        """The end of ``stream``: what its resampler still holds, and the zero-padded last hop."""
        chain = self._chains[stream]
        hops = [] if chain.resampler is None else chain.framer.process(chain.resampler.flush())
        last = chain.framer.flush()
        if last is not None:
            hops.append(last)
        return hops

    # ---- the second half: the engine --------------------------------------------------------
    def run(self, hops: list[Hop]) -> list[Update]:
        """The engine's updates for ``hops`` of any streams (none for none)."""
        return self.engine.process(hops) if hops else []

    # ---- both -------------------------------------------------------------------------------
    def process(self, blocks: Mapping[str, np.ndarray]) -> list[Update]:
        """One block for each of several open streams; their hops share batched model calls."""
        hops: list[Hop] = []
        for stream, frames in blocks.items():
            hops.extend(self.frame(stream, frames))
        return self.run(hops)

    def close(self, stream: str) -> StreamStats | None:
        """Forget ``stream`` without draining it; returns its engine counters (None if it had no hop)."""
        self._chains.pop(stream, None)
        return self.engine.end_stream(stream)

    def discard(self, stream: str) -> None:
        """Forget a stream that never ran (its input failed to start)."""
        self._chains.pop(stream, None)
