"""Real recordings with one emotion label per clip: MUSIFEAST-17, 4Q, MIREX-like and Emotify.

Each set is a folder ``<set>/`` holding ``labels.csv`` (one row per clip) and
``audio/<clip>.opus`` (16 kHz mono Ogg Opus; ``.mp3``, ``.wav``, ``.flac`` and ``.ogg`` are
accepted too). ``load_realmusic`` takes the folder that holds the three sets.

The labels hold for the whole clip, not for each hop: they tell the level of valence and
arousal across styles, not how it moves within a piece.

Label mapping onto rtmer's valence and arousal in [-1, 1]:

- MUSIFEAST-17 (perceived emotion): the published per-clip means of valence and arousal
  ratings on a 1..5 scale are mapped linearly by ``(x - 3) / 2``, so 1 -> -1, 3 -> 0 and
  5 -> +1. The raters' standard deviations are put on the same scale by ``sd / 2``.
- 4Q (perceived emotion, AllMusic experts' mood tags): a Russell quadrant fixes only the
  signs of valence and arousal (Q1 +v +a, Q2 -v +a, Q3 -v -a, Q4 +v -a; see
  ``QUADRANT_SIGNS``). A quadrant is not a magnitude, so no valence/arousal value is
  made up for it: the quadrant is kept as it is.
- MIREX-like (perceived emotion, AllMusic editors' mood words): one of the five MIREX mood
  clusters per clip. A cluster is a category, not a point on the circumplex; where its
  words imply a sign, that sign is kept (``CLUSTER_SIGNS``), and the other dimension is left
  unlabelled: cluster 1 (passionate, rousing, boisterous) +arousal; 2 (cheerful, fun, sweet)
  +valence; 3 (poignant, wistful, brooding) -valence -arousal; 4 (humorous, quirky, witty)
  +valence; 5 (aggressive, fiery, tense) -valence +arousal. The set's README orders them so:
  3 and 5 below 1, 2 and 4 in valence; 3 below 1 and 5 in arousal.
- Emotify (induced emotion: what listeners felt, which is not what the music expresses):
  the proportions of listeners who chose each of the nine GEMS categories, each in
  [0, 1], are kept as an auxiliary target in ``GEMS`` order. No valence/arousal mapping is
  made.

Cross-validation: ``LabelledClip.group`` is ``"artist:<normalised artist>"`` where the set
has an artist column (MUSIFEAST-17, 4Q and MIREX-like; case, punctuation, surrounding and
repeated whitespace and a leading "the " are ignored, and MIREX-like's "Jackson, Michael"
reads as 4Q's "Michael Jackson"), else ``"clip:<clip_id>"``, so no artist is on both sides
of a split, across sets too. ``LabelledClip.stratum`` is the genre (MUSIFEAST-17, Emotify),
the quadrant ``"Q1"``..``"Q4"`` (4Q) or the cluster ``"C1"``..``"C5"`` (MIREX-like).

A labelled clip whose audio file is missing is skipped, with one warning per set that
counts them. Audio files are not opened here, so an unreadable file is not detected:
decoding happens later, in ``training.features.load_clips``, which skips and counts
unreadable files.
"""

from __future__ import annotations

import csv
import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rtmer.errors import DatasetError
from training.datasets import AUDIO_EXTENSIONS

GEMS: tuple[str, ...] = (
    "amazement",
    "solemnity",
    "tenderness",
    "nostalgia",
    "calmness",
    "power",
    "joyful_activation",
    "tension",
    "sadness",
)

# (valence sign, arousal sign) of each Russell quadrant.
QUADRANT_SIGNS: dict[int, tuple[int, int]] = {1: (1, 1), 2: (-1, 1), 3: (-1, -1), 4: (1, -1)}

# (valence sign, arousal sign) each MIREX mood cluster implies; 0: no sign implied.
CLUSTER_SIGNS: dict[int, tuple[int, int]] = {1: (0, 1), 2: (1, 0), 3: (-1, -1), 4: (1, 0), 5: (-1, 1)}

SETS: tuple[str, ...] = ("musifeast17", "4q", "mirexlike", "emotify")

