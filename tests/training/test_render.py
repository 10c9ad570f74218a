import shutil
from dataclasses import replace
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from rtmer.errors import DatasetError
from training import render
from training.datasets import VgmidiPiece
from training.render import (
    DEFAULT_SOUNDFONT,
    Arrangement,
    AudioAugmentation,
    arrange,
    as_acoustic_grand,
    augment_audio,
    draw_recipe,
    render_vgmidi,
)

needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not DEFAULT_SOUNDFONT.is_file(),
    reason="fluidsynth or the FluidR3_GM soundfont is not installed",
)

TICKS_PER_BEAT = 480  # at the default 120 bpm: 960 ticks a second


def tiny_midi(*, hanging_note: bool = False, melody_program: int = 2) -> mido.MidiFile:
    """Two seconds, two tracks: a right-hand melody (program 2) and a left-hand bass."""
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    right = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000)])
    right.append(mido.Message("program_change", channel=0, program=melody_program))
    for note in (72, 74, 76, 77):
        right.append(mido.Message("note_on", channel=0, note=note, velocity=90, time=0))
        right.append(mido.Message("note_on", channel=0, note=note, velocity=0, time=TICKS_PER_BEAT))
    left = mido.MidiTrack([mido.Message("program_change", channel=1, program=melody_program)])
    for note in (48, 43):
        left.append(mido.Message("note_on", channel=1, note=note, velocity=80, time=0))
        left.append(mido.Message("note_off", channel=1, note=note, time=2 * TICKS_PER_BEAT))
    if hanging_note:
        left.append(mido.Message("note_on", channel=1, note=55, velocity=80, time=0))
    midi.tracks.extend([right, left])
    return midi


def tiny_piece(tmp_path: Path, name: str = "p0", **midi_options: bool) -> VgmidiPiece:
    midi_path = tmp_path / "midi" / f"{name}.mid"
    midi_path.parent.mkdir(exist_ok=True)
    tiny_midi(**midi_options).save(str(midi_path))
    labels = np.array([[0.1, 0.2], [0.2, 0.3], [0.3, 0.4], [0.4, 0.5]], dtype=np.float32)
    return VgmidiPiece(f"vgmidi1-{name}", midi_path, 2.0, labels, 2, 30, labels[::2])


def onsets(midi: mido.MidiFile, *, skip_channels: tuple[int, ...] = ()) -> list[tuple[float, int]]:
    times = []
    now = 0.0
    for msg in midi:
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0 and msg.channel not in skip_channels:
            times.append((round(now, 6), msg.note))
    return sorted(times)


ARRANGEMENT = Arrangement(
    ensemble="strings",
    melody_program=40,
    accompaniment_program=48,
    bass_program=43,
    drums=True,
    velocity_scale=0.5,
    accompaniment_velocity_scale=1.0,
    fluidsynth_reverb=False,
    fluidsynth_chorus=False,
)


# ---------------------------------------------------------------------------
# Recipes and MIDI rewriting (no FluidSynth)


def test_recipes_are_deterministic_per_piece_variant_and_seed() -> None:
    assert draw_recipe("vgmidi1-piece3", 1, seed=5) == draw_recipe("vgmidi1-piece3", 1, seed=5)
    others = {draw_recipe("vgmidi1-piece3", 2, seed=5), draw_recipe("vgmidi1-piece4", 1, seed=5), draw_recipe("vgmidi1-piece3", 1, seed=6)}
    assert draw_recipe("vgmidi1-piece3", 1, seed=5) not in others
    piano = draw_recipe("vgmidi1-piece3", 0, seed=5)
    assert (piano.variant, piano.arrangement, piano.audio) == ("piano", None, None)


def test_recipes_span_ensembles_and_augmentation_ranges() -> None:
    recipes = [draw_recipe(f"piece{k}", 1 + k % 3, seed=0) for k in range(200)]
    arrangements = [r.arrangement for r in recipes if r.arrangement is not None]
    audio = [r.audio for r in recipes if r.audio is not None]
    assert len({a.ensemble for a in arrangements}) >= 10
    assert any(a.drums for a in arrangements) and not all(a.drums for a in arrangements)
    assert any(a.bass_program is not None for a in arrangements)
    assert all(-18.0 <= a.gain_db <= 0.0 for a in audio)
    assert all(15.0 <= a.snr_db <= 40.0 for a in audio if a.snr_db is not None)
    assert all(0.2 <= a.reverb_rt60_seconds <= 2.0 for a in audio if a.reverb_rt60_seconds is not None)
    assert {a.noise_color for a in audio} == {"white", "pink", "brown"}


