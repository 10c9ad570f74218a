"""Training datasets: time-continuous valence/arousal labels on a hop grid, and their audio.

Every loader returns labels on the same grid as the real-time engine: hop index ``h``
covers audio ``[h * hop, (h + 1) * hop)`` and ends at ``(h + 1) * hop`` [s]. A label
sampled at time ``T`` [s] belongs to the hop that ends at ``T``: ``h = round(T / hop) - 1``.
Labels are float32 arrays ``[n, 2]`` with columns (valence, arousal) in [-1, 1].

Layouts read (``root`` is the folder the user passes):

- VGMIDI: ``midi/*.mid`` and ``annotations/vgmidi_raw_<k>.json`` (see ``load_vgmidi``).
- DEAM: ``MEMD_audio/<song_id>.mp3`` and ``annotations averaged per song/dynamic (per
  second annotations)/{arousal,valence}.csv`` (the archive's ``annotations/`` or
  ``DEAM_Annotations/annotations/`` prefix is accepted too).
- emoMusic: the same CSV layout with audio in ``clips_45seconds/``; the original
  ``annotations/{arousal,valence}_cont_average.csv`` names are accepted too.
- PMEmo: ``chorus/<musicId>.mp3`` and ``annotations/dynamic_annotations.csv``.

Audio files may be mp3, wav, flac or ogg.
"""

from __future__ import annotations

import csv
import json
import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from rtmer.errors import AudioInputError, DatasetError

AUDIO_EXTENSIONS: tuple[str, ...] = (".mp3", ".wav", ".flac", ".ogg")

# Tolerance on label values read from text: [-1, 1] after rounding in the source files.
_RANGE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Recording:
    """One audio file with its labels on the hop grid.

    ``piece_id`` names the musical piece: splits are by piece, so every variant of a
    piece (renders, augmentations) shares it. ``labels[k]`` belongs to hop
    ``first_hop + k``.
    """

    piece_id: str
    variant: str
    audio_path: Path
    labels: np.ndarray
    first_hop: int


@dataclass(frozen=True)
class VgmidiPiece:
    """One annotated VGMIDI piece: annotators averaged, mapped from measures to hops.

    ``duration`` [s] and ``measures`` are the annotation tool's values; ``labels`` has
    ``floor(duration / hop)`` rows, the first one for hop 0; ``measure_labels`` holds
    the annotator means per measure ``[measures, 2]`` they were resampled from.
    """

    piece_id: str
    midi_path: Path
    duration: float
    labels: np.ndarray
    measures: int
    n_annotators: int
    measure_labels: np.ndarray


@dataclass(frozen=True)
class _CsvLayout:
    name: str
    audio_folders: tuple[str, ...]
    arousal_csvs: tuple[str, ...]
    valence_csvs: tuple[str, ...]


_DEAM_DYNAMIC = "annotations averaged per song/dynamic (per second annotations)"

DEAM_LAYOUT = _CsvLayout(
    name="DEAM",
    audio_folders=("MEMD_audio", "DEAM_audio/MEMD_audio", "audio"),
    arousal_csvs=(
        f"{_DEAM_DYNAMIC}/arousal.csv",
        f"annotations/{_DEAM_DYNAMIC}/arousal.csv",
        f"DEAM_Annotations/annotations/{_DEAM_DYNAMIC}/arousal.csv",
    ),
    valence_csvs=(
        f"{_DEAM_DYNAMIC}/valence.csv",
        f"annotations/{_DEAM_DYNAMIC}/valence.csv",
        f"DEAM_Annotations/annotations/{_DEAM_DYNAMIC}/valence.csv",
    ),
)

EMOMUSIC_LAYOUT = _CsvLayout(
    name="emoMusic",
    audio_folders=("clips_45seconds", "MEMD_audio", "audio"),
    arousal_csvs=(f"{_DEAM_DYNAMIC}/arousal.csv", "annotations/arousal_cont_average.csv"),
    valence_csvs=(f"{_DEAM_DYNAMIC}/valence.csv", "annotations/valence_cont_average.csv"),
)


# ---------------------------------------------------------------------------
# Hop grid


def hop_of_label_time(time_seconds: float, hop_seconds: float) -> int:
    """Index of the hop that ends at ``time_seconds`` [s]: ``round(T / hop) - 1``."""
    return round(time_seconds / hop_seconds) - 1