_MUSIFEAST_COLUMNS = ("clip", "genre", "artist", "valence_mean", "valence_sd", "arousal_mean", "arousal_sd")
_4Q_COLUMNS = ("clip", "quadrant", "artist")
_MIREX_COLUMNS = ("clip", "cluster", "artist")
_EMOTIFY_COLUMNS = ("clip", "genre", *GEMS)

# Ratings are on 1..5, so a rater standard deviation cannot exceed half the range.
_RATING_RANGE = (1.0, 5.0)
_RATING_SD_RANGE = (0.0, 2.0)
_PROPORTION_RANGE = (0.0, 1.0)


@dataclass(frozen=True)
class LabelledClip:
    """One clip with its clip-level labels; the fields a set does not have are ``None``.

    ``va`` and ``va_sd`` are float32 ``[2]`` (valence, arousal) on the [-1, 1] scale;
    ``gems`` is float32 ``[9]`` in ``GEMS`` order; ``quadrant`` is 1..4; ``cluster`` (MIREX) 1..5.
    """

    clip_id: str
    dataset: str
    audio_path: Path
    group: str
    stratum: str
    va: np.ndarray | None
    va_sd: np.ndarray | None
    quadrant: int | None
    gems: np.ndarray | None
    cluster: int | None = None


def label_signs(quadrant: int | None, cluster: int | None, va: np.ndarray | None = None) -> np.ndarray | None:
    """(valence, arousal) signs in {-1, 0, +1} that ratings ``va``, a quadrant or a MIREX cluster fix (0: none); None if none is given."""
    if va is not None:
        return np.sign(va).astype(np.float32)
    if quadrant is not None:
        return np.array(QUADRANT_SIGNS[quadrant], np.float32)
    if cluster is not None:
        return np.array(CLUSTER_SIGNS[cluster], np.float32)
    return None


_Row = dict[str, str]


def load_musifeast17(root: Path) -> list[LabelledClip]:
    """Read MUSIFEAST-17 (``labels.csv`` and ``audio/``): valence/arousal means and SDs.

    Raises:
        DatasetError: the folder, ``labels.csv`` or a column is missing, a clip id is
            repeated, or a rating mean is not a finite number in 1..5 (an SD in 0..2).
    """

    def make(path: Path, clip: str, row: _Row) -> LabelledClip:
        valence = _number(path, clip, row, "valence_mean", _RATING_RANGE)
        arousal = _number(path, clip, row, "arousal_mean", _RATING_RANGE)
        valence_sd = _number(path, clip, row, "valence_sd", _RATING_SD_RANGE)
        arousal_sd = _number(path, clip, row, "arousal_sd", _RATING_SD_RANGE)
        clip_id = f"musifeast17-{clip}"
        return LabelledClip(
            clip_id=clip_id,
            dataset="musifeast17",
            audio_path=Path(),
            group=_artist_group(row["artist"], clip_id),
            stratum=row["genre"],
            va=np.array([(valence - 3.0) / 2.0, (arousal - 3.0) / 2.0], dtype=np.float32),
            va_sd=np.array([valence_sd / 2.0, arousal_sd / 2.0], dtype=np.float32),
            quadrant=None,
            gems=None,
        )

    return _load_set(Path(root), "musifeast17", _MUSIFEAST_COLUMNS, make)


def load_4q(root: Path) -> list[LabelledClip]:
    """Read the 4Q audio emotion dataset (``labels.csv`` and ``audio/``): one quadrant per clip.

    Raises:
        DatasetError: the folder, ``labels.csv`` or a column is missing, a clip id is
            repeated, or a quadrant is not Q1..Q4 (case and surrounding spaces ignored).
    """

    def make(path: Path, clip: str, row: _Row) -> LabelledClip:
        quadrant = _quadrant(path, clip, row["quadrant"])
        clip_id = f"4q-{clip}"
        return LabelledClip(
            clip_id=clip_id,
            dataset="4q",
            audio_path=Path(),
            group=_artist_group(row["artist"], clip_id),
            stratum=f"Q{quadrant}",
            va=None,
            va_sd=None,
            quadrant=quadrant,
            gems=None,
        )

    return _load_set(Path(root), "4q", _4Q_COLUMNS, make)


