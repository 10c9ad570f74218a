"""Music the project synthesises itself, for ``rtmer demo`` and for tests.

``SynthMusic`` renders a loop of four sections that differ clearly in mood, each
``section_seconds`` long, and hands it out block by block (``read``), forever:

==========  =======  ======  =====================  =========  ===========
section     tempo    level   harmony                register   percussion
==========  =======  ======  =====================  =========  ===========
calm        66 bpm   soft    major, sine pads       middle     none
excited     140 bpm  loud    major, bright saw      high       kick/snare/hats
sad         48 bpm   soft    minor, dark, vibrato   low        none
tense       150 bpm  loud    tritone clusters,      low        kick/hats
                             distorted
==========  =======  ======  =====================  =========  ===========

Everything is deterministic (``seed``). Sections are rendered once, up front.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

A4 = 440.0


def _hz(midi: float) -> float:
    return float(A4 * 2.0 ** ((midi - 69.0) / 12.0))


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    bpm: float
    level: float  # peak amplitude
    chords: tuple[tuple[int, ...], ...]  # MIDI notes, one chord per bar
    harmonics: int  # 1 = sine, more = brighter
    drums: bool
    vibrato: float = 0.0  # [semitones]
    drive: float = 0.0  # tanh saturation before the level is set; 0 = clean


SECTIONS = (
    Section("calm", 66, 0.18, ((60, 64, 67, 72), (65, 69, 72, 77), (55, 62, 67, 71), (60, 64, 67, 72)), 1, False),
    Section("excited", 140, 0.75, ((72, 76, 79, 84), (77, 81, 84, 89), (79, 83, 86, 91), (72, 76, 79, 84)), 8, True),
    Section("sad", 48, 0.12, ((45, 48, 52, 57), (41, 44, 48, 53), (38, 41, 45, 50), (40, 43, 47, 52)), 3, False, 0.4),
    Section("tense", 150, 0.7, ((36, 42, 48, 49, 54), (37, 43, 49, 50, 55), (35, 41, 47, 48, 53), (36, 42, 48, 54, 55)), 6, True, drive=12.0),
)


class SynthMusic:
    """An endless loop of the ``SECTIONS`` at ``rate`` [Hz], read in blocks.

    ``read(frames)`` returns float32 [frames, 1]; ``section_at(t)`` names the section
    playing at stream time ``t`` [s].
    """

    def __init__(self, *, rate: int, section_seconds: float = 10.0, seed: int = 7) -> None:
        self.rate = int(rate)
        self.section_seconds = float(section_seconds)
        rng = np.random.default_rng(seed)
        self._loop = np.concatenate([self._render(s, rng) for s in SECTIONS]).astype(np.float32)
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

    def _render(self, sec: Section, rng: np.random.Generator) -> np.ndarray:
        sr = self.rate
        n = int(round(self.section_seconds * sr))
        out = np.zeros(n, dtype=np.float64)
        beat = 60.0 / sec.bpm
        bar = 4 * beat
        t_bar = np.arange(int(bar * sr)) / sr
        # harmony: one chord per bar; fast sections arpeggiate eighth notes on top
        n_bars = int(np.ceil(self.section_seconds / bar))
        for b in range(n_bars):
            chord = sec.chords[b % len(sec.chords)]
            start = int(b * bar * sr)
            seg = np.zeros_like(t_bar)
            for note in chord:
                f = _hz(note)
                phase = 2 * np.pi * f * t_bar
                if sec.vibrato:
                    phase += sec.vibrato * f / 12 * np.log(2) / 5.0 * np.sin(2 * np.pi * 5.0 * t_bar)
                for h in range(1, sec.harmonics + 1):
                    if f * h < sr / 2.2:
                        seg += np.sin(h * phase) / h
            attack = min(0.4 * bar, 1.5) if not sec.drums else 0.01
            env = np.minimum(1.0, t_bar / attack) * np.exp(-t_bar / (bar * (2.0 if not sec.drums else 0.6)))
            seg *= env / len(chord)
            if sec.drums:
                eighth = beat / 2
                steps = int(bar / eighth)
                for k in range(steps):
                    note = chord[(k * 3) % len(chord)] + 12
                    s0 = int(k * eighth * sr)
                    m = int(eighth * sr)
                    tt = np.arange(m) / sr
                    tone = np.sign(np.sin(2 * np.pi * _hz(note) * tt)) * 0.5 + np.sin(2 * np.pi * _hz(note) * 2 * tt)
                    seg[s0 : s0 + m] += 0.25 * tone[: max(0, min(m, seg.shape[0] - s0))] * np.exp(-tt / 0.08)[: max(0, min(m, seg.shape[0] - s0))]
            end = min(n, start + seg.shape[0])
            out[start:end] += seg[: end - start]
        if sec.drums:
            self._drums(out, beat, rng)
        if sec.drive:
            out = np.tanh(sec.drive * out / (np.max(np.abs(out)) or 1.0))
        peak = np.max(np.abs(out)) or 1.0
        out *= sec.level / peak
        fade = int(0.05 * sr)
        out[:fade] *= np.linspace(0, 1, fade)
        out[-fade:] *= np.linspace(1, 0, fade)
        return out

    def _drums(self, out: np.ndarray, beat: float, rng: np.random.Generator) -> None:
        sr = self.rate
        n = out.shape[0]
        peak = np.max(np.abs(out)) or 1.0
        k_len = int(0.25 * sr)
        tk = np.arange(k_len) / sr
        kick = np.sin(2 * np.pi * (50 * tk + 70 * 0.04 * (1 - np.exp(-tk / 0.04)))) * np.exp(-tk / 0.12)
        s_len = int(0.18 * sr)
        snare = rng.standard_normal(s_len) * np.exp(-np.arange(s_len) / sr / 0.05) * 0.6
        h_len = int(0.05 * sr)
        hat = np.diff(rng.standard_normal(h_len + 1)) * np.exp(-np.arange(h_len) / sr / 0.012) * 0.25
        t = 0.0
        i = 0
        while t < n / sr:
            s0 = int(t * sr)
            for hit, on in ((kick, i % 2 == 0), (snare, i % 2 == 1), (hat, True)):
                if on:
                    m = min(hit.shape[0], n - s0)
                    out[s0 : s0 + m] += peak * hit[:m]
            h0 = int((t + beat / 2) * sr)
            if h0 < n:
                m = min(hat.shape[0], n - h0)
                out[h0 : h0 + m] += peak * hat[:m]
            t += beat
            i += 1
