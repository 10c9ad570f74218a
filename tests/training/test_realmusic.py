import csv
import re
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtmer.errors import DatasetError
from training.realmusic import (
    CLUSTER_SIGNS,
    GEMS,
    QUADRANT_SIGNS,
    LabelledClip,
    label_signs,
    load_4q,
    load_emotify,
    load_mirexlike,
    load_musifeast17,
    load_realmusic,
)

REAL_REALMUSIC = Path(__file__).parents[2] / ".." / "shared" / "data" / "realmusic"

MUSIFEAST_HEADER = (
    "clip,genre,familiarity_group,artist,title,vocals,valence_mean,valence_sd,"
    "arousal_mean,arousal_sd,enjoyment_mean,contrast_mean"
).split(",")
FOURQ_HEADER = "clip,quadrant,artist,title,moods,genres".split(",")
MIREX_HEADER = "clip,cluster,category,artist,title".split(",")
EMOTIFY_HEADER = ["clip", "genre", "raters", *GEMS, "liked", "disliked", "listener_mood_mean"]

Loader = Callable[[Path], list[LabelledClip]]


def write_audio(path: Path, seconds: float = 0.05) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * 16000)) / 16000
    if path.suffix == ".opus":
        sf.write(path, 0.3 * np.sin(2 * np.pi * 440.0 * t), 16000, format="OGG", subtype="OPUS")
    else:
        sf.write(path, 0.3 * np.sin(2 * np.pi * 440.0 * t), 16000)
    return path