def load_mirexlike(root: Path) -> list[LabelledClip]:
    """Read the MIREX-like mood dataset (``labels.csv`` and ``audio/``): one MIREX cluster per clip.

    Raises:
        DatasetError: the folder, ``labels.csv`` or a column is missing, a clip id is
            repeated, or a cluster is not a whole number 1..5.
    """

    def make(path: Path, clip: str, row: _Row) -> LabelledClip:
        cluster = _cluster(path, clip, row["cluster"])
        clip_id = f"mirexlike-{clip}"
        return LabelledClip(
            clip_id=clip_id,
            dataset="mirexlike",
            audio_path=Path(),
            group=_artist_group(_first_name_first(row["artist"]), clip_id),
            stratum=f"C{cluster}",
            va=None,
            va_sd=None,
            quadrant=None,
            gems=None,
            cluster=cluster,
        )

    return _load_set(Path(root), "mirexlike", _MIREX_COLUMNS, make)


def load_emotify(root: Path) -> list[LabelledClip]:
    """Read Emotify (``labels.csv`` and ``audio/``): the nine GEMS proportions per clip.

    Emotify has no artist column, so every clip is its own group.

    Raises:
        DatasetError: the folder, ``labels.csv`` or a column is missing, a clip id is
            repeated, or a proportion is not a finite number in [0, 1].
    """

    def make(path: Path, clip: str, row: _Row) -> LabelledClip:
        gems = [_number(path, clip, row, name, _PROPORTION_RANGE) for name in GEMS]
        clip_id = f"emotify-{clip}"
        return LabelledClip(
            clip_id=clip_id,
            dataset="emotify",
            audio_path=Path(),
            group=f"clip:{clip_id}",
            stratum=row["genre"],
            va=None,
            va_sd=None,
            quadrant=None,
            gems=np.array(gems, dtype=np.float32),
        )

    return _load_set(Path(root), "emotify", _EMOTIFY_COLUMNS, make)


_LOADERS: dict[str, Callable[[Path], list[LabelledClip]]] = {
    "musifeast17": load_musifeast17,
    "4q": load_4q,
    "mirexlike": load_mirexlike,
    "emotify": load_emotify,
}


def load_realmusic(root: Path, sets: Sequence[str] = SETS) -> list[LabelledClip]:
    """Read the named sets from ``root/<set>/``, in the order given.

    Raises:
        ValueError: ``sets`` names a set other than musifeast17, 4q, mirexlike and emotify.
        DatasetError: ``root`` or one of the sets is missing or malformed.
    """
    root = Path(root)
    unknown = [name for name in sets if name not in _LOADERS]
    if unknown:
        raise ValueError(f"sets={list(sets)} names unknown set(s) {unknown}; expected some of {list(SETS)}")
    if not root.is_dir():
        raise DatasetError(f"realmusic folder {str(root)!r} not found; expected {', '.join(f'{s}/' for s in sets)} inside")
    clips: list[LabelledClip] = []
    for name in sets:
        clips.extend(_LOADERS[name](root / name))
    return clips


# ---------------------------------------------------------------------------
# Shared reading


def _load_set(
    root: Path,
    dataset: str,
    columns: Sequence[str],
    make: Callable[[Path, str, _Row], LabelledClip],
) -> list[LabelledClip]:
    """Read ``root/labels.csv`` row by row with ``make`` and pair each clip with its audio."""
    expected = f"labels.csv and audio/<clip>.opus; labels.csv with columns {','.join(columns)}"
    labels_csv = root / "labels.csv"
    audio_dir = root / "audio"
    if not root.is_dir():
        raise DatasetError(f"{dataset} folder {str(root)!r} not found; expected {expected} inside")
    if not labels_csv.is_file() or not audio_dir.is_dir():
        raise DatasetError(f"{dataset} folder {str(root)!r} is incomplete; expected {expected} inside")
    clips: list[LabelledClip] = []
    missing: list[str] = []
    for clip, row in _read_rows(labels_csv, columns):
        labelled = make(labels_csv, clip, row)
        audio_path = _find_audio(audio_dir, clip)
        if audio_path is None:
            missing.append(labelled.clip_id)
            continue
        clips.append(replace(labelled, audio_path=audio_path))
    _warn_missing_audio(dataset, root, missing)
    return clips


