"""Front-end features for every recording, cached on disk next to the renders.

The front end has no trainable parameters, so training on cached features is exactly
training on audio through the graph's front end.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from training.datasets import Recording, align, load_audio
from training.frontend import FRAMES_PER_HOP, HOP_SAMPLES, SAMPLE_RATE, FrontEnd, clip_features
from rtmer.errors import AudioInputError


@dataclass(frozen=True)
class Clip:
    """One recording as the trainer sees it: features from the stream's start, labels per hop."""

    piece_id: str
    variant: str
    features: np.ndarray  # float16 [n_hops * 8, 81]
    labels: np.ndarray  # float32 [n, 2] (valence, arousal)
    first_hop: int

    @property
    def n_hops(self) -> int:
        return len(self.features) // FRAMES_PER_HOP


FEATURES_VERSION = "3"  # bump when the front end changes, so stale caches are not read


def cache_path(cache_dir: Path, audio_path: Path, version: str) -> Path:
    key = hashlib.sha1(f"{version}:{audio_path.resolve()}".encode()).hexdigest()[:16]
    return cache_dir / f"{key}.npy"


def file_digest(path: Path) -> str:
    """SHA-1 of a file's bytes.

    Raises:
        AudioInputError: the file cannot be read.
    """
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha1").hexdigest()
    except OSError as error:
        raise AudioInputError(str(path), f"cannot be read ({error.strerror or error})") from error


def cached_array(audio_path: Path, cache_dir: Path, version: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()`` for one audio file, cached in ``cache_dir`` until the file's content changes.

    The cache is checked against the audio's SHA-1 (kept beside it), not its mtime: a data
    set that is copied or mounted again gets new mtimes but the same bytes.
    """
    path = cache_path(cache_dir, audio_path, version)
    digest_path = path.with_suffix(".sha1")
    digest = file_digest(audio_path)
    if path.exists() and digest_path.exists() and digest_path.read_text() == digest:
        return np.load(path)
    values = compute()
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, values)
    digest_path.write_text(digest)
    return values


def cached_features(audio_path: Path, cache_dir: Path, front_end: FrontEnd) -> np.ndarray:
    """Front-end features of one file from the stream's start, float16 [n_hops * 8, 81] (cached).

    Raises:
        AudioInputError: the file cannot be read.
    """
    return cached_array(audio_path, cache_dir, FEATURES_VERSION, lambda: clip_features(front_end, load_audio(audio_path, SAMPLE_RATE)).astype(np.float16))


def load_clips(recordings: Sequence[Recording], cache_dir: Path) -> tuple[list[Clip], list[tuple[Path, str]]]:
    """Features for each recording (computed once, then read from ``cache_dir``).

    Unreadable audio is skipped and returned as ``(path, reason)``; labels are cut to the
    audio by ``datasets.align``.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    front_end = FrontEnd().eval()
    clips: list[Clip] = []
    skipped: list[tuple[Path, str]] = []
    for recording in tqdm(recordings, desc="features", unit="file", leave=False):
        try:
            features = cached_features(recording.audio_path, cache_dir, front_end)
        except AudioInputError as error:
            skipped.append((recording.audio_path, error.reason))
            continue
        aligned = align(recording, len(features) // FRAMES_PER_HOP * HOP_SAMPLES, SAMPLE_RATE)
        if len(aligned.labels) == 0:
            skipped.append((recording.audio_path, "no labelled hop inside the audio"))
            continue
        clips.append(Clip(recording.piece_id, recording.variant, features, aligned.labels, aligned.first_hop))
    return clips, skipped