def write_set(
    root: Path, header: list[str], rows: list[dict[str, str]], *, audio: list[str] | None = None, extension: str = ".wav"
) -> Path:
    """Write ``root/labels.csv`` and a tiny audio file for every clip in ``audio`` (default: all)."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    with (root / "labels.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    for clip in [row["clip"] for row in rows] if audio is None else audio:
        write_audio(root / "audio" / f"{clip}{extension}")
    return root


def musifeast_row(clip: str, **values: str) -> dict[str, str]:
    row = dict(
        clip=clip, genre="Jazz", familiarity_group="High", artist="Some Artist", title="T", vocals="no",
        valence_mean="3", valence_sd="1", arousal_mean="3", arousal_sd="1", enjoyment_mean="3", contrast_mean="3",
    )  # fmt: skip
    return row | values


def fourq_row(clip: str, **values: str) -> dict[str, str]:
    row = dict(clip=clip, quadrant="Q1", artist="Some Artist", title="T", moods="Happy", genres="International; Jazz")
    return row | values


def mirex_row(clip: str, **values: str) -> dict[str, str]:
    row = dict(clip=clip, cluster="3", category="Wistful", artist="Some Artist", title="T")
    return row | values


def emotify_row(clip: str, **values: str) -> dict[str, str]:
    row = dict(clip=clip, genre="rock", raters="20", liked="0.5", disliked="0.1", listener_mood_mean="3.5")
    return row | {name: "0" for name in GEMS} | values


def by_id(clips: list[LabelledClip]) -> dict[str, LabelledClip]:
    return {clip.clip_id: clip for clip in clips}


# ---------------------------------------------------------------------------
# Happy paths


def test_load_musifeast17_maps_means_and_sds_onto_the_signed_scale(tmp_path: Path) -> None:
    rows = [
        musifeast_row("Jazz_HIGH_01", valence_mean="1", arousal_mean="5", valence_sd="0.5", arousal_sd="2"),
        musifeast_row("Metal_LOW_02", genre="Metal", artist="Slayer", valence_mean="3.5", arousal_mean="2"),
    ]
    clips = by_id(load_musifeast17(write_set(tmp_path / "musifeast17", MUSIFEAST_HEADER, rows)))

    first, second = clips["musifeast17-Jazz_HIGH_01"], clips["musifeast17-Metal_LOW_02"]
    assert first.va is not None and first.va.dtype == np.float32 and first.va.shape == (2,)
    np.testing.assert_allclose(first.va, [-1.0, 1.0])
    np.testing.assert_allclose(first.va_sd, [0.25, 1.0])  # type: ignore[arg-type]
    np.testing.assert_allclose(second.va, [0.25, -0.5])  # type: ignore[arg-type]
    assert (first.dataset, first.stratum, first.group) == ("musifeast17", "Jazz", "artist:some artist")
    assert (second.stratum, second.group) == ("Metal", "artist:slayer")
    assert first.audio_path == tmp_path / "musifeast17" / "audio" / "Jazz_HIGH_01.wav"
    assert (first.quadrant, first.gems) == (None, None)


def test_load_4q_reads_quadrants_tolerating_case_and_spaces(tmp_path: Path) -> None:
    rows = [
        fourq_row("MT01", quadrant="Q1"),
        fourq_row("MT02", quadrant="q2 ", artist="Gipsy Kings"),
        fourq_row("MT03", quadrant=" Q3"),
        fourq_row("MT04", quadrant="q4"),
    ]
    clips = load_4q(write_set(tmp_path / "4q", FOURQ_HEADER, rows))

    assert [clip.clip_id for clip in clips] == ["4q-MT01", "4q-MT02", "4q-MT03", "4q-MT04"]
    assert [clip.quadrant for clip in clips] == [1, 2, 3, 4]
    assert [clip.stratum for clip in clips] == ["Q1", "Q2", "Q3", "Q4"]
    assert clips[1].group == "artist:gipsy kings"
    assert all(clip.va is None and clip.va_sd is None and clip.gems is None for clip in clips)
    # Russell: Q2 is unpleasant and energetic, Q4 pleasant and calm.
    assert (QUADRANT_SIGNS[2], QUADRANT_SIGNS[4]) == ((-1, 1), (1, -1))


def test_load_mirexlike_reads_clusters_and_the_signs_they_imply(tmp_path: Path) -> None:
    rows = [mirex_row(f"{k:03d}", cluster=f" {k} ") for k in range(1, 6)]
    clips = load_mirexlike(write_set(tmp_path / "mirexlike", MIREX_HEADER, rows))

    assert [clip.clip_id for clip in clips] == [f"mirexlike-{k:03d}" for k in range(1, 6)]
    assert [clip.cluster for clip in clips] == [1, 2, 3, 4, 5]
    assert [clip.stratum for clip in clips] == ["C1", "C2", "C3", "C4", "C5"]
    assert all(clip.va is None and clip.quadrant is None and clip.gems is None for clip in clips)
    # The set's README: 3 and 5 below 1, 2 and 4 in valence; 3 below 1 and 5 in arousal; no other sign.
    signs = {k: label_signs(None, k).tolist() for k in range(1, 6)}  # type: ignore[union-attr]
    assert signs == {1: [0, 1], 2: [1, 0], 3: [-1, -1], 4: [1, 0], 5: [-1, 1]}
    assert CLUSTER_SIGNS[3] == QUADRANT_SIGNS[3]  # poignant, wistful, brooding: sad
    assert label_signs(2, None).tolist() == [-1, 1] and label_signs(None, None) is None  # type: ignore[union-attr]
    assert label_signs(None, None, np.array([0.25, -0.5])).tolist() == [1, -1]  # type: ignore[union-attr]  # ratings' signs


def test_mirexlike_artists_written_last_name_first_group_with_4q_and_musifeast(tmp_path: Path) -> None:
    write_set(tmp_path / "mirexlike", MIREX_HEADER, [
        mirex_row("1", artist="Jackson, Michael"), mirex_row("2", artist="Stone Roses, The"), mirex_row("3", artist="AC-DC"),
        mirex_row("4", artist="Jett, Joan & The Blackhearts"), mirex_row("5", artist="Oasis"),
    ])  # fmt: skip
    write_set(tmp_path / "4q", FOURQ_HEADER, [fourq_row("a", artist="Michael Jackson"), fourq_row("b", artist="The Stone Roses"), fourq_row("c", artist="AC/DC")])
    groups = {clip.clip_id: clip.group for clip in load_realmusic(tmp_path, sets=("4q", "mirexlike"))}

    assert groups["mirexlike-1"] == groups["4q-a"] == "artist:michael jackson"
    assert groups["mirexlike-2"] == groups["4q-b"] == "artist:stone roses"
    assert groups["mirexlike-3"] == groups["4q-c"] == "artist:acdc"
    assert groups["mirexlike-4"] == "artist:jett joan the blackhearts"  # not turned around: "&" names a band
    assert groups["mirexlike-5"] == "artist:oasis"


def test_load_emotify_keeps_gems_proportions_in_order_and_groups_by_clip(tmp_path: Path) -> None:
    proportions = {name: f"{k / 10:g}" for k, name in enumerate(GEMS)}  # 0, 0.1, .., 0.8
    rows = [emotify_row("001", genre="classical", **proportions), emotify_row("002", power="1", sadness="0")]
    clips = by_id(load_emotify(write_set(tmp_path / "emotify", EMOTIFY_HEADER, rows)))

    first = clips["emotify-001"]
    assert first.gems is not None and first.gems.dtype == np.float32
    np.testing.assert_allclose(first.gems, np.arange(9) / 10, rtol=1e-6)
    assert clips["emotify-002"].gems[GEMS.index("power")] == 1.0  # type: ignore[index]
    assert (first.group, first.stratum) == ("clip:emotify-001", "classical")
    assert clips["emotify-002"].group == "clip:emotify-002"
    assert (first.va, first.va_sd, first.quadrant) == (None, None, None)


def test_artists_differing_in_case_spacing_or_a_leading_the_share_a_group(tmp_path: Path) -> None:
    artists = {"a": "The Beatles", "b": "beatles", "c": "  THE   Beatles ", "d": "Theatre of Tragedy", "e": "", "f": "  "}
    rows = [fourq_row(clip, artist=artist) for clip, artist in artists.items()]
    groups = {clip.clip_id: clip.group for clip in load_4q(write_set(tmp_path, FOURQ_HEADER, rows))}

    assert groups["4q-a"] == groups["4q-b"] == groups["4q-c"] == "artist:beatles"
    assert groups["4q-d"] == "artist:theatre of tragedy"
    assert (groups["4q-e"], groups["4q-f"]) == ("clip:4q-e", "clip:4q-f")


def test_audio_is_looked_for_as_opus_first_then_the_other_extensions(tmp_path: Path) -> None:
    write_set(tmp_path, FOURQ_HEADER, [fourq_row("a"), fourq_row("b")], audio=["a", "b"], extension=".wav")
    write_audio(tmp_path / "audio" / "a.opus")
    paths = {clip.clip_id: clip.audio_path.name for clip in load_4q(tmp_path)}
    assert paths == {"4q-a": "a.opus", "4q-b": "b.wav"}


def test_unreadable_audio_is_left_for_feature_extraction_to_skip(tmp_path: Path) -> None:
    write_set(tmp_path, FOURQ_HEADER, [fourq_row("a")], audio=[])
    (tmp_path / "audio" / "a.opus").write_bytes(b"not audio")
    clips = load_4q(tmp_path)
    assert [clip.audio_path.name for clip in clips] == ["a.opus"]


def test_load_realmusic_reads_the_four_sets_with_ids_unique_across_sets(tmp_path: Path) -> None:
    write_set(tmp_path / "musifeast17", MUSIFEAST_HEADER, [musifeast_row("1"), musifeast_row("2")])
    write_set(tmp_path / "4q", FOURQ_HEADER, [fourq_row("1")])
    write_set(tmp_path / "mirexlike", MIREX_HEADER, [mirex_row("1")])
    write_set(tmp_path / "emotify", EMOTIFY_HEADER, [emotify_row("1"), emotify_row("2"), emotify_row("3")])

    clips = load_realmusic(tmp_path)
    assert Counter(clip.dataset for clip in clips) == {"musifeast17": 2, "4q": 1, "mirexlike": 1, "emotify": 3}
    assert len({clip.clip_id for clip in clips}) == 7
    assert {clip.clip_id for clip in clips if clip.clip_id.endswith("-1")} == {"musifeast17-1", "4q-1", "mirexlike-1", "emotify-1"}

    only = load_realmusic(tmp_path, sets=("emotify", "4q"))
    assert [clip.dataset for clip in only] == ["emotify"] * 3 + ["4q"]


def test_load_realmusic_rejects_unknown_sets_and_a_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown set\(s\) \['deam'\]; expected some of \['musifeast17', '4q', 'mirexlike', 'emotify'\]"):
        load_realmusic(tmp_path, sets=("4q", "deam"))
    with pytest.raises(DatasetError, match=r"realmusic folder '.*nowhere' not found; expected musifeast17/, 4q/, mirexlike/, emotify/"):
        load_realmusic(tmp_path / "nowhere")


# ---------------------------------------------------------------------------
# Missing files and columns

LOADERS: list[tuple[Loader, list[str], dict[str, str]]] = [
    (load_musifeast17, MUSIFEAST_HEADER, musifeast_row("x")),
    (load_4q, FOURQ_HEADER, fourq_row("x")),
    (load_mirexlike, MIREX_HEADER, mirex_row("x")),
    (load_emotify, EMOTIFY_HEADER, emotify_row("x")),
]
LOADER_IDS = ["musifeast17", "4q", "mirexlike", "emotify"]


@pytest.mark.parametrize(("load", "header", "row"), LOADERS, ids=LOADER_IDS)
def test_missing_folder_labels_or_audio_folder_names_the_path_and_what_is_expected(
    tmp_path: Path, load: Loader, header: list[str], row: dict[str, str]
) -> None:
    with pytest.raises(DatasetError, match=r"folder '.*absent' not found; expected labels\.csv and audio/<clip>\.opus"):
        load(tmp_path / "absent")
    (tmp_path / "audio").mkdir()
    with pytest.raises(DatasetError, match=rf"folder '{re.escape(str(tmp_path))}' is incomplete; expected labels\.csv"):
        load(tmp_path)
    write_set(tmp_path / "no_audio", header, [row])
    for file in (tmp_path / "no_audio" / "audio").iterdir():
        file.unlink()
    (tmp_path / "no_audio" / "audio").rmdir()
    with pytest.raises(DatasetError, match=r"no_audio' is incomplete; expected labels\.csv and audio/"):
        load(tmp_path / "no_audio")


@pytest.mark.parametrize(
    ("load", "header", "row", "dropped"),
    [(*loader, dropped) for loader, dropped in zip(LOADERS, ["arousal_mean", "artist", "cluster", "sadness"])],
    ids=LOADER_IDS,
)
def test_header_lacking_a_required_column_names_the_column(
    tmp_path: Path, load: Loader, header: list[str], row: dict[str, str], dropped: str
) -> None:
    reduced = [name for name in header if name != dropped]
    write_set(tmp_path, reduced, [{key: value for key, value in row.items() if key != dropped}])
    with pytest.raises(DatasetError, match=rf"labels\.csv: header .* lacks column\(s\) \['{dropped}'\]; expected"):
        load(tmp_path)


def test_an_empty_labels_file_is_reported_as_lacking_its_columns(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    (tmp_path / "labels.csv").write_text("")
    with pytest.raises(DatasetError, match=r"labels\.csv: header \[\] lacks column\(s\) \['clip', 'quadrant', 'artist'\]"):
        load_4q(tmp_path)


@pytest.mark.parametrize(("load", "header", "row"), LOADERS, ids=LOADER_IDS)
def test_duplicate_clip_ids_are_rejected(tmp_path: Path, load: Loader, header: list[str], row: dict[str, str]) -> None:
    write_set(tmp_path, header, [row, row])
    with pytest.raises(DatasetError, match=r"labels\.csv: clip 'x' appears more than once"):
        load(tmp_path)


# ---------------------------------------------------------------------------
# Bad values


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        ("valence_mean", "0.5", r"is outside \[1, 5\]"),
        ("arousal_mean", "5.01", r"is outside \[1, 5\]"),
        ("valence_mean", "high", r"is not a number; expected one in \[1, 5\]"),
        ("arousal_mean", "", r"is not a number"),
        ("valence_mean", "nan", r"is NaN or infinite"),
        ("arousal_mean", "inf", r"is NaN or infinite"),
        ("valence_sd", "2.5", r"is outside \[0, 2\]"),
        ("arousal_sd", "-0.1", r"is outside \[0, 2\]"),
    ],
)
def test_musifeast17_rejects_a_bad_rating_naming_file_clip_and_value(
    tmp_path: Path, column: str, value: str, problem: str
) -> None:
    write_set(tmp_path, MUSIFEAST_HEADER, [musifeast_row("ok"), musifeast_row("Rock_LOW_03", **{column: value})])
    with pytest.raises(DatasetError, match=rf"labels\.csv: clip 'Rock_LOW_03': {column}='{re.escape(value)}' {problem}"):
        load_musifeast17(tmp_path)


@pytest.mark.parametrize(
    ("value", "problem"),
    [("1.2", r"is outside \[0, 1\]"), ("-0.01", r"is outside \[0, 1\]"), ("n/a", "is not a number"), ("NaN", "is NaN")],
)
def test_emotify_rejects_a_bad_proportion_naming_file_clip_and_value(tmp_path: Path, value: str, problem: str) -> None:
    write_set(tmp_path, EMOTIFY_HEADER, [emotify_row("007", tension=value)])
    with pytest.raises(DatasetError, match=rf"labels\.csv: clip '007': tension='{re.escape(value)}' {problem}"):
        load_emotify(tmp_path)


@pytest.mark.parametrize("value", ["Q5", "", "Q0", "1", "Q 1", "quadrant1"])
def test_4q_rejects_an_unknown_quadrant_naming_file_clip_value_and_what_is_expected(tmp_path: Path, value: str) -> None:
    write_set(tmp_path, FOURQ_HEADER, [fourq_row("MT9", quadrant=value)])
    with pytest.raises(
        DatasetError, match=rf"labels\.csv: clip 'MT9': quadrant='{re.escape(value)}' is not one of Q1, Q2, Q3, Q4"
    ):
        load_4q(tmp_path)


@pytest.mark.parametrize("value", ["6", "0", "", "C3", "3.0", "three", "1 2"])
def test_mirexlike_rejects_an_unknown_cluster_naming_file_clip_value_and_what_is_expected(tmp_path: Path, value: str) -> None:
    write_set(tmp_path, MIREX_HEADER, [mirex_row("ok"), mirex_row("042", cluster=value)])
    with pytest.raises(DatasetError, match=rf"labels\.csv: clip '042': cluster='{re.escape(value)}' is not one of 1, 2, 3, 4, 5"):
        load_mirexlike(tmp_path)


def test_an_empty_clip_id_is_rejected_with_its_line(tmp_path: Path) -> None:
    write_set(tmp_path, FOURQ_HEADER, [fourq_row("a"), fourq_row("")], audio=["a"])
    with pytest.raises(DatasetError, match=r"labels\.csv: line 3 has an empty clip id"):
        load_4q(tmp_path)


# ---------------------------------------------------------------------------
# Missing audio


def test_clips_without_audio_are_skipped_with_one_counted_warning_per_set(tmp_path: Path) -> None:
    write_set(tmp_path / "4q", FOURQ_HEADER, [fourq_row("a"), fourq_row("b"), fourq_row("c")], audio=["a"])
    write_set(tmp_path / "emotify", EMOTIFY_HEADER, [emotify_row("1"), emotify_row("2")], audio=["2"])
    write_set(tmp_path / "musifeast17", MUSIFEAST_HEADER, [musifeast_row("m")])
    write_set(tmp_path / "mirexlike", MIREX_HEADER, [mirex_row("r")])

    with pytest.warns(UserWarning) as record:
        clips = load_realmusic(tmp_path)
    messages = [str(warning.message) for warning in record]
    assert len(messages) == 2
    assert re.search(r"^4q .*skipped 2 clip\(s\) with labels but no audio file: 4q-b, 4q-c$", messages[0])
    assert re.search(r"^emotify .*skipped 1 clip\(s\) with labels but no audio file: emotify-1$", messages[1])
    assert sorted(clip.clip_id for clip in clips) == ["4q-a", "emotify-2", "mirexlike-r", "musifeast17-m"]


def test_missing_audio_warning_lists_only_the_first_few(tmp_path: Path) -> None:
    write_set(tmp_path, FOURQ_HEADER, [fourq_row(f"c{k:02d}") for k in range(12)], audio=[])
    with pytest.warns(UserWarning, match=r"skipped 12 clip\(s\) .*: 4q-c00, .*, 4q-c09, \.\.\.$"):
        assert load_4q(tmp_path) == []


# ---------------------------------------------------------------------------
# The real data


def test_real_realmusic_matches_its_readme() -> None:
    if not all((REAL_REALMUSIC / name / "labels.csv").is_file() for name in ("musifeast17", "4q", "mirexlike", "emotify")):
        pytest.skip(f"realmusic not found at {REAL_REALMUSIC}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clip without audio would warn
        clips = load_realmusic(REAL_REALMUSIC)

    assert Counter(clip.dataset for clip in clips) == {"musifeast17": 271, "4q": 700, "mirexlike": 603, "emotify": 400}
    assert len({clip.clip_id for clip in clips}) == 1974
    assert Counter(clip.cluster for clip in clips if clip.dataset == "mirexlike") == {1: 114, 2: 110, 3: 144, 4: 128, 5: 107}
    assert all(clip.audio_path.is_file() and clip.audio_path.suffix == ".opus" for clip in clips)
    assert Counter(clip.quadrant for clip in clips if clip.dataset == "4q") == {1: 175, 2: 175, 3: 175, 4: 175}
    va = np.stack([clip.va for clip in clips if clip.va is not None])
    assert va.shape == (271, 2)
    assert np.all(np.abs(va) <= 1.0)
    assert len({clip.stratum for clip in clips if clip.dataset == "musifeast17"}) == 17
    assert Counter(clip.stratum for clip in clips if clip.dataset == "emotify") == {
        "classical": 100, "rock": 100, "electronic": 100, "pop": 100,
    }  # fmt: skip
    gems = np.stack([clip.gems for clip in clips if clip.gems is not None])
    assert gems.shape == (400, 9) and gems.min() >= 0.0 and gems.max() <= 1.0
    # Two 4Q clips have no artist; every other 4Q and MUSIFEAST-17 clip is grouped by artist.
    assert sum(clip.group.startswith("clip:") for clip in clips if clip.dataset == "4q") == 2
    assert all(clip.group.startswith("artist:") for clip in clips if clip.dataset == "musifeast17")