def measure_labels_to_hops(
    measure_labels: np.ndarray, duration: float, hop_seconds: float
) -> np.ndarray:
    """Resample per-measure labels ``[measures, 2]`` onto hops 0 .. floor(duration / hop) - 1.

    A measure lasts ``duration / measures`` [s]. Hop ``h`` ends at ``t = (h + 1) * hop``
    and takes the measure being played just before ``t``.
    """
    n_measures = len(measure_labels)
    n_hops = math.floor(duration / hop_seconds + 1e-9)
    measure_seconds = duration / n_measures
    hop_ends = (np.arange(n_hops) + 1) * hop_seconds
    measure_index = np.floor((hop_ends - 1e-9) / measure_seconds).astype(np.int64)
    measure_index = np.clip(measure_index, 0, n_measures - 1)
    return measure_labels[measure_index].astype(np.float32)


def _check_label_values(values: np.ndarray, source: Path, key: str) -> None:
    if not np.all(np.isfinite(values)):
        raise DatasetError(f"{source}: {key} has NaN or infinite label values")
    worst = float(np.max(np.abs(values))) if values.size else 0.0
    if worst > 1.0 + _RANGE_TOLERANCE:
        raise DatasetError(f"{source}: {key} has label value {worst:g} outside [-1, 1]")


def _require_folder(root: Path, dataset: str, expected: str) -> None:
    if not root.is_dir():
        raise DatasetError(f"{dataset} folder {str(root)!r} not found; expected {expected} inside")


def _warn_missing_audio(dataset: str, root: Path, missing: Sequence[str]) -> None:
    if missing:
        shown = ", ".join(missing[:10]) + (", ..." if len(missing) > 10 else "")
        warnings.warn(
            f"{dataset} {root}: skipped {len(missing)} song(s) with labels but no audio file: {shown}",
            stacklevel=3,
        )


# ---------------------------------------------------------------------------
# VGMIDI


def load_vgmidi(root: Path, *, hop_seconds: float = 0.5) -> list[VgmidiPiece]:
    """Read the labelled VGMIDI pieces under ``root`` (``midi/`` and ``annotations/``).

    Annotator curves are averaged per measure (a curve longer than ``measures`` is
    truncated; keys of pieces missing from ``pieces`` are skipped) and mapped onto hops
    with ``measure_labels_to_hops``. Piece ids restart in each annotation file, so ids
    are ``vgmidi<k>-pieceN`` for ``vgmidi_raw_<k>.json``.

    Raises:
        DatasetError: the folder or its annotation files are missing, or a curve holds
            NaN, infinite or out-of-range values (the message names the file and key).
    """
    root = Path(root)
    expected = "midi/ and annotations/vgmidi_raw_<k>.json"
    _require_folder(root, "VGMIDI", expected)
    annotation_files = sorted((root / "annotations").glob("vgmidi_raw_*.json"))
    if not annotation_files:
        raise DatasetError(f"VGMIDI folder {str(root)!r} has no annotation files; expected {expected} inside")
    pieces: list[VgmidiPiece] = []
    missing: list[str] = []
    for annotation_file in annotation_files:
        for piece in _read_vgmidi_round(root, annotation_file, hop_seconds):
            if piece.midi_path.is_file():
                pieces.append(piece)
            else:
                missing.append(piece.piece_id)
    _warn_missing_audio("VGMIDI", root, missing)
    return pieces


def _vgmidi_round_name(annotation_file: Path) -> str:
    match = re.fullmatch(r"vgmidi_raw_(\d+)", annotation_file.stem)
    return f"vgmidi{match.group(1)}" if match else annotation_file.stem


def _piece_number(piece_key: str) -> int:
    digits = re.sub(r"\D", "", piece_key)
    return int(digits) if digits else -1


