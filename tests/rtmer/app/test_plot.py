"""``rtmer analyze --plot`` (``rtmer.app.plot``): figures rendered with matplotlib and checked as images."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import cli
from rtmer.app.cli import EXIT_OK, EXIT_USAGE
from rtmer.app.demo import section_audio
from rtmer.app.plot import AROUSAL_COLOUR, DPI, FIGURE_INCHES, MOOD_ALPHA, MOOD_COLOURS, VALENCE_COLOUR


@pytest.fixture(scope="module")
def song(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Calm, then tense: the mood changes, so there are two bands."""
    path = tmp_path_factory.mktemp("plot") / "song.wav"
    sf.write(path, np.concatenate([section_audio("calm", 16000)[:16000 * 3], section_audio("tense", 16000)[:16000 * 5]]),
             16000)
    return path


def rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=float) / 255


def share_near(image: np.ndarray, colour: np.ndarray, tol: float = 6 / 255) -> float:
    """The share of pixels within ``tol`` of ``colour`` in every channel."""
    return float(np.mean(np.all(np.abs(image[..., :3] - colour) <= tol, axis=-1)))


def test_plot_draws_both_dimensions_raw_and_smoothed_with_mood_bands(song: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    target = tmp_path / "song.png"
    code, out, err = cli("analyze", str(song), "--plot", str(target))
    assert code == EXIT_OK, err
    assert out.startswith("time_s,valence,arousal")  # the analysis is written as ever
    image = imread(target)
    assert image.shape[:2] == (round(FIGURE_INCHES[1] * DPI), round(FIGURE_INCHES[0] * DPI))
    assert float(np.std(image[..., :3])) > 0.1  # not blank
    assert np.mean(np.all(image[..., :3] > 0.97, axis=-1)) < 0.9
    # the smoothed lines, in their colours
    assert share_near(image, rgb(VALENCE_COLOUR)) > 1e-3 and share_near(image, rgb(AROUSAL_COLOUR)) > 1e-3
    # the mood bands behind them: a band for each mood the analysis reads, none for the others
    moods = {row["mood"] for row in csv.DictReader(io.StringIO(out))}
    assert len(moods) >= 2, moods  # calm, then tense: the mood changes
    for mood, colour in MOOD_COLOURS.items():
        band = MOOD_ALPHA * rgb(colour) + (1 - MOOD_ALPHA) * 1.0  # over the white axes
        if mood in moods:
            assert share_near(image, band, tol=3 / 255) > 0.01, mood
        else:
            assert share_near(image, band, tol=3 / 255) < 1e-3, mood


def test_plot_into_a_folder_one_image_per_input_and_svg(song: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    other = tmp_path / "in" / "other.flac"
    other.parent.mkdir()
    sf.write(other, section_audio("sad", 16000)[:16000 * 2], 16000)
    code, _, err = cli("analyze", str(song), str(other), "--plot", str(tmp_path / "figures"), "-q")
    assert code == EXIT_OK, err
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == ["other.flac.png", "song.wav.png"]
    code, _, err = cli("analyze", str(other), "--plot", str(tmp_path / "other.svg"), "-q")
    assert code == EXIT_OK, err
    assert b"<svg" in (tmp_path / "other.svg").read_bytes()[:2000]


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("two.png", r"--plot='.*two\.png' names one image but 2 inputs are given"),
        ("missing/song.png", r"folder '.*missing' does not exist"),
        ("a-file", r"is a file without an image extension"),
    ],
)
def test_a_plot_that_cannot_be_written_is_refused_before_analysis(song: Path, tmp_path: Path, where: str,
                                                                  message: str) -> None:
    pytest.importorskip("matplotlib")
    import re

    (tmp_path / "a-file").write_text("x")
    extra = [str(tmp_path / "second.wav")] if where == "two.png" else []
    if extra:
        sf.write(extra[0], np.zeros(16000, np.float32), 16000)
    code, out, err = cli("analyze", str(song), *extra, "--plot", str(tmp_path / where))
    assert code == EXIT_USAGE and out == "" and re.search(message, err), err


def test_without_matplotlib_a_clear_message_and_exit_2(song: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    code, out, err = cli("analyze", str(song), "--plot", str(tmp_path / "song.png"))
    assert code == EXIT_USAGE and out == ""  # checked before anything is analysed
    assert err == ("rtmer: --plot needs matplotlib, which is not installed; install it with: "
                   "pip install 'rtmer[plot]'\n")
    assert not (tmp_path / "song.png").exists()