def test_acoustic_grand_sets_every_program_to_zero_and_keeps_the_notes() -> None:
    midi = tiny_midi()
    piano = as_acoustic_grand(midi)
    assert {msg.program for track in piano.tracks for msg in track if msg.type == "program_change"} == {0}
    assert onsets(piano) == onsets(midi)


def test_arrange_keeps_every_note_and_tempo_and_splits_the_parts() -> None:
    midi = tiny_midi()
    arranged = arrange(midi, ARRANGEMENT)
    assert onsets(arranged, skip_channels=(2, 9)) == onsets(midi)
    assert arranged.length == pytest.approx(midi.length, abs=0.01)
    programs = {msg.channel: msg.program for msg in arranged.tracks[0] if msg.type == "program_change"}
    assert programs == {0: 40, 1: 48, 2: 43}
    notes_by_channel: dict[int, set[int]] = {}
    for msg in arranged.tracks[0]:
        if msg.type == "note_on" and msg.velocity > 0:
            notes_by_channel.setdefault(msg.channel, set()).add(msg.note)
    assert notes_by_channel[0] == {72, 74, 76, 77}  # the higher track is the melody
    assert notes_by_channel[1] == {48, 43}
    assert notes_by_channel[2] == {36, 31}  # bass doubles the lowest voice an octave down
    assert {42, 36}.issubset(notes_by_channel[9])  # hi-hat and kick on the beat
    melody_velocities = {msg.velocity for msg in arranged.tracks[0] if msg.type == "note_on" and msg.channel == 0 and msg.velocity}
    assert melody_velocities == {45}  # 90 scaled by 0.5


def test_arrange_splits_a_single_voice_by_pitch() -> None:
    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    track = mido.MidiTrack()
    for note in (40, 50, 70, 80):
        track.append(mido.Message("note_on", note=note, velocity=64))
        track.append(mido.Message("note_off", note=note, time=TICKS_PER_BEAT))
    midi.tracks.append(track)
    arranged = arrange(midi, replace(ARRANGEMENT, drums=False, bass_program=None))
    channel_of = {msg.note: msg.channel for msg in arranged.tracks[0] if msg.type == "note_on"}
    assert channel_of == {40: 1, 50: 1, 70: 0, 80: 0}


def test_arrange_releases_notes_the_midi_never_ends() -> None:
    arranged = arrange(tiny_midi(hanging_note=True), replace(ARRANGEMENT, drums=False))
    sounding: set[tuple[int, int]] = set()
    for msg in arranged.tracks[0]:
        if msg.type == "note_on" and msg.velocity > 0:
            sounding.add((msg.channel, msg.note))
        elif msg.type in ("note_on", "note_off"):
            sounding.discard((msg.channel, msg.note))
    assert sounding == set()


def test_augment_audio_applies_the_snr_and_the_gain() -> None:
    t = np.arange(32000) / 16000
    tone = 0.2 * np.sin(2 * np.pi * 330 * t)
    plain = AudioAugmentation(None, 0.0, 0.0, None, None, "pink", None, -6.0, noise_seed=1)
    quiet = augment_audio(tone, plain, np.random.default_rng(0))
    assert quiet.dtype == np.float32
    assert np.max(np.abs(quiet)) == pytest.approx(0.9 * 10 ** (-6 / 20), rel=1e-3)
    noisy = augment_audio(tone, replace(plain, snr_db=20.0, gain_db=0.0), np.random.default_rng(0))
    clean = tone * 0.9 / np.max(np.abs(tone))
    noise = noisy - clean
    assert 10 * np.log10(np.mean(clean**2) / np.mean(noise**2)) == pytest.approx(20.0, abs=0.1)


def test_augment_audio_reverb_and_lowpass_change_the_sound_but_not_its_length() -> None:
    rng = np.random.default_rng(0)
    clicks = np.zeros(16000)
    clicks[::4000] = 1.0
    room = AudioAugmentation(1.0, 0.5, -2.0, 3000.0, 100.0, "white", None, 0.0, noise_seed=1)
    out = augment_audio(clicks, room, rng)
    assert len(out) == len(clicks)
    # the reverb tail fills the silence between clicks
    assert np.mean(np.abs(out[2000:3900])) > 100 * np.mean(np.abs(clicks[2000:3900])) + 1e-3


# ---------------------------------------------------------------------------
# Rendering (FluidSynth)


