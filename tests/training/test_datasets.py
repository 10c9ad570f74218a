import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtmer.errors import AudioInputError, DatasetError
from training.datasets import (
    Recording,
    align,
    hop_of_label_time,
    load_all,
    load_audio,
    load_deam,
    load_emomusic,
    load_pmemo,
    load_vgmidi,
    measure_labels_to_hops,
)

REAL_VGMIDI = Path(__file__).parents[2] / ".." / "shared" / "data" / "vgmidi"
DEAM_DYNAMIC = "annotations averaged per song/dynamic (per second annotations)"


def write_wav(path: Path, seconds: float, sample_rate: int = 16000, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    sf.write(path, np.stack([tone] * channels, axis=1), sample_rate)
    return path


# ---------------------------------------------------------------------------
# Hop grid


def test_label_time_belongs_to_the_hop_that_ends_at_it() -> None:
    assert hop_of_label_time(0.5, 0.5) == 0
    assert hop_of_label_time(15.0, 0.5) == 29
    assert hop_of_label_time(15.5, 0.5) == 30
    assert hop_of_label_time(1.0, 0.25) == 3


def test_measures_map_to_the_measure_playing_at_the_end_of_each_hop() -> None:
    measure_labels = np.array([[0.1, 0.2], [0.3, 0.4]])
    hops = measure_labels_to_hops(measure_labels, duration=4.3, hop_seconds=0.5)
    # measure length 2.15 s; hop ends 0.5 .. 4.0; the hop ending at 2.0 is still in measure 0
    assert hops.shape == (8, 2)
    assert hops.dtype == np.float32
    np.testing.assert_allclose(hops[:4], [[0.1, 0.2]] * 4)
    np.testing.assert_allclose(hops[4:], [[0.3, 0.4]] * 4)


def test_hop_ending_exactly_on_a_measure_boundary_takes_the_earlier_measure() -> None:
    hops = measure_labels_to_hops(np.array([[0.0, 0.0], [1.0, 1.0]]), duration=2.0, hop_seconds=0.5)
    np.testing.assert_allclose(hops[:, 0], [0.0, 0.0, 1.0, 1.0])


# ---------------------------------------------------------------------------
# VGMIDI


def write_vgmidi(root: Path, rounds: dict[int, dict[str, object]]) -> None:
    (root / "annotations").mkdir(parents=True)
    (root / "midi").mkdir()
    for number, document in rounds.items():
        (root / "annotations" / f"vgmidi_raw_{number}.json").write_text(json.dumps(document))
        for info in document["pieces"].values():  # type: ignore[attr-defined]
            (root / "midi" / info["midi"]).write_bytes(b"")


def vgmidi_round(midi: str, curves: list[tuple[list[float], list[float]]], **extra_annotations: object) -> dict[str, object]:
    annotations = {f"piece0_{k}": {"valence": v, "arousal": a, "age": "21-25"} for k, (v, a) in enumerate(curves)}
    annotations.update(extra_annotations)  # type: ignore[arg-type]
    return {"pieces": {"piece0": {"midi": midi, "duration": 4, "measures": 2, "name": midi}}, "annotations": annotations}


def test_load_vgmidi_averages_annotators_and_keeps_rounds_apart(tmp_path: Path) -> None:
    write_vgmidi(
        tmp_path,
        {
            1: vgmidi_round(
                "a.mid",
                # the second curve is one value too long: truncated to measures
                [([0.0, 0.2], [-0.4, 0.4]), ([0.2, 0.4, 0.9], [-0.2, 0.6, 0.9])],
                piece9_1={"valence": [1.0], "arousal": [1.0]},  # piece9 is not in pieces: skipped
            ),
            2: vgmidi_round("b.mid", [([-1.0, 1.0], [0.5, 0.5])]),
        },
    )
    pieces = load_vgmidi(tmp_path)
    assert [p.piece_id for p in pieces] == ["vgmidi1-piece0", "vgmidi2-piece0"]
    first = pieces[0]
    assert first.midi_path == tmp_path / "midi" / "a.mid"
    assert (first.duration, first.measures, first.n_annotators) == (4.0, 2, 2)
    np.testing.assert_allclose(first.measure_labels, [[0.1, -0.3], [0.3, 0.5]], atol=1e-6)
    assert first.labels.shape == (8, 2)
    np.testing.assert_allclose(first.labels[[0, 3, 4, 7]], [[0.1, -0.3], [0.1, -0.3], [0.3, 0.5], [0.3, 0.5]], atol=1e-6)
    np.testing.assert_allclose(pieces[1].labels[-1], [1.0, 0.5])


def test_load_vgmidi_rejects_nan_naming_file_and_key(tmp_path: Path) -> None:
    write_vgmidi(tmp_path, {1: vgmidi_round("a.mid", [([0.0, float("nan")], [0.0, 0.0])])})
    with pytest.raises(DatasetError, match=r"vgmidi_raw_1\.json: piece0_0 valence has NaN"):
        load_vgmidi(tmp_path)


def test_load_vgmidi_rejects_values_outside_unit_range(tmp_path: Path) -> None:
    write_vgmidi(tmp_path, {1: vgmidi_round("a.mid", [([0.0, 0.0], [0.0, 1.5])])})
    with pytest.raises(DatasetError, match=r"piece0_0 arousal has label value 1\.5 outside \[-1, 1\]"):
        load_vgmidi(tmp_path)


def test_load_vgmidi_missing_folder_names_path_and_expected_content(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"VGMIDI folder '.*nowhere' not found; expected midi/ and annotations/"):
        load_vgmidi(tmp_path / "nowhere")


def test_load_vgmidi_skips_piece_without_midi_file_with_a_counted_warning(tmp_path: Path) -> None:
    write_vgmidi(tmp_path, {1: vgmidi_round("a.mid", [([0.0, 0.0], [0.0, 0.0])])})
    (tmp_path / "midi" / "a.mid").unlink()
    with pytest.warns(UserWarning, match=r"skipped 1 song\(s\) with labels but no audio file: vgmidi1-piece0"):
        assert load_vgmidi(tmp_path) == []


def test_real_vgmidi_matches_its_readme() -> None:
    if not (REAL_VGMIDI / "annotations").is_dir():
        pytest.skip(f"VGMIDI not found at {REAL_VGMIDI}")
    pieces = load_vgmidi(REAL_VGMIDI)
    assert len(pieces) == 200
    assert len({p.piece_id for p in pieces}) == 200
    assert min(p.n_annotators for p in pieces) == 28
    assert max(p.n_annotators for p in pieces) == 32
    assert sum(p.duration for p in pieces) / 3600 == pytest.approx(6.26, abs=0.01)
    # The README says 9-99 measures; this copy actually holds 6-235.
    assert all(6 <= p.measures <= 235 for p in pieces)
    assert all(len(p.labels) == int(p.duration // 0.5) for p in pieces)
    per_measure = np.concatenate([p.measure_labels for p in pieces])
    assert per_measure[:, 1].mean() == pytest.approx(0.075, abs=0.002)
    assert per_measure[:, 0].mean() == pytest.approx(0.168, abs=0.002)
    assert per_measure[:, 1].std() == pytest.approx(0.259, abs=0.002)
    assert all(p.midi_path.is_file() for p in pieces)


# ---------------------------------------------------------------------------
# DEAM and emoMusic


def write_song_csv(path: Path, rows: dict[str, list[str]], first_ms: int = 15000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    width = max(len(values) for values in rows.values())
    header = ["song_id"] + [f"sample_{first_ms + 500 * k}ms" for k in range(width)]
    lines = [",".join(header)]
    lines += [",".join([song_id] + values + [""] * (width - len(values))) for song_id, values in rows.items()]
    path.write_text("\n".join(lines) + "\n")


def write_deam(root: Path, arousal: dict[str, list[str]], valence: dict[str, list[str]], audio_ids: list[str]) -> None:
    write_song_csv(root / DEAM_DYNAMIC / "arousal.csv", arousal)
    write_song_csv(root / DEAM_DYNAMIC / "valence.csv", valence)
    for song_id in audio_ids:
        write_wav(root / "MEMD_audio" / f"{song_id}.wav", 0.1)


def test_load_deam_reads_labels_on_the_hop_grid(tmp_path: Path) -> None:
    write_deam(
        tmp_path,
        arousal={"2": ["0.1", "0.2", "0.3"], "3": ["-0.5", "-0.6"]},
        valence={"2": ["0.4", "0.5", "0.6"], "3": ["0.7", "0.8"]},
        audio_ids=["2", "3"],
    )
    recordings = load_deam(tmp_path)
    assert [r.piece_id for r in recordings] == ["deam-2", "deam-3"]
    song = recordings[0]
    assert song.first_hop == 29  # sample_15000ms ends hop 29
    assert song.variant == ""
    assert song.audio_path == tmp_path / "MEMD_audio" / "2.wav"
    assert song.labels.dtype == np.float32
    np.testing.assert_allclose(song.labels, [[0.4, 0.1], [0.5, 0.2], [0.6, 0.3]], atol=1e-6)
    assert recordings[1].labels.shape == (2, 2)  # empty cells end the row


def test_load_deam_skips_songs_without_audio_with_a_counted_warning(tmp_path: Path) -> None:
    write_deam(tmp_path, {"2": ["0.1"], "5": ["0.1"], "6": ["0.1"]}, {"2": ["0.1"], "5": ["0.1"], "6": ["0.1"]}, ["2"])
    with pytest.warns(UserWarning, match=r"DEAM .*skipped 2 song\(s\) with labels but no audio file: 5, 6"):
        recordings = load_deam(tmp_path)
    assert [r.piece_id for r in recordings] == ["deam-2"]


def test_load_deam_skips_songs_labelled_in_only_one_file(tmp_path: Path) -> None:
    write_deam(tmp_path, {"2": ["0.1"], "8": ["0.1"]}, {"2": ["0.1"]}, ["2", "8"])
    with pytest.warns(UserWarning, match=r"skipped 1 song\(s\) labelled in only one of arousal\.csv and valence\.csv: 8"):
        assert [r.piece_id for r in load_deam(tmp_path)] == ["deam-2"]


def test_load_deam_rejects_nan_naming_file_and_song(tmp_path: Path) -> None:
    write_deam(tmp_path, {"2": ["0.1", "nan"]}, {"2": ["0.1", "0.2"]}, ["2"])
    with pytest.raises(DatasetError, match=r"arousal\.csv: song 2 has NaN or infinite label values"):
        load_deam(tmp_path)


def test_load_deam_rejects_columns_not_one_hop_apart(tmp_path: Path) -> None:
    write_deam(tmp_path, {"2": ["0.1", "0.2"]}, {"2": ["0.1", "0.2"]}, ["2"])
    with pytest.raises(DatasetError, match=r"arousal\.csv: header label times are not spaced one hop \(0\.25 s\) apart"):
        load_deam(tmp_path, hop_seconds=0.25)


def test_load_deam_missing_folder_and_missing_csv(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"DEAM folder '.*absent' not found; expected MEMD_audio/ and annotations"):
        load_deam(tmp_path / "absent")
    (tmp_path / "MEMD_audio").mkdir()
    with pytest.raises(DatasetError, match=r"DEAM folder .* is incomplete; expected .*arousal\.csv"):
        load_deam(tmp_path)


def test_load_emomusic_accepts_its_own_file_names_and_audio_folder(tmp_path: Path) -> None:
    write_song_csv(tmp_path / "annotations" / "arousal_cont_average.csv", {"7": ["0.1", "0.2"]})
    write_song_csv(tmp_path / "annotations" / "valence_cont_average.csv", {"7": ["-0.1", "-0.2"]})
    write_wav(tmp_path / "clips_45seconds" / "7.wav", 0.1)
    [song] = load_emomusic(tmp_path)
    assert (song.piece_id, song.first_hop) == ("emomusic-7", 29)
    np.testing.assert_allclose(song.labels, [[-0.1, 0.1], [-0.2, 0.2]], atol=1e-6)


def test_load_emomusic_audio_folder_is_configurable(tmp_path: Path) -> None:
    write_song_csv(tmp_path / DEAM_DYNAMIC / "arousal.csv", {"7": ["0.1"]})
    write_song_csv(tmp_path / DEAM_DYNAMIC / "valence.csv", {"7": ["0.1"]})
    write_wav(tmp_path / "songs" / "7.wav", 0.1)
    [song] = load_emomusic(tmp_path, audio_folder="songs")
    assert song.audio_path == tmp_path / "songs" / "7.wav"


# ---------------------------------------------------------------------------
# PMEmo


def write_pmemo(root: Path, rows: list[str], audio_ids: list[str]) -> None:
    (root / "annotations").mkdir(parents=True)
    header = "musicId,frameTime,Arousal(mean),Valence(mean)"
    (root / "annotations" / "dynamic_annotations.csv").write_text("\n".join([header, *rows]) + "\n")
    for song_id in audio_ids:
        write_wav(root / "chorus" / f"{song_id}.wav", 0.1)


def test_load_pmemo_maps_unit_values_to_signed_and_time_to_hops(tmp_path: Path) -> None:
    write_pmemo(tmp_path, ["1,16.0,0.5,1.0", "1,15.5,0.75,0.25", "4,15.5,0,0"], ["1", "4"])
    one, four = load_pmemo(tmp_path)
    assert (one.piece_id, one.first_hop) == ("pmemo-1", 30)
    np.testing.assert_allclose(one.labels, [[-0.5, 0.5], [1.0, 0.0]])
    np.testing.assert_allclose(four.labels, [[-1.0, -1.0]])


def test_load_pmemo_rejects_gaps_and_out_of_range_values(tmp_path: Path) -> None:
    write_pmemo(tmp_path / "gap", ["1,15.5,0.5,0.5", "1,16.5,0.5,0.5"], ["1"])
    with pytest.raises(DatasetError, match=r"dynamic_annotations\.csv: musicId 1 label times are not spaced one hop"):
        load_pmemo(tmp_path / "gap")
    write_pmemo(tmp_path / "range", ["1,15.5,1.5,0.5"], ["1"])
    with pytest.raises(DatasetError, match=r"musicId 1 at frameTime 15\.5 has label value 2 outside"):
        load_pmemo(tmp_path / "range")
    write_pmemo(tmp_path / "nan", ["1,15.5,nan,0.5"], ["1"])
    with pytest.raises(DatasetError, match=r"musicId 1 at frameTime 15\.5 has NaN"):
        load_pmemo(tmp_path / "nan")


def test_load_pmemo_missing_folder_and_missing_audio(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"PMEmo folder '.*absent' not found; expected chorus/ and annotations/dynamic"):
        load_pmemo(tmp_path / "absent")
    write_pmemo(tmp_path, ["1,15.5,0.5,0.5", "2,15.5,0.5,0.5"], ["2"])
    with pytest.warns(UserWarning, match=r"PMEmo .*skipped 1 song\(s\).*: 1"):
        assert [r.piece_id for r in load_pmemo(tmp_path)] == ["pmemo-2"]


# ---------------------------------------------------------------------------
# Audio, alignment


def test_load_audio_mixes_to_mono_and_resamples(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "stereo.wav", 0.5, sample_rate=44100, channels=2)
    audio = load_audio(path, 16000)
    assert audio.dtype == np.float32
    assert audio.ndim == 1
    assert abs(len(audio) - 8000) <= 1
    assert np.max(np.abs(audio)) == pytest.approx(0.3, abs=0.02)


def test_load_audio_reads_mp3(tmp_path: Path) -> None:
    path = tmp_path / "song.mp3"
    sf.write(path, 0.3 * np.sin(np.arange(22050) / 22050 * 2 * np.pi * 440), 22050, format="MP3")
    audio = load_audio(path, 16000)
    assert abs(len(audio) - 16000) <= 1200  # mp3 encoder padding
    assert np.max(np.abs(audio)) == pytest.approx(0.3, abs=0.05)


def test_load_audio_corrupt_or_missing_file_names_it(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(b"this is not audio" * 10)
    with pytest.raises(AudioInputError, match=r"corrupt\.mp3.*cannot be read"):
        load_audio(corrupt, 16000)
    with pytest.raises(AudioInputError, match=r"missing\.wav"):
        load_audio(tmp_path / "missing.wav", 16000)


def recording(path: Path, n_labels: int, first_hop: int = 0) -> Recording:
    labels = np.linspace(-1, 1, n_labels * 2, dtype=np.float32).reshape(n_labels, 2)
    return Recording("p", "", path, labels, first_hop)


def test_align_drops_labels_of_hops_that_do_not_end_inside_the_audio(tmp_path: Path) -> None:
    long_labels = recording(tmp_path / "x.wav", n_labels=10, first_hop=2)
    # 3.2 s of audio: hops 0..5 end inside it (hop 5 ends at 3.0 s); labels start at hop 2
    cut = align(long_labels, n_samples=51200, sample_rate=16000, hop_seconds=0.5)
    assert len(cut.labels) == 4
    np.testing.assert_array_equal(cut.labels, long_labels.labels[:4])
    assert cut.first_hop == 2
    # the hop ending exactly at the end of the audio is kept
    assert len(align(long_labels, n_samples=48000, sample_rate=16000).labels) == 4


def test_align_leaves_audio_past_the_last_label_unscored(tmp_path: Path) -> None:
    short_labels = recording(tmp_path / "x.wav", n_labels=3)
    assert align(short_labels, n_samples=16000 * 60, sample_rate=16000) is short_labels


def test_load_all_skips_unreadable_files_and_loads_the_rest(tmp_path: Path) -> None:
    good = write_wav(tmp_path / "good.wav", 2.0)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....garbage")
    short = write_wav(tmp_path / "short.wav", 0.2)
    recordings = [recording(good, 6), recording(bad, 2), recording(short, 2)]
    with pytest.warns(UserWarning, match=r"skipped 2 of 3 recordings: .*bad\.wav"):
        loaded, skipped = load_all(recordings, 16000)
    assert len(loaded) == 1
    aligned, audio = loaded[0]
    assert aligned.audio_path == good
    assert len(audio) == 32000
    assert len(aligned.labels) == 4  # 2 s of audio hold 4 hops
    assert [path for path, _ in skipped] == [bad, short]
    assert "cannot be read" in skipped[0][1]
    assert "before its first labelled hop" in skipped[1][1]
