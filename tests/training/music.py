"""Synthetic music for the trainer's tests: chords with note envelopes, a tempo and a level."""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000


def chords(seconds: float, *, bpm: float, root_hz: float, minor: bool, level: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    out = np.zeros(n, np.float32)
    beat = int(60 / bpm * SAMPLE_RATE)
    third = 2 ** ((3 if minor else 4) / 12)
    for start in range(0, n, beat):
        length = min(beat, n - start)
        t = np.arange(length) / SAMPLE_RATE
        envelope = np.exp(-t * rng.uniform(2.0, 6.0))
        for ratio in (1.0, third, 1.5):
            f = root_hz * ratio * rng.choice([1, 2])
            out[start : start + length] += (envelope * (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t))).astype(np.float32)
    out += 0.01 * rng.standard_normal(n).astype(np.float32)
    return (level * out / np.abs(out).max()).astype(np.float32)
