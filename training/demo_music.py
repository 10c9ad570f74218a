"""Compose the four sections of ``rtmer demo`` as MIDI and render them with FluidSynth.

    python -m training.demo_music            # writes rtmer/demo_music/{calm,excited,sad,tense}.ogg

The runtime needs neither mido nor FluidSynth: the rendered sections are committed and ship
in the package (``rtmer.demo`` reads them with ``importlib.resources``). Rendering with
General MIDI instruments (FluidR3_GM) rather than sine waves makes the demo sound like
music a listener, or a model trained on recordings, knows. The sections, their tempi,
harmony and instruments are tabled in ``rtmer.demo``'s docstring.

Each section is the fewest whole bars that last ``SECTION_SECONDS``, so that it loops
on a bar line.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import mido
import numpy as np
import soundfile as sf
import soxr

from training.render import DEFAULT_SOUNDFONT, RENDER_SAMPLE_RATE, render_midi

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "rtmer" / "demo_music"
SECTION_SECONDS = 20.0
SAMPLE_RATE = 22050  # of the shipped files: above the models' 16 kHz, for the resampling paths
TICKS_PER_BEAT = 480
DRUMS = 9  # General MIDI's percussion channel
KICK, SNARE, CLAP, CLOSED_HAT, OPEN_HAT, CRASH, RIDE = 36, 38, 39, 42, 46, 49, 51


@dataclass
class Score:
    """Notes in beats on up to 16 channels, at one tempo."""

    bpm: float
    bars: int
    events: list[tuple[int, mido.Message]] = field(default_factory=list)

    def program(self, channel: int, program: int, volume: int) -> None:
        self.events.append((0, mido.Message("program_change", channel=channel, program=program)))
        self.events.append((0, mido.Message("control_change", channel=channel, control=7, value=volume)))

    def note(self, channel: int, pitch: int, beat: float, beats: float, velocity: int) -> None:
        on, off = round(beat * TICKS_PER_BEAT), round((beat + beats) * TICKS_PER_BEAT) - 1
        self.events.append((on, mido.Message("note_on", channel=channel, note=pitch, velocity=velocity)))
        self.events.append((off, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))

    @property
    def seconds(self) -> float:
        return self.bars * 4 * 60.0 / self.bpm

    def midi(self) -> mido.MidiFile:
        track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(self.bpm))])
        now = 0
        for tick, message in sorted(self.events, key=lambda e: (e[0], e[1].type == "note_on")):  # offs before ons
            track.append(message.copy(time=tick - now))
            now = tick
        return mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT, tracks=[track])


def bars_for(bpm: float) -> int:
    return max(1, math.ceil(SECTION_SECONDS * bpm / 240.0))


def calm() -> Score:
    score = Score(56, bars_for(56))
    score.program(0, 24, 80)  # nylon guitar
    score.program(1, 49, 80)  # slow strings
    score.program(2, 89, 60)  # warm pad
    chords = ((48, 55, 64, 67, 72), (45, 52, 60, 64, 69), (41, 53, 60, 65, 69), (43, 55, 62, 67, 71))
    for bar in range(score.bars):
        chord, start = chords[bar % 4], bar * 4
        for k, index in enumerate((0, 3, 4, 2)):  # half notes, let ring
            score.note(0, chord[index], start + 2 * (k // 2) + (k % 2), 3.0, 45 if k else 52)
        for pitch in chord[1:4]:
            score.note(1, pitch, start, 4, 42)
            score.note(2, pitch + 12, start, 4, 35)
    return score


def excited() -> Score:
    score = Score(132, bars_for(132))
    score.program(0, 81, 90)  # saw lead
    score.program(1, 0, 100)  # piano
    score.program(2, 33, 110)  # finger bass
    score.program(3, 62, 85)  # synth brass
    chords = ((60, 64, 67), (55, 59, 62), (57, 60, 64), (53, 57, 60))
    melody = (84, 86, 88, 91, 88, 86, 84, 86)
    for bar in range(score.bars):
        chord, start = chords[bar % 4], bar * 4
        for k in range(8):
            at = start + k / 2
            score.note(2, chord[0] - 24 + 12 * (k % 2), at, 0.45, 110)
            for pitch in chord:
                score.note(1, pitch + 12, at, 0.3, 95)
            score.note(0, melody[k], at, 0.45, 90)
            score.note(DRUMS, CLOSED_HAT if k % 2 == 0 else OPEN_HAT, at, 0.25, 90)
        for k in range(4):
            score.note(DRUMS, KICK, start + k, 0.5, 120)
            if k % 2:
                score.note(DRUMS, SNARE, start + k, 0.5, 110)
                score.note(DRUMS, CLAP, start + k, 0.5, 90)
        for pitch in chord:
            score.note(3, pitch, start, 1.0, 90)
            score.note(3, pitch, start + 2.5, 1.0, 90)
        if bar % 4 == 0:
            score.note(DRUMS, CRASH, start, 2, 110)
    return score


def sad() -> Score:
    score = Score(50, bars_for(50))
    score.program(0, 0, 85)  # piano
    score.program(1, 48, 70)  # strings
    score.program(2, 42, 85)  # cello
    bass = (45, 43, 41, 40)  # the lament: a bass falling by step, A G F E
    chords = ((57, 60, 64), (55, 59, 62), (53, 57, 60), (52, 56, 59))  # Am, G/B-ish, F, E
    melody = (64, 62, 60, 59, 60, 59, 57, 56)
    for bar in range(score.bars):
        start = bar * 4
        score.note(0, bass[bar % 4] - 12, start, 4, 45)
        score.note(0, bass[bar % 4], start, 4, 40)
        for k, pitch in enumerate(chords[bar % 4]):
            score.note(0, pitch, start + 1 + k, 1.5, 32)
        for pitch in chords[bar % 4][::2]:
            score.note(1, pitch - 12, start, 4, 40)
        score.note(2, melody[(2 * bar) % 8] - 12, start, 2, 60)
        score.note(2, melody[(2 * bar + 1) % 8] - 12, start + 2, 2, 55)
    return score


def tense() -> Score:
    score = Score(170, bars_for(170))
    score.program(0, 30, 120)  # distortion guitar: the riff
    score.program(1, 30, 110)  # distortion guitar: tritone stabs
    score.program(2, 34, 115)  # picked bass
    riff = (40, 40, 41, 40, 40, 46, 40, 41, 40, 40, 43, 40, 46, 45, 41, 40)
    for bar in range(score.bars):
        start = bar * 4
        for k, root in enumerate(riff):
            at, accent = start + k / 4, root != riff[0]
            for pitch in (root, root + 7):  # power chords
                score.note(0, pitch, at, 0.45 if accent else 0.22, 127 if accent else 100)
            score.note(2, root - 12, at, 0.22, 110)
            score.note(DRUMS, KICK, at, 0.2, 120 if k % 2 == 0 else 105)
            if k % 8 == 4:
                score.note(DRUMS, SNARE, at, 0.3, 127)
        for beat, pitches in ((0, (52, 58)), (2, (53, 59))):
            for pitch in pitches:
                score.note(1, pitch, start + beat, 1.0, 110)
        if bar % 2 == 0:
            score.note(DRUMS, CRASH, start, 2, 120)
        score.note(DRUMS, RIDE, start + 1, 0.5, 90)
        score.note(DRUMS, RIDE, start + 3, 0.5, 90)
    return score


SECTIONS: dict[str, tuple[Callable[[], Score], float]] = {  # name: (score, peak level)
    "calm": (calm, 0.25),
    "excited": (excited, 0.9),
    "sad": (sad, 0.2),
    "tense": (tense, 0.9),
}


def render_section(name: str, soundfont: Path = DEFAULT_SOUNDFONT) -> np.ndarray:
    """One section, mono float32 at ``SAMPLE_RATE``, cut to its bars and peak-normalised to its level."""
    compose, level = SECTIONS[name]
    score = compose()
    audio = render_midi(score.midi(), reverb=True, chorus=False, soundfont=soundfont, source=f"demo section {name!r}")
    audio = soxr.resample(audio, RENDER_SAMPLE_RATE, SAMPLE_RATE)[: round(score.seconds * SAMPLE_RATE)]
    return (level * audio / (np.max(np.abs(audio)) or 1.0)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.demo_music", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for the .ogg files (default: %(default)s)")
    parser.add_argument("--soundfont", type=Path, default=DEFAULT_SOUNDFONT)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in SECTIONS:
        audio = render_section(name, args.soundfont)
        path = args.out / f"{name}.ogg"
        sf.write(path, audio, SAMPLE_RATE, format="OGG", subtype="VORBIS")
        print(f"{path}: {len(audio) / SAMPLE_RATE:.1f} s, {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