def _read_vgmidi_round(root: Path, annotation_file: Path, hop_seconds: float) -> list[VgmidiPiece]:
    try:
        document = json.loads(annotation_file.read_text())
        piece_infos: dict[str, dict[str, object]] = document["pieces"]
        annotations: dict[str, dict[str, object]] = document["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"{annotation_file}: not a VGMIDI annotation file ({error})") from error
    curves_by_piece: dict[str, list[tuple[str, dict[str, object]]]] = {}
    for annotation_key, annotation in annotations.items():
        piece_key = annotation_key.rsplit("_", 1)[0]
        if piece_key in piece_infos:
            curves_by_piece.setdefault(piece_key, []).append((annotation_key, annotation))
    round_name = _vgmidi_round_name(annotation_file)
    pieces = []
    for piece_key in sorted(piece_infos, key=_piece_number):
        curves = curves_by_piece.get(piece_key, [])
        if not curves:
            warnings.warn(f"{annotation_file}: {piece_key} has no annotations; skipped", stacklevel=3)
            continue
        info = piece_infos[piece_key]
        measures = int(info["measures"])  # type: ignore[call-overload]
        duration = float(info["duration"])  # type: ignore[arg-type]
        if measures <= 0 or duration <= 0:
            raise DatasetError(
                f"{annotation_file}: {piece_key} has measures={measures} and duration={duration}; both must be positive"
            )
        measure_labels = np.stack(
            [
                _average_curves(curves, "valence", measures, annotation_file),
                _average_curves(curves, "arousal", measures, annotation_file),
            ],
            axis=1,
        ).astype(np.float32)
        pieces.append(
            VgmidiPiece(
                piece_id=f"{round_name}-{piece_key}",
                midi_path=root / "midi" / str(info["midi"]),
                duration=duration,
                labels=measure_labels_to_hops(measure_labels, duration, hop_seconds),
                measures=measures,
                n_annotators=len(curves),
                measure_labels=measure_labels,
            )
        )
    return pieces


def _average_curves(
    curves: list[tuple[str, dict[str, object]]], dimension: str, measures: int, source: Path
) -> np.ndarray:
    """Mean over annotators of one dimension, per measure; longer curves are truncated."""
    padded = np.full((len(curves), measures), np.nan)
    for row, (annotation_key, annotation) in enumerate(curves):
        try:
            values = np.asarray(annotation[dimension], dtype=np.float64)[:measures]
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetError(f"{source}: {annotation_key} has no numeric {dimension} curve ({error})") from error
        _check_label_values(values, source, f"{annotation_key} {dimension}")
        padded[row, : len(values)] = values
    annotated = ~np.isnan(padded)
    if not annotated.any(axis=0).all():
        first_empty = int(np.argmin(annotated.any(axis=0)))
        raise DatasetError(f"{source}: no annotator rated {dimension} of measure {first_empty} of {curves[0][0]}")
    return np.nanmean(padded, axis=0)


# ---------------------------------------------------------------------------
# DEAM and emoMusic (one row per song, one column per label time)


def load_deam(
    root: Path, *, audio_folder: str | None = None, hop_seconds: float = 0.5
) -> list[Recording]:
    """Read DEAM's per-song dynamic annotations and pair them with the audio files.

    ``audio_folder`` (relative to ``root``) overrides where the audio is looked for.
    Songs whose audio file is missing are skipped with one warning that counts them.
    """
    return _load_csv_dataset(Path(root), DEAM_LAYOUT, audio_folder, hop_seconds)


def load_emomusic(
    root: Path, *, audio_folder: str | None = None, hop_seconds: float = 0.5
) -> list[Recording]:
    """Read emoMusic (1000 songs), which shares DEAM's CSV layout; audio in ``clips_45seconds/``."""
    return _load_csv_dataset(Path(root), EMOMUSIC_LAYOUT, audio_folder, hop_seconds)


def _first_existing(root: Path, candidates: Iterable[str]) -> Path | None:
    for candidate in candidates:
        if (root / candidate).exists():
            return root / candidate
    return None


def _load_csv_dataset(
    root: Path, layout: _CsvLayout, audio_folder: str | None, hop_seconds: float
) -> list[Recording]:
    audio_candidates = (audio_folder,) if audio_folder else layout.audio_folders
    expected = f"{audio_candidates[0]}/ and {layout.arousal_csvs[0]} (and valence.csv)"
    _require_folder(root, layout.name, expected)
    arousal_csv = _first_existing(root, layout.arousal_csvs)
    valence_csv = _first_existing(root, layout.valence_csvs)
    audio_dir = _first_existing(root, audio_candidates)
    if arousal_csv is None or valence_csv is None or audio_dir is None:
        raise DatasetError(f"{layout.name} folder {str(root)!r} is incomplete; expected {expected} inside")
    arousal = _read_song_rows(arousal_csv, hop_seconds)
    valence = _read_song_rows(valence_csv, hop_seconds)
    recordings = []
    missing = []
    unpaired = sorted(set(arousal) ^ set(valence))
    if unpaired:
        warnings.warn(
            f"{layout.name} {root}: skipped {len(unpaired)} song(s) labelled in only one of "
            f"{arousal_csv.name} and {valence_csv.name}: {', '.join(unpaired[:10])}",
            stacklevel=3,
        )
    for song_id, (first_hop, arousal_values) in arousal.items():
        if song_id not in valence:
            continue
        valence_first_hop, valence_values = valence[song_id]
        if valence_first_hop != first_hop:
            raise DatasetError(
                f"{valence_csv}: song {song_id} starts at hop {valence_first_hop}, but at hop {first_hop} in {arousal_csv}"
            )
        audio_path = _find_audio(audio_dir, song_id)
        if audio_path is None:
            missing.append(song_id)
            continue
        n = min(len(arousal_values), len(valence_values))
        labels = np.stack([valence_values[:n], arousal_values[:n]], axis=1).astype(np.float32)
        recordings.append(Recording(f"{layout.name.lower()}-{song_id}", "", audio_path, labels, first_hop))
    _warn_missing_audio(layout.name, root, missing)
    return recordings


def _find_audio(audio_dir: Path, song_id: str) -> Path | None:
    for extension in AUDIO_EXTENSIONS:
        path = audio_dir / f"{song_id}{extension}"
        if path.is_file():
            return path
    return None


def _read_song_rows(path: Path, hop_seconds: float) -> dict[str, tuple[int, np.ndarray]]:
    """``song_id -> (first_hop, values)`` from a ``song_id,sample_15000ms,...`` CSV.

    A row ends at its first empty cell (songs have different lengths).
    """
    with path.open(newline="") as file:
        rows = [row for row in csv.reader(file) if row]
    if not rows:
        raise DatasetError(f"{path}: empty file; expected a header song_id,sample_15000ms,...")
    hops = _hops_of_sample_columns(path, rows[0][1:], hop_seconds)
    songs = {}
    for row in rows[1:]:
        song_id = _normalise_song_id(row[0])
        cells = [cell.strip() for cell in row[1 : 1 + len(hops)]]
        if "" in cells:
            cells = cells[: cells.index("")]
        try:
            values = np.array([float(cell) for cell in cells], dtype=np.float64)
        except ValueError as error:
            raise DatasetError(f"{path}: song {song_id}: {error}") from error
        _check_label_values(values, path, f"song {song_id}")
        if len(values):
            songs[song_id] = (hops[0], values)
    return songs


def _hops_of_sample_columns(path: Path, columns: Sequence[str], hop_seconds: float) -> list[int]:
    hops = []
    for column in columns:
        if not column.strip():
            continue
        match = re.fullmatch(r"sample_(\d+(?:\.\d+)?)ms", column.strip())
        if match is None:
            raise DatasetError(f"{path}: column {column!r} is not of the form sample_<time>ms")
        hops.append(hop_of_label_time(float(match.group(1)) / 1000.0, hop_seconds))
    _check_consecutive(path, "header", hops, hop_seconds)
    return hops


def _check_consecutive(path: Path, what: str, hops: Sequence[int], hop_seconds: float) -> None:
    if not hops:
        raise DatasetError(f"{path}: {what} has no label times")
    if any(later - earlier != 1 for earlier, later in zip(hops, hops[1:])):
        raise DatasetError(
            f"{path}: {what} label times are not spaced one hop ({hop_seconds} s) apart"
        )


def _normalise_song_id(cell: str) -> str:
    song_id = cell.strip()
    # Spreadsheet exports sometimes write integer ids as "12.0".
    return song_id[:-2] if re.fullmatch(r"\d+\.0", song_id) else song_id


# ---------------------------------------------------------------------------
# PMEmo (one row per song and label time)


def load_pmemo(root: Path, *, hop_seconds: float = 0.5) -> list[Recording]:
    """Read PMEmo's dynamic annotations (``frameTime`` [s], values in [0, 1] mapped by 2x - 1)."""
    root = Path(root)
    expected = "chorus/ and annotations/dynamic_annotations.csv"
    _require_folder(root, "PMEmo", expected)
    annotations_csv = root / "annotations" / "dynamic_annotations.csv"
    audio_dir = root / "chorus"
    if not annotations_csv.is_file() or not audio_dir.is_dir():
        raise DatasetError(f"PMEmo folder {str(root)!r} is incomplete; expected {expected} inside")
    samples = _read_pmemo_samples(annotations_csv, hop_seconds)
    recordings = []
    missing = []
    for song_id, rows in samples.items():
        rows.sort()
        hops = [hop for hop, _, _ in rows]
        _check_consecutive(annotations_csv, f"musicId {song_id}", hops, hop_seconds)
        audio_path = _find_audio(audio_dir, song_id)
        if audio_path is None:
            missing.append(song_id)
            continue
        labels = np.array([[valence, arousal] for _, valence, arousal in rows], dtype=np.float32)
        recordings.append(Recording(f"pmemo-{song_id}", "", audio_path, labels, hops[0]))
    _warn_missing_audio("PMEmo", root, missing)
    return recordings


def _read_pmemo_samples(path: Path, hop_seconds: float) -> dict[str, list[tuple[int, float, float]]]:
    columns = ("musicId", "frameTime", "Arousal(mean)", "Valence(mean)")
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        header = [name.strip() for name in reader.fieldnames or []]
        if not set(columns) <= set(header):
            raise DatasetError(f"{path}: header {header} lacks one of {list(columns)}")
        samples: dict[str, list[tuple[int, float, float]]] = {}
        for row in reader:
            row = {key.strip(): value for key, value in row.items() if key is not None}
            song_id = _normalise_song_id(row["musicId"])
            try:
                time, arousal, valence = (float(row[name]) for name in columns[1:])
            except (TypeError, ValueError) as error:
                raise DatasetError(f"{path}: musicId {song_id}: {error}") from error
            key = f"musicId {song_id} at frameTime {time:g}"
            raw = np.array([arousal, valence])
            _check_label_values(raw * 2.0 - 1.0, path, key)
            hop = hop_of_label_time(time, hop_seconds)
            samples.setdefault(song_id, []).append((hop, 2.0 * valence - 1.0, 2.0 * arousal - 1.0))
    return samples


# ---------------------------------------------------------------------------
# Audio


def load_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Read an audio file as float32 mono at ``sample_rate`` [Hz] (channels averaged).

    Raises:
        AudioInputError: the file is missing, unreadable, empty or holds non-finite samples.
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate={sample_rate} must be a positive integer")
    try:
        samples, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioInputError(str(path), f"cannot be read ({error})") from error
    if samples.shape[0] == 0:
        raise AudioInputError(str(path), "holds no samples")
    mono = samples.mean(axis=1, dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        raise AudioInputError(str(path), "holds NaN or infinite samples")
    if file_rate != sample_rate:
        mono = soxr.resample(mono, file_rate, sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def align(recording: Recording, n_samples: int, sample_rate: int, hop_seconds: float = 0.5) -> Recording:
    """Cut the labels to the audio: the truncation rule.

    A label is kept only if its hop ends inside the audio, i.e. ``(h + 1) * hop`` [s]
    ``<= n_samples / sample_rate``. So when the audio is shorter than the labels, the
    labels past its end are dropped; when the labels are shorter than the audio, the
    audio past the last labelled hop is simply not scored (nothing is padded). The
    result may hold zero labels (audio ending before ``first_hop`` ends).
    """
    audio_hops = math.floor(n_samples / (hop_seconds * sample_rate) + 1e-9)
    keep = max(0, min(len(recording.labels), audio_hops - recording.first_hop))
    if keep == len(recording.labels):
        return recording
    return replace(recording, labels=recording.labels[:keep])


def load_all(
    recordings: Sequence[Recording], sample_rate: int, *, hop_seconds: float = 0.5
) -> tuple[list[tuple[Recording, np.ndarray]], list[tuple[Path, str]]]:
    """Load every recording's audio and ``align`` its labels to it.

    A file that cannot be read, or too short to hold one labelled hop, is skipped
    with a warning and listed in the second return value as ``(path, reason)``; the
    others are still loaded.
    """
    loaded: list[tuple[Recording, np.ndarray]] = []
    skipped: list[tuple[Path, str]] = []
    for recording in recordings:
        try:
            audio = load_audio(recording.audio_path, sample_rate)
        except AudioInputError as error:
            skipped.append((recording.audio_path, error.reason))
            continue
        aligned = align(recording, len(audio), sample_rate, hop_seconds)
        if len(aligned.labels) == 0:
            skipped.append((recording.audio_path, f"audio ends before its first labelled hop {recording.first_hop}"))
            continue
        loaded.append((aligned, audio))
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} of {len(recordings)} recordings: "
            + "; ".join(f"{path}: {reason}" for path, reason in skipped[:5]),
            stacklevel=2,
        )
    return loaded, skipped
