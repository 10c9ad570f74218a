"""The value every output adapter receives: one stream's estimate for one hop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Update:
    """One stream's estimate at the end of one hop.

    ``t`` is the stream time [s] at the end of the hop, counted from the stream's
    first sample; ``time`` is the wall-clock unix time [s] when the estimate was made.
    ``valence``/``arousal`` are smoothed, ``*_raw`` are the model's output, all in [-1, 1].
    ``status`` flags a hop whose values are not a plain estimate: ``ok``; ``gap`` (audio
    was lost before this hop and the stream's state restarted); ``failed`` (the model
    failed on this hop: raw 0, counted in ``StreamStats.model_failures``).
    """

    stream: str
    seq: int
    t: float
    time: float
    valence: float
    arousal: float
    valence_raw: float
    arousal_raw: float
    mood: str
    status: str = "ok"


class Sink(Protocol):
    """An output adapter. ``publish`` must never block the engine."""

    def publish(self, update: Update) -> None: ...

    def close(self) -> None: ...
