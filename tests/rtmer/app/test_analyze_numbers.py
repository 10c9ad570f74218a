"""`rtmer analyze` gives the same numbers as it did before the package was split into floors.

``analyze_numbers.csv`` holds the rows that main's code (before ``rtmer/`` had floors) wrote
for the inputs ``write_inputs`` generates, through the tiny model of ``conftest`` (built from
fixed weights, so the numbers do not move when the shipped models are retrained). The
inputs go through every stage: two rates resampled (44.1 kHz stereo, 22.05 kHz mono), the
framer (a partial last hop), the model with its state carried, the smoother, the mood
labeller with its hysteresis, silence. To write the file again (only on purpose, when the
numbers are meant to change)::

    PYTHONPATH=.:tests/rtmer python tests/rtmer/app/test_analyze_numbers.py
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from conftest import build_tiny_model, cli, music_like, tone  # tests/rtmer's, at collection: a later import could find tests/training's

HERE = Path(__file__).resolve().parent
EXPECTED = HERE / "analyze_numbers.csv"
FLOATS = ("time_s", "valence", "arousal", "valence_raw", "arousal_raw")


def write_inputs(folder: Path) -> list[Path]:
    """Two deterministic files: music with silence and a loud offset part, and a mono tone sweep."""
    import soundfile as sf


    rate = 44100
    music = music_like(4.0, rate, seed=3)
    silence = np.zeros(int(1.2 * rate), dtype=np.float32)
    loud = 0.6 * tone(660.0, 2.1, rate, amplitude=1.0) + 0.3  # a DC offset moves the tiny model's arousal
    left = np.concatenate([music, silence, loud]).astype(np.float32)
    right = np.concatenate([0.5 * music, silence, 0.8 * loud]).astype(np.float32)
    first = folder / "a.wav"
    sf.write(first, np.stack([left, right], axis=1), rate, subtype="PCM_16")

    rate = 22050
    t = np.arange(int(3.7 * rate)) / rate
    sweep = (0.4 * np.sin(2 * np.pi * (200 + 300 * t) * t) + 0.2 * np.sign(np.sin(2 * np.pi * 0.7 * t)))
    second = folder / "b.flac"
    sf.write(second, sweep.astype(np.float32), rate, subtype="PCM_24")
    return [first, second]


def analyze(folder: Path, model: Path) -> str:
    """The CSV ``rtmer analyze`` writes for ``write_inputs(folder)`` (stream names are file names)."""

    inputs = write_inputs(folder)
    code, out, err = cli("analyze", *(str(path) for path in inputs), "--model", str(model))
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    for row in rows:
        row["stream"] = Path(row["stream"]).name
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def test_analyze_gives_the_numbers_it_gave_before(tiny_model_path: Path, tmp_path: Path) -> None:
    got = list(csv.DictReader(io.StringIO(analyze(tmp_path, tiny_model_path))))
    expected = list(csv.DictReader(EXPECTED.open(newline="")))
    assert len(got) == len(expected) > 20
    assert {row["stream"] for row in expected} == {"a.wav", "b.flac"}
    for row, want in zip(got, expected, strict=True):
        assert row.keys() == want.keys()
        for key, value in want.items():
            if key in FLOATS:  # written as repr: equal to the bit here; a tolerance for other CPUs and libraries
                assert math.isclose(float(row[key]), float(value), rel_tol=1e-6, abs_tol=1e-6), (key, row, want)
            else:
                assert row[key] == value, (key, row, want)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        EXPECTED.write_text(analyze(folder, build_tiny_model(folder / "tiny.onnx")))
    print(f"wrote {EXPECTED}")
