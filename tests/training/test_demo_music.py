"""The demo's sections (``training.demo_music``): what they are composed of, and that the shipped renders are theirs."""

import numpy as np
import pytest
import soundfile as sf

from training.demo_music import DRUMS, OUT_DIR, SAMPLE_RATE, SECTIONS, render_section
from training.render import find_fluidsynth

MINOR_A, MAJOR_C = {9, 0, 4}, {0, 4, 7}


def pitch_classes(name: str, channel: int | None = None) -> set[int]:
    score = SECTIONS[name][0]()
    return {m.note % 12 for _, m in score.events if m.type == "note_on" and m.channel != DRUMS and channel in (None, m.channel)}


def programs(name: str) -> set[int]:
    return {m.program for _, m in SECTIONS[name][0]().events if m.type == "program_change"}


def drum_hits(name: str) -> int:
    return sum(1 for _, m in SECTIONS[name][0]().events if m.type == "note_on" and m.channel == DRUMS)


def test_the_sections_are_composed_as_their_table_says() -> None:
    tempos = {name: compose().bpm for name, (compose, _) in SECTIONS.items()}
    assert tempos["sad"] < tempos["calm"] < tempos["excited"] < tempos["tense"]
    assert MAJOR_C <= pitch_classes("calm") and MAJOR_C <= pitch_classes("excited") and MINOR_A <= pitch_classes("sad")
    assert 30 in programs("tense") and drum_hits("tense") > drum_hits("excited") > 0  # distortion guitar, double kick
    assert drum_hits("calm") == 0 and drum_hits("sad") == 0
    assert pitch_classes("tense", channel=1) == {4, 10, 5, 11}  # the tritone stabs (E-Bb, F-B)
    levels = {name: level for name, (_, level) in SECTIONS.items()}
    assert max(levels["calm"], levels["sad"]) < min(levels["excited"], levels["tense"])


def test_every_section_is_whole_bars_of_20_to_24_s() -> None:
    for name, (compose, _) in SECTIONS.items():
        score = compose()
        assert 20.0 <= score.seconds <= 24.0, name
        assert max(tick for tick, m in score.events if m.type == "note_on") < score.bars * 4 * 480, name


@pytest.mark.parametrize("name", list(SECTIONS))
def test_the_shipped_render_is_what_the_script_makes(name: str) -> None:
    try:
        find_fluidsynth()
    except Exception as error:
        pytest.skip(str(error))
    fresh = render_section(name)
    shipped, rate = sf.read(OUT_DIR / f"{name}.ogg", dtype="float32")
    assert rate == SAMPLE_RATE and shipped.shape == fresh.shape
    hop = SAMPLE_RATE // 2
    n = len(fresh) // hop

    def level_db(x: np.ndarray) -> np.ndarray:
        return 10 * np.log10(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)

    assert np.abs(level_db(fresh) - level_db(shipped)).max() < 0.5  # Vorbis is lossy: same music, not the same samples
    assert np.corrcoef(fresh, shipped)[0, 1] > 0.95
