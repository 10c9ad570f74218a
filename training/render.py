"""Render VGMIDI pieces to audio with FluidSynth, as piano and as augmented arrangements.

The labels were made on solo piano, but the model is judged on real multi-instrument
recordings, so each piece is rendered several ways. Variant ``piano`` (index 0) is the
MIDI as annotated, every program set to Acoustic Grand. Variants ``v1``, ``v2``, ...
are drawn at random but deterministically from (piece_id, variant index, seed):

- MIDI (mido): the notes are split into a melody part and an accompaniment part (by
  track when the piece has several voices, else by pitch), each given a General MIDI
  program from one ensemble (strings, orchestra, brass, woodwinds, organ, guitars,
  electric-piano band, synth leads and pads, choir, mallets, piano with a soloist) or,
  sometimes, any two programs; optionally a bass line doubling the lowest note of each
  onset an octave down, and a soft drum kit on the beat (channel 10); velocities scaled;
  FluidSynth's reverb and chorus switched on or off.
- Audio (numpy/scipy): synthetic room reverb (exponentially decaying noise, RT60
  0.2-2 s, wet mix), spectral tilt, optional low-pass and high-pass, additive white,
  pink or brown noise at 15-40 dB SNR, and a gain of -18..0 dB.

Tempo and notes are never changed, so the per-hop labels stay valid. Renders are
16 kHz mono FLAC in ``<cache_dir>/<piece_id>/<variant>.flac``, each beside a JSON file
holding the recipe it was made from; a file whose recipe matches is not rendered again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import mido
import numpy as np
import soundfile as sf
from scipy import signal
from scipy.fft import next_fast_len

from rtmer.errors import DatasetError
from training.datasets import Recording, VgmidiPiece

RENDER_SAMPLE_RATE = 16000
DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
# Bump when what a recipe produces changes: cached renders of an older version are redone.
RENDER_VERSION = 1

PIANO_VARIANT = "piano"
FLUIDSYNTH_GAIN = 0.6
PEAK_LEVEL = 0.9

MELODY_CHANNEL = 0
ACCOMPANIMENT_CHANNEL = 1
BASS_CHANNEL = 2
DRUM_CHANNEL = 9
SUSTAIN_PEDAL = 64
CHANNEL_VOLUME = 7
HANGING_NOTE_BEATS = 2
# FluidSynth renders until every voice is silent; stop it this long past the MIDI's end.
MAX_TAIL_SECONDS = 30.0

# Programs whose notes die away by themselves: the sustain pedal makes sense on them.
# On organs, strings, winds, pads and voices it would hold every note into a drone.
DECAYING_PROGRAMS = frozenset([*range(0, 16), *range(24, 40), 45, 46, 47])


@dataclass(frozen=True)
class Ensemble:
    """General MIDI programs (0-based) to draw each part from, and how often drums join."""

    melody: tuple[int, ...]
    accompaniment: tuple[int, ...]
    bass: tuple[int, ...]
    drum_probability: float


ENSEMBLES: dict[str, Ensemble] = {
    "strings": Ensemble((40, 48, 49, 41), (48, 49, 42, 45, 46), (43, 32), 0.0),
    "orchestra": Ensemble((73, 68, 56, 60, 40, 71), (48, 49, 61, 46), (43, 58), 0.1),
    "brass": Ensemble((56, 57, 60, 61), (61, 57, 58, 60), (58, 57), 0.2),
    "woodwinds": Ensemble((73, 68, 71, 72, 74, 75), (71, 70, 69, 46), (70, 43), 0.0),
    "organ": Ensemble((16, 17, 18, 19, 20), (16, 19, 20), (32, 33), 0.2),
    "guitars": Ensemble((24, 25, 26, 27), (24, 25, 26, 27), (32, 33, 34), 0.4),
    "electric piano band": Ensemble((4, 5, 11, 25, 26), (4, 5, 16), (33, 34, 35), 0.6),
    "synth": Ensemble((80, 81, 82, 84, 87), (88, 89, 90, 94, 95, 50), (38, 39), 0.5),
    "choir": Ensemble((52, 53, 54), (48, 52, 89, 19), (43, 32), 0.0),
    "mallets": Ensemble((8, 9, 11, 12, 13), (4, 46, 12, 48), (32,), 0.2),
    "piano and soloist": Ensemble((40, 73, 65, 56, 71), (0, 1, 2), (32, 43), 0.1),
}
ANY_PROGRAM = tuple(sorted({p for e in ENSEMBLES.values() for p in e.melody + e.accompaniment}))
MIXED_ENSEMBLE_PROBABILITY = 0.2


@dataclass(frozen=True)
class Arrangement:
    """The MIDI-level choices of one augmented variant."""

    ensemble: str
    melody_program: int
    accompaniment_program: int
    bass_program: int | None  # None: no bass line added
    drums: bool
    velocity_scale: float
    accompaniment_velocity_scale: float
    fluidsynth_reverb: bool
    fluidsynth_chorus: bool


@dataclass(frozen=True)
class AudioAugmentation:
    """The audio-level choices of one augmented variant."""

    reverb_rt60_seconds: float | None
    reverb_wet: float
    tilt_db_per_octave: float
    lowpass_hz: float | None
    highpass_hz: float | None
    noise_color: str  # "white", "pink" or "brown"
    snr_db: float | None  # None: no noise
    gain_db: float
    noise_seed: int  # seeds the reverb impulse response and the noise


@dataclass(frozen=True)
class RenderRecipe:
    """Everything a render depends on; ``arrangement`` and ``audio`` are None for ``piano``."""

    piece_id: str
    variant: str
    seed: int
    render_version: int
    soundfont: str
    arrangement: Arrangement | None
    audio: AudioAugmentation | None


def variant_name(index: int) -> str:
    """``piano`` for index 0, ``v<index>`` for the augmented variants."""
    return PIANO_VARIANT if index == 0 else f"v{index}"


# ---------------------------------------------------------------------------
# Drawing recipes


def _stable_hash(text: str) -> int:
    # Python's hash() of str changes between processes; this does not.
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def draw_recipe(piece_id: str, variant_index: int, seed: int, soundfont: Path = DEFAULT_SOUNDFONT) -> RenderRecipe:
    """The recipe of one variant; the same arguments always give the same recipe."""
    if seed < 0 or variant_index < 0:
        raise ValueError(f"seed={seed} and variant_index={variant_index} must be >= 0")
    variant = variant_name(variant_index)
    if variant_index == 0:
        return RenderRecipe(piece_id, variant, seed, RENDER_VERSION, soundfont.name, None, None)
    rng = np.random.default_rng([seed, variant_index, _stable_hash(piece_id)])
    return RenderRecipe(
        piece_id, variant, seed, RENDER_VERSION, soundfont.name, _draw_arrangement(rng), _draw_audio_augmentation(rng)
    )


def _pick(rng: np.random.Generator, choices: Sequence[int]) -> int:
    return int(choices[int(rng.integers(len(choices)))])


def _draw_arrangement(rng: np.random.Generator) -> Arrangement:
    names = sorted(ENSEMBLES)
    name = names[int(rng.integers(len(names)))]
    ensemble = ENSEMBLES[name]
    if rng.random() < MIXED_ENSEMBLE_PROBABILITY:
        name = "mixed"
        melody, accompaniment = _pick(rng, ANY_PROGRAM), _pick(rng, ANY_PROGRAM)
    else:
        melody, accompaniment = _pick(rng, ensemble.melody), _pick(rng, ensemble.accompaniment)
    bass = _pick(rng, ensemble.bass) if rng.random() < 0.5 else None
    return Arrangement(
        ensemble=name,
        melody_program=melody,
        accompaniment_program=accompaniment,
        bass_program=bass,
        drums=bool(rng.random() < ensemble.drum_probability),
        velocity_scale=round(float(rng.uniform(0.6, 1.15)), 3),
        accompaniment_velocity_scale=round(float(rng.uniform(0.65, 1.0)), 3),
        fluidsynth_reverb=bool(rng.random() < 0.5),
        fluidsynth_chorus=bool(rng.random() < 0.3),
    )


def _draw_audio_augmentation(rng: np.random.Generator) -> AudioAugmentation:
    colors = ("white", "pink", "brown")
    return AudioAugmentation(
        reverb_rt60_seconds=round(float(rng.uniform(0.2, 2.0)), 3) if rng.random() < 0.7 else None,
        reverb_wet=round(float(rng.uniform(0.1, 0.5)), 3),
        tilt_db_per_octave=round(float(rng.uniform(-3.0, 2.0)), 3),
        lowpass_hz=round(float(rng.uniform(2500.0, 7500.0))) if rng.random() < 0.4 else None,
        highpass_hz=round(float(rng.uniform(60.0, 250.0))) if rng.random() < 0.4 else None,
        noise_color=colors[int(rng.integers(len(colors)))],
        snr_db=round(float(rng.uniform(15.0, 40.0)), 2) if rng.random() < 0.8 else None,
        gain_db=round(float(rng.uniform(-18.0, 0.0)), 2),
        noise_seed=int(rng.integers(2**31)),
    )


# ---------------------------------------------------------------------------
# MIDI rewriting


def as_acoustic_grand(midi: mido.MidiFile) -> mido.MidiFile:
    """A copy of ``midi`` with every program change set to Acoustic Grand (program 0)."""
    piano = mido.MidiFile(type=midi.type, ticks_per_beat=midi.ticks_per_beat)
    for track in midi.tracks:
        piano.tracks.append(
            mido.MidiTrack(msg.copy(program=0) if msg.type == "program_change" else msg for msg in track)
        )
    return piano


def _is_note_on(msg: mido.Message) -> bool:
    return bool(msg.type == "note_on" and msg.velocity > 0)


def _is_note_off(msg: mido.Message) -> bool:
    return bool(msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0))


def _absolute_events(midi: mido.MidiFile) -> list[tuple[int, int, mido.Message]]:
    """``(tick, track index, message)`` of all tracks, merged in time (stable by track)."""
    events = []
    for track_index, track in enumerate(midi.tracks):
        tick = 0
        for msg in track:
            tick += msg.time
            events.append((tick, track_index, msg))
    events.sort(key=lambda event: event[0])
    return events


def _melody_role(events: list[tuple[int, int, mido.Message]]) -> tuple[dict[tuple[int, int], bool], int]:
    """Which voices (track, channel) carry the melody, and the split pitch for one-voice pieces.

    With several voices the highest one (by mean pitch) is the melody; with one voice,
    notes at or above the split pitch are.
    """
    pitches: dict[tuple[int, int], list[int]] = {}
    for _, track_index, msg in events:
        if _is_note_on(msg):
            pitches.setdefault((track_index, msg.channel), []).append(msg.note)
    if len(pitches) < 2:
        all_pitches = [p for voice in pitches.values() for p in voice]
        split = int(np.clip(np.median(all_pitches), 55, 67)) if all_pitches else 60
        return {}, split
    top_voice = max(pitches, key=lambda voice: float(np.mean(pitches[voice])))
    return {voice: voice == top_voice for voice in pitches}, 0


def arrange(midi: mido.MidiFile, arrangement: Arrangement) -> mido.MidiFile:
    """Re-orchestrate ``midi`` into one track: melody, accompaniment, optional bass and drums.

    Every note keeps its tick and pitch; only channels, programs and velocities change.
    Program changes, bank selects, sysex and controllers other than the sustain pedal
    are dropped; the sustain pedal is kept only for parts with decaying programs.
    """
    events = _absolute_events(midi)
    melody_voices, split_pitch = _melody_role(events)
    lowest_onset: dict[int, int] = {}
    for tick, _, msg in events:
        if _is_note_on(msg):
            lowest_onset[tick] = min(lowest_onset.get(tick, 128), msg.note)

    def part_channel(track_index: int, msg: mido.Message) -> int:
        if melody_voices:
            is_melody = melody_voices.get((track_index, msg.channel), False)
        else:
            is_melody = msg.note >= split_pitch
        return MELODY_CHANNEL if is_melody else ACCOMPANIMENT_CHANNEL

    programs = {MELODY_CHANNEL: arrangement.melody_program, ACCOMPANIMENT_CHANNEL: arrangement.accompaniment_program}
    if arrangement.bass_program is not None:
        programs[BASS_CHANNEL] = arrangement.bass_program
    velocity_scales = {
        MELODY_CHANNEL: arrangement.velocity_scale,
        ACCOMPANIMENT_CHANNEL: arrangement.velocity_scale * arrangement.accompaniment_velocity_scale,
        BASS_CHANNEL: arrangement.velocity_scale * 0.8,
    }
    out: list[tuple[int, mido.Message]] = []
    for channel, program in programs.items():
        out.append((0, mido.Message("program_change", channel=channel, program=program)))
        out.append((0, mido.Message("control_change", channel=channel, control=CHANNEL_VOLUME, value=100)))
    # Bass doublings still sounding, by the source note they double: (track, channel, pitch).
    open_bass: dict[tuple[int, int, int], int] = {}
    for tick, track_index, msg in events:
        if msg.is_meta:
            if msg.type in ("set_tempo", "time_signature", "key_signature"):
                out.append((tick, msg))
        elif msg.type in ("note_on", "note_off"):
            channel = part_channel(track_index, msg)
            out.append((tick, _scaled_note(msg, channel, velocity_scales[channel])))
            source = (track_index, msg.channel, msg.note)
            bass_note = msg.note - 12
            doubles_lowest_onset = (
                arrangement.bass_program is not None
                and _is_note_on(msg)
                and channel == ACCOMPANIMENT_CHANNEL
                and msg.note == lowest_onset[tick]
                and bass_note >= 24
            )
            if doubles_lowest_onset:
                open_bass[source] = open_bass.get(source, 0) + 1
                out.append((tick, _scaled_note(msg.copy(note=bass_note), BASS_CHANNEL, velocity_scales[BASS_CHANNEL])))
            elif _is_note_off(msg) and open_bass.get(source, 0) > 0:
                open_bass[source] -= 1
                out.append((tick, mido.Message("note_off", channel=BASS_CHANNEL, note=bass_note)))
        elif msg.type == "control_change" and msg.control == SUSTAIN_PEDAL:
            for channel, program in programs.items():
                if program in DECAYING_PROGRAMS:
                    out.append((tick, msg.copy(channel=channel)))
        elif msg.type == "pitchwheel":
            out.extend((tick, msg.copy(channel=channel)) for channel in (MELODY_CHANNEL, ACCOMPANIMENT_CHANNEL))
    if arrangement.drums:
        out.extend(_drum_layer(events, midi.ticks_per_beat, arrangement.velocity_scale))
    out.sort(key=lambda event: event[0])  # stable: same-tick events keep the source's order
    out.extend(_releases_of_hanging_notes(out, HANGING_NOTE_BEATS * midi.ticks_per_beat))
    out.sort(key=lambda event: event[0])
    return _single_track_midi(out, midi.ticks_per_beat)


def _releases_of_hanging_notes(events: list[tuple[int, mido.Message]], hold_ticks: int) -> list[tuple[int, mido.Message]]:
    """note_offs for the notes that are never released, ``hold_ticks`` after they start.

    Many VGMIDI files leave a few notes without a note_off; a piano decays anyway, but a
    string or organ would drone forever (and FluidSynth would never stop rendering).
    """
    hanging: dict[tuple[int, int], int] = {}
    for tick, msg in events:
        if _is_note_on(msg):
            hanging[(msg.channel, msg.note)] = tick
        elif _is_note_off(msg):
            hanging.pop((msg.channel, msg.note), None)
    return [
        (tick + hold_ticks, mido.Message("note_off", channel=channel, note=note))
        for (channel, note), tick in hanging.items()
    ]


def _scaled_note(msg: mido.Message, channel: int, scale: float) -> mido.Message:
    if not _is_note_on(msg):
        return msg.copy(channel=channel, time=0)
    return msg.copy(channel=channel, velocity=int(np.clip(round(msg.velocity * scale), 1, 127)), time=0)


def _drum_layer(
    events: list[tuple[int, int, mido.Message]], ticks_per_beat: int, velocity_scale: float
) -> list[tuple[int, mido.Message]]:
    """A soft kit on every beat between the first and the last note: hi-hat, kick, side stick."""
    note_ticks = [tick for tick, _, msg in events if msg.type in ("note_on", "note_off")]
    if not note_ticks:
        return []
    first_beat = min(note_ticks) // ticks_per_beat
    last_beat = max(note_ticks) // ticks_per_beat
    length = max(1, ticks_per_beat // 4)
    drums: list[tuple[int, mido.Message]] = [
        (0, mido.Message("control_change", channel=DRUM_CHANNEL, control=CHANNEL_VOLUME, value=80))
    ]
    for beat in range(first_beat, last_beat):
        hits = [(42, 45)]  # closed hi-hat, velocity
        hits.append((36, 55) if beat % 2 == 0 else (37, 40))  # kick on 1 and 3, side stick on 2 and 4
        for note, velocity in hits:
            velocity = int(np.clip(round(velocity * velocity_scale), 1, 127))
            tick = beat * ticks_per_beat
            drums.append((tick, mido.Message("note_on", channel=DRUM_CHANNEL, note=note, velocity=velocity)))
            drums.append((tick + length, mido.Message("note_off", channel=DRUM_CHANNEL, note=note)))
    return drums


def _single_track_midi(events: list[tuple[int, mido.Message]], ticks_per_beat: int) -> mido.MidiFile:
    track = mido.MidiTrack()
    previous = 0
    for tick, msg in events:
        track.append(msg.copy(time=tick - previous))
        previous = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
    midi.tracks.append(track)
    return midi


# ---------------------------------------------------------------------------
# Audio augmentation


def _exponential_reverb(audio: np.ndarray, rt60_seconds: float, wet: float, rng: np.random.Generator) -> np.ndarray:
    n_taps = max(1, int(rt60_seconds * RENDER_SAMPLE_RATE))
    decay = np.exp(-math.log(1000.0) * np.arange(n_taps) / n_taps)  # -60 dB at rt60
    impulse_response = rng.standard_normal(n_taps) * decay
    reverberant = signal.oaconvolve(audio, impulse_response)[: len(audio)]
    dry_rms = _rms(audio)
    wet_rms = _rms(reverberant)
    if wet_rms > 0:
        reverberant *= dry_rms / wet_rms
    return np.asarray((1.0 - wet) * audio + wet * reverberant)


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio)))) if len(audio) else 0.0


def _spectral_tilt(audio: np.ndarray, db_per_octave: float) -> np.ndarray:
    """Gain ``db_per_octave * log2(f / 1 kHz)`` [dB], flat below 50 Hz."""
    n_fft = next_fast_len(len(audio), real=True)
    spectrum = np.fft.rfft(audio, n=n_fft)
    frequencies = np.maximum(np.fft.rfftfreq(n_fft, 1.0 / RENDER_SAMPLE_RATE), 50.0)
    spectrum *= 10.0 ** (db_per_octave * np.log2(frequencies / 1000.0) / 20.0)
    return np.fft.irfft(spectrum, n=n_fft)[: len(audio)]


def _colored_noise(n_samples: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """Noise with power ~ 1 / f**exponent: white 0, pink 1, brown 2."""
    exponent = {"white": 0.0, "pink": 1.0, "brown": 2.0}[color]
    n_fft = next_fast_len(n_samples, real=True)
    spectrum = np.fft.rfft(rng.standard_normal(n_fft))
    frequencies = np.maximum(np.fft.rfftfreq(n_fft, 1.0 / RENDER_SAMPLE_RATE), 20.0)
    spectrum *= frequencies ** (-exponent / 2.0)
    return np.fft.irfft(spectrum, n=n_fft)[:n_samples]


def _peak_normalised(audio: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    return audio * (PEAK_LEVEL / peak) if peak > 0 else audio


def augment_audio(audio: np.ndarray, augmentation: AudioAugmentation, rng: np.random.Generator) -> np.ndarray:
    """Room, playback chain and noise: reverb, tilt and filters, noise at the SNR, then gain.

    ``rng`` draws the reverb's impulse response and the noise. Returns float32 in [-1, 1].
    """
    out = np.asarray(audio, dtype=np.float64)
    if augmentation.reverb_rt60_seconds is not None:
        out = _exponential_reverb(out, augmentation.reverb_rt60_seconds, augmentation.reverb_wet, rng)
    out = _spectral_tilt(out, augmentation.tilt_db_per_octave)
    if augmentation.lowpass_hz is not None:
        out = signal.sosfilt(signal.butter(4, augmentation.lowpass_hz, "lowpass", fs=RENDER_SAMPLE_RATE, output="sos"), out)
    if augmentation.highpass_hz is not None:
        out = signal.sosfilt(signal.butter(2, augmentation.highpass_hz, "highpass", fs=RENDER_SAMPLE_RATE, output="sos"), out)
    out = _peak_normalised(out)
    if augmentation.snr_db is not None:
        noise = _colored_noise(len(out), augmentation.noise_color, rng)
        noise_rms = _rms(noise)
        if noise_rms > 0:
            out = out + noise * (_rms(out) / noise_rms) * 10.0 ** (-augmentation.snr_db / 20.0)
    out = out * 10.0 ** (augmentation.gain_db / 20.0)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------
# Rendering


def find_fluidsynth() -> str:
    """Path of the ``fluidsynth`` program; DatasetError saying how to install it if absent."""
    path = shutil.which("fluidsynth")
    if path is None:
        raise DatasetError(
            "fluidsynth not found on PATH; rendering VGMIDI needs it "
            "(Debian/Ubuntu: apt-get install fluidsynth fluid-soundfont-gm)"
        )
    return path


def _check_soundfont(soundfont: Path) -> None:
    if not soundfont.is_file():
        raise DatasetError(
            f"soundfont {str(soundfont)!r} not found; pass soundfont= or install fluid-soundfont-gm"
        )


def _run_fluidsynth(
    midi_path: Path, wav_path: Path, soundfont: Path, reverb: bool, chorus: bool, midi_seconds: float, *, source: str
) -> np.ndarray:
    """Render with the FluidSynth CLI to 32-bit float stereo WAV; return it as mono float64.

    FluidSynth 2.3 keeps rendering while any voice sounds, so a note that never ends
    would fill the disk: the file is watched and the process killed once it holds more
    than ``midi_seconds + MAX_TAIL_SECONDS`` of audio. Errors name ``source``, the file the
    rendered MIDI was arranged from.
    """
    command = [
        find_fluidsynth(), "-ni", "-q",
        "-g", str(FLUIDSYNTH_GAIN), "-r", str(RENDER_SAMPLE_RATE),
        "-R", "1" if reverb else "0", "-C", "1" if chorus else "0",
        "-O", "float", "-T", "wav", "-F", str(wav_path),
        str(soundfont), str(midi_path),
    ]  # fmt: skip
    max_bytes = 4096 + int((midi_seconds + MAX_TAIL_SECONDS) * RENDER_SAMPLE_RATE) * 2 * 4
    log_path = wav_path.with_suffix(".log")
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        while process.poll() is None:
            if wav_path.is_file() and wav_path.stat().st_size > max_bytes:
                process.kill()
                process.wait()
                raise DatasetError(
                    f"fluidsynth kept rendering {source} past {MAX_TAIL_SECONDS:g} s after its end "
                    "(a note that never stops); killed"
                )
            time.sleep(0.02)
    if process.returncode != 0 or not wav_path.is_file():
        message = log_path.read_text().strip()[-500:]
        raise DatasetError(f"fluidsynth failed on {source} (exit {process.returncode}): {message}")
    try:
        audio, sample_rate = sf.read(str(wav_path), dtype="float64", always_2d=True)
    except sf.LibsndfileError as error:
        raise DatasetError(f"fluidsynth wrote an unreadable file for {source} ({error})") from error
    if sample_rate != RENDER_SAMPLE_RATE:
        raise DatasetError(f"fluidsynth wrote {sample_rate} Hz for {source}; expected {RENDER_SAMPLE_RATE} Hz")
    return np.asarray(audio.mean(axis=1))


def render_midi(midi: mido.MidiFile, *, reverb: bool, chorus: bool, soundfont: Path = DEFAULT_SOUNDFONT, source: str) -> np.ndarray:
    """``midi`` rendered by FluidSynth: mono float64 at ``RENDER_SAMPLE_RATE`` [Hz], with its release tail.

    Errors (``DatasetError``) name ``source``.
    """
    try:
        midi_seconds = float(midi.length)
    except ValueError as error:  # type 2 (asynchronous) files have no single length
        raise DatasetError(f"MIDI file {source}: {error}") from error
    with tempfile.TemporaryDirectory(prefix="rtmer-render-") as scratch:
        midi_path = Path(scratch) / "arranged.mid"
        midi.save(str(midi_path))
        return _run_fluidsynth(midi_path, Path(scratch) / "render.wav", soundfont, reverb, chorus, midi_seconds, source=source)


def render_piece(midi_path: Path, output_path: Path, recipe: RenderRecipe, soundfont: Path = DEFAULT_SOUNDFONT) -> Path:
    """Render one variant of one MIDI file to 16 kHz mono FLAC at ``output_path``.

    The FLAC is written to a temporary name and moved into place, so an interrupted run
    never leaves a partial file that the cache would take for finished.
    """
    try:
        midi = mido.MidiFile(str(midi_path), clip=True)
    except (OSError, ValueError, EOFError) as error:
        raise DatasetError(f"MIDI file {str(midi_path)!r} cannot be read ({error})") from error
    arrangement = recipe.arrangement
    arranged = as_acoustic_grand(midi) if arrangement is None else arrange(midi, arrangement)
    audio = render_midi(
        arranged,
        reverb=True if arrangement is None else arrangement.fluidsynth_reverb,
        chorus=True if arrangement is None else arrangement.fluidsynth_chorus,
        soundfont=soundfont,
        source=f"{midi_path} (variant {output_path.stem})",
    )
    if recipe.audio is None:
        audio = _peak_normalised(audio).astype(np.float32)
    else:
        audio = augment_audio(audio, recipe.audio, np.random.default_rng(recipe.audio.noise_seed))
    output_path.parent.mkdir(parents=True, exist_ok=True)
    partial = output_path.with_name(f".{output_path.stem}.partial.flac")
    sf.write(str(partial), audio, RENDER_SAMPLE_RATE, subtype="PCM_16")
    os.replace(partial, output_path)
    _recipe_path(output_path).write_text(json.dumps(asdict(recipe), indent=1, sort_keys=True))
    return output_path


def _recipe_path(output_path: Path) -> Path:
    return output_path.with_suffix(".json")


def is_cached(output_path: Path, recipe: RenderRecipe) -> bool:
    """True if ``output_path`` exists and was rendered from exactly ``recipe``."""
    recipe_path = _recipe_path(output_path)
    if not output_path.is_file() or not recipe_path.is_file():
        return False
    try:
        return bool(json.loads(recipe_path.read_text()) == json.loads(json.dumps(asdict(recipe), sort_keys=True)))
    except ValueError:
        return False


def _render_job(job: tuple[Path, Path, RenderRecipe, Path]) -> tuple[Path, str | None]:
    midi_path, output_path, recipe, soundfont = job
    try:
        render_piece(midi_path, output_path, recipe, soundfont)
    except DatasetError as error:
        return output_path, str(error)
    return output_path, None


def render_vgmidi(
    pieces: Sequence[VgmidiPiece],
    cache_dir: Path,
    *,
    variants: int,
    seed: int,
    workers: int = 2,
    soundfont: Path = DEFAULT_SOUNDFONT,
) -> list[Recording]:
    """Render ``variants`` versions of each piece (``piano``, ``v1``, ...) into ``cache_dir``.

    ``cache_dir`` is the caller's build folder (e.g. ``build/renders``), never a shared
    data folder. Files already rendered from the same recipe are reused. ``workers``
    renders run at once, each in its own FluidSynth process. A piece whose MIDI cannot be rendered is left out with one
    warning that counts the failures. Returns one Recording per rendered file, labels
    from the piece, ``first_hop=0``.
    """
    if variants < 1:
        raise ValueError(f"variants={variants} must be >= 1 (1 renders the piano variant only)")
    if workers < 1:
        raise ValueError(f"workers={workers} must be >= 1")
    find_fluidsynth()
    _check_soundfont(soundfont)
    cache_dir = Path(cache_dir)
    planned: list[tuple[VgmidiPiece, Path, RenderRecipe]] = []
    for piece in pieces:
        for index in range(variants):
            recipe = draw_recipe(piece.piece_id, index, seed, soundfont)
            planned.append((piece, cache_dir / piece.piece_id / f"{recipe.variant}.flac", recipe))
    jobs = [(piece.midi_path, path, recipe, soundfont) for piece, path, recipe in planned if not is_cached(path, recipe)]
    failures = dict(_run_jobs(jobs, workers))
    failed = {path: reason for path, reason in failures.items() if reason is not None}
    if failed:
        warnings.warn(
            f"{len(failed)} of {len(planned)} renders failed and were left out: "
            + "; ".join(list(failed.values())[:3]),
            stacklevel=2,
        )
    return [
        Recording(piece.piece_id, recipe.variant, path, piece.labels, 0)
        for piece, path, recipe in planned
        if path not in failed
    ]


def _run_jobs(jobs: list[tuple[Path, Path, RenderRecipe, Path]], workers: int) -> list[tuple[Path, str | None]]:
    if workers == 1 or len(jobs) <= 1:
        return [_render_job(job) for job in jobs]
    # Threads, each driving its own FluidSynth process: the synthesis runs outside Python
    # and the numpy/scipy augmentation releases the GIL, so this scales like a process
    # pool without its pitfalls (spawn re-imports __main__ and fails from stdin or an
    # unguarded script; fork copies the caller's torch threads mid-state).
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        return list(pool.map(_render_job, jobs))