@needs_fluidsynth
def test_render_piano_and_augmented_variant(tmp_path: Path) -> None:
    piece = tiny_piece(tmp_path)
    recordings = render_vgmidi([piece], tmp_path / "renders", variants=2, seed=3, workers=1)
    assert [(r.piece_id, r.variant, r.first_hop) for r in recordings] == [("vgmidi1-p0", "piano", 0), ("vgmidi1-p0", "v1", 0)]
    assert recordings[0].audio_path == tmp_path / "renders" / "vgmidi1-p0" / "piano.flac"
    audio = {}
    for recording in recordings:
        np.testing.assert_array_equal(recording.labels, piece.labels)
        info = sf.info(str(recording.audio_path))
        assert (info.samplerate, info.channels, info.format) == (16000, 1, "FLAC")
        assert 2.0 <= info.duration < 2.0 + render.MAX_TAIL_SECONDS
        audio[recording.variant], _ = sf.read(str(recording.audio_path))
        assert np.sqrt(np.mean(audio[recording.variant][:32000] ** 2)) > 1e-3  # not silent
    n = min(len(audio["piano"]), len(audio["v1"]))
    assert not np.allclose(audio["piano"][:n], audio["v1"][:n], atol=1e-2)

    # same seed in a fresh folder: the very same samples
    again = render_vgmidi([piece], tmp_path / "again", variants=2, seed=3, workers=1)
    for first, second in zip(recordings, again):
        np.testing.assert_array_equal(sf.read(str(first.audio_path))[0], sf.read(str(second.audio_path))[0])


@needs_fluidsynth
def test_render_reuses_the_cache_only_for_the_same_recipe(tmp_path: Path) -> None:
    piece = tiny_piece(tmp_path)
    cache = tmp_path / "renders"
    [_, first] = render_vgmidi([piece], cache, variants=2, seed=3, workers=1)
    before = sf.read(str(first.audio_path))[0]
    stamp = first.audio_path.stat().st_mtime_ns
    render_vgmidi([piece], cache, variants=2, seed=3, workers=1)
    assert first.audio_path.stat().st_mtime_ns == stamp
    render_vgmidi([piece], cache, variants=2, seed=4, workers=1)
    after = sf.read(str(first.audio_path))[0]
    assert len(after) != len(before) or not np.array_equal(after, before)


@needs_fluidsynth
def test_parallel_render_skips_unreadable_midi_with_a_counted_warning(tmp_path: Path) -> None:
    good = tiny_piece(tmp_path, "good")
    broken = tiny_piece(tmp_path, "broken")
    broken.midi_path.write_bytes(b"MThd this is not a midi file")
    with pytest.warns(UserWarning, match=r"1 of 2 renders failed and were left out: MIDI file '.*broken\.mid'"):
        recordings = render_vgmidi([good, broken], tmp_path / "renders", variants=1, seed=0, workers=2)
    assert [r.piece_id for r in recordings] == ["vgmidi1-good"]


@needs_fluidsynth
def test_a_note_that_never_stops_does_not_render_forever(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    midi = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(
        mido.MidiTrack([mido.Message("program_change", program=19), mido.Message("note_on", note=60, velocity=90)])
    )  # church organ, never released
    midi_path = tmp_path / "drone.mid"
    midi.save(str(midi_path))
    monkeypatch.setattr(render, "MAX_TAIL_SECONDS", 1.0)
    with pytest.raises(DatasetError, match=r"fluidsynth kept rendering .*drone\.mid past 1 s after its end"):
        render._run_fluidsynth(
            midi_path, tmp_path / "drone.wav", DEFAULT_SOUNDFONT, False, False, midi_seconds=0.0, source=str(midi_path)
        )


def test_missing_fluidsynth_or_soundfont_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    piece = tiny_piece(tmp_path)
    with pytest.raises(DatasetError, match=r"soundfont '.*none\.sf2' not found"):
        render_vgmidi([piece], tmp_path / "renders", variants=1, seed=0, soundfont=tmp_path / "none.sf2")
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    with pytest.raises(DatasetError, match=r"fluidsynth not found on PATH; .*apt-get install fluidsynth"):
        render_vgmidi([piece], tmp_path / "renders", variants=1, seed=0)


def test_render_checks_its_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"variants=0 must be >= 1"):
        render_vgmidi([], tmp_path, variants=0, seed=0)
    with pytest.raises(ValueError, match=r"workers=0 must be >= 1"):
        render_vgmidi([], tmp_path, variants=1, seed=0, workers=0)
