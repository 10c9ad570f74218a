"""Music the project composes itself, for ``rtmer demo``, benchmarks and tests.

``SynthMusic`` plays a loop of four sections that differ clearly in mood, each
``section_seconds`` long, and hands it out block by block (``read``), forever:

==========  =======  ===========================================  ==============================
section     tempo    harmony and instruments                      rhythm
==========  =======  ===========================================  ==============================
calm        56 bpm   C major (I-vi-IV-V): nylon guitar, slow      guitar in half notes, let
                     strings, a warm pad                          ring, no drums, soft
excited     132 bpm  C major (I-V-vi-IV): saw lead, piano,        four on the floor, claps,
                     synth brass, finger bass                     eighth hats, loud
sad         50 bpm   A minor lament (the bass falls A-G-F-E):     slow broken chords, a falling
                     soft piano, low strings, a cello line        cello line, no drums
tense       170 bpm  E Phrygian riff with the tritone: two        palm-muted sixteenths, double
                     distorted guitars, picked bass               kick, crash, loud
==========  =======  ===========================================  ==============================

The sections are composed as MIDI and rendered with General MIDI instruments by
``python -m training.demo_music``; the renders (20 to 24 s each, whole bars) ship in the
package as ``rtmer/demo_music/*.ogg`` and are found with ``importlib.resources``. A
section shorter than its render is its first ``section_seconds``; a longer one repeats
it, on a bar line.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

import numpy as np
import soundfile as sf
import soxr

FADE_SECONDS = 0.05  # at each section's edges, so that the switches do not click
SECTION_SECONDS = 7.5  # the four sections fit the README's 30 s main command


@dataclass(frozen=True, slots=True)
class Section:
    name: str  # also the mood it is meant to read as (rtmer.core.mood's names)
    bpm: float


SECTIONS = (Section("calm", 56), Section("excited", 132), Section("sad", 50), Section("tense", 170))


def section_audio(name: str, rate: int) -> np.ndarray:
    """The shipped render of one section, mono float32 at ``rate`` [Hz]."""
    with (files("rtmer") / "demo_music" / f"{name}.ogg").open("rb") as f:
        audio, source_rate = sf.read(f, dtype="float32")
    if source_rate != rate:
        audio = soxr.resample(audio, source_rate, rate)
    return np.asarray(audio, dtype=np.float32)


class SynthMusic:
    """An endless loop of the ``SECTIONS`` at ``rate`` [Hz], read in blocks.

    ``read(frames)`` returns float32 [frames, 1]; ``section_at(t)`` names the section
    playing at stream time ``t`` [s]. ``seed`` picks where in its render each section
    starts (a whole bar in), so that different seeds give different audio.
    """

    def __init__(self, *, rate: int, section_seconds: float = SECTION_SECONDS, seed: int = 0) -> None:
        if rate <= 0:
            raise ValueError(f"rate={rate} must be a positive number of samples per second")
        if not section_seconds > 2 * FADE_SECONDS:
            raise ValueError(f"section_seconds={section_seconds} must be more than {2 * FADE_SECONDS} s")
        self.rate = int(rate)
        self.section_seconds = float(section_seconds)
        rng = np.random.default_rng(seed)
        self._loop = np.concatenate([self._fit(section, rng) for section in SECTIONS])
        self._pos = 0

    def section_at(self, t: float) -> str:
        k = int(t // self.section_seconds) % len(SECTIONS)
        return SECTIONS[k].name

    def read(self, frames: int) -> np.ndarray:
        out = np.empty(frames, dtype=np.float32)
        filled = 0
        n = self._loop.shape[0]
        while filled < frames:
            take = min(frames - filled, n - self._pos)
            out[filled : filled + take] = self._loop[self._pos : self._pos + take]
            filled += take
            self._pos = (self._pos + take) % n
        return out[:, None]

    def render(self, seconds: float) -> np.ndarray:
        """The first ``seconds`` [s] of the loop as mono float32 (does not move ``read``)."""
        n = int(round(seconds * self.rate))
        reps = n // self._loop.shape[0] + 1
        return np.tile(self._loop, reps)[:n].copy()

    def _fit(self, section: Section, rng: np.random.Generator) -> np.ndarray:
        audio = section_audio(section.name, self.rate)
        bar = 4 * 60.0 / section.bpm * self.rate
        start = int(round(int(rng.integers(max(1, int(audio.shape[0] // bar)))) * bar))
        n = int(round(self.section_seconds * self.rate))
        out = np.tile(np.roll(audio, -start), n // audio.shape[0] + 1)[:n].copy()
        fade = int(FADE_SECONDS * self.rate)
        out[:fade] *= np.linspace(0, 1, fade, dtype=np.float32)
        out[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
        return out
