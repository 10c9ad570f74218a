"""The per-file cache of features and embeddings (``training.features.cached_array``)."""

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from rtmer.errors import AudioInputError
from training.features import cached_array


def write_tone(path: Path, hz: float) -> None:
    t = np.arange(8000) / 16000
    sf.write(path, 0.3 * np.sin(2 * np.pi * hz * t), 16000)


def test_the_cache_follows_the_content_of_the_audio_not_its_mtime(tmp_path: Path) -> None:
    audio, cache = tmp_path / "clip.wav", tmp_path / "cache"
    write_tone(audio, 440.0)
    calls: list[int] = []

    def compute() -> np.ndarray:
        calls.append(1)
        return np.full(3, float(len(calls)))

    first = cached_array(audio, cache, "1", compute)
    os.utime(audio, (audio.stat().st_atime + 3600, audio.stat().st_mtime + 3600))  # copied or mounted again
    assert np.array_equal(cached_array(audio, cache, "1", compute), first) and len(calls) == 1
    assert cached_array(audio, cache, "2", compute)[0] == 2.0  # another version is another entry
    write_tone(audio, 660.0)
    assert cached_array(audio, cache, "1", compute)[0] == 3.0 and len(calls) == 3


def test_a_missing_file_is_an_audio_input_error(tmp_path: Path) -> None:
    with pytest.raises(AudioInputError, match="nope.wav.*cannot be read"):
        cached_array(tmp_path / "nope.wav", tmp_path / "cache", "1", lambda: np.zeros(1))