def _warn_missing_audio(dataset: str, root: Path, missing: Sequence[str]) -> None:
    if missing:
        shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
        warnings.warn(
            f"{dataset} {root}: skipped {len(missing)} clip(s) with labels but no audio file: {shown}",
            stacklevel=4,  # the caller of load_<set>
        )


def _read_rows(path: Path, columns: Sequence[str]) -> list[tuple[str, _Row]]:
    """``(clip, row)`` per data row, cells stripped; a missing cell reads as ""."""
    # utf-8-sig: spreadsheet exports often start with a byte-order mark.
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        header = [name.strip() for name in reader.fieldnames or []]
        lacking = [column for column in columns if column not in header]
        if lacking:
            raise DatasetError(f"{path}: header {header} lacks column(s) {lacking}; expected {list(columns)}")
        rows: list[tuple[str, _Row]] = []
        seen: set[str] = set()
        for line_row in reader:
            row = {key.strip(): (value or "").strip() for key, value in line_row.items() if isinstance(key, str)}
            clip = row["clip"]
            if not clip:
                raise DatasetError(f"{path}: line {reader.line_num} has an empty clip id")
            if clip in seen:
                raise DatasetError(f"{path}: clip {clip!r} appears more than once; clip ids must be unique")
            seen.add(clip)
            rows.append((clip, row))
    return rows


def _find_audio(audio_dir: Path, clip: str) -> Path | None:
    for extension in (".opus", *AUDIO_EXTENSIONS):
        path = audio_dir / f"{clip}{extension}"
        if path.is_file():
            return path
    return None


def _number(path: Path, clip: str, row: _Row, column: str, allowed: tuple[float, float]) -> float:
    """The value of ``row[column]``, checked to be a finite number within ``allowed``."""
    cell = row[column]
    low, high = allowed
    where = f"{path}: clip {clip!r}: {column}={cell!r}"
    try:
        value = float(cell)
    except ValueError:
        raise DatasetError(f"{where} is not a number; expected one in [{low:g}, {high:g}]") from None
    if not math.isfinite(value):
        raise DatasetError(f"{where} is NaN or infinite; expected a number in [{low:g}, {high:g}]")
    if not low <= value <= high:
        raise DatasetError(f"{where} is outside [{low:g}, {high:g}]")
    return value


def _quadrant(path: Path, clip: str, cell: str) -> int:
    match = re.fullmatch(r"q([1-4])", cell.strip().casefold())
    if match is None:
        raise DatasetError(f"{path}: clip {clip!r}: quadrant={cell!r} is not one of Q1, Q2, Q3, Q4")
    return int(match.group(1))


def _cluster(path: Path, clip: str, cell: str) -> int:
    if not re.fullmatch(r"[1-5]", cell.strip()):
        raise DatasetError(f"{path}: clip {clip!r}: cluster={cell!r} is not one of 1, 2, 3, 4, 5")
    return int(cell)


def _first_name_first(artist: str) -> str:
    """AllMusic's "Jackson, Michael" and "Stone Roses, The" as "Michael Jackson" and "The Stone Roses"."""
    parts = [part.strip() for part in artist.split(",")]
    if len(parts) != 2 or not all(parts) or any(mark in parts[1] for mark in "&/"):
        return artist
    return f"{parts[1]} {parts[0]}"


def _artist_group(artist: str, clip_id: str) -> str:
    normalised = _normalise_artist(artist)
    return f"artist:{normalised}" if normalised else f"clip:{clip_id}"


def _normalise_artist(artist: str) -> str:
    """Casefolded, punctuation gone, whitespace collapsed, without a leading "the ": "The  Beatles" -> "beatles", "AC/DC" -> "acdc"."""
    letters = "".join(c for c in artist.casefold() if c.isalnum() or c.isspace())
    return " ".join(letters.split()).removeprefix("the ")
