from __future__ import annotations

import pytest

from rtmer.errors import ConfigError
from rtmer.core.mood import MoodLabeler


@pytest.mark.parametrize(
    ("v", "a", "label"),
    [(0.6, 0.6, "excited"), (-0.6, 0.6, "tense"), (-0.6, -0.6, "sad"), (0.6, -0.6, "calm"), (0.05, -0.05, "neutral")],
)
def test_quadrants_and_neutral(v: float, a: float, label: str) -> None:
    assert MoodLabeler().process(v, a) == label


def test_no_flicker_at_a_quadrant_boundary() -> None:
    m = MoodLabeler(neutral_radius=0.15, hysteresis=0.05)
    assert m.process(0.5, 0.5) == "excited"
    labels = {m.process(v, 0.5) for v in (0.02, -0.03, 0.01, -0.04, 0.03, -0.01)}
    assert labels == {"excited"}
    assert m.process(-0.06, 0.5) == "tense"
    assert {m.process(v, 0.5) for v in (0.04, -0.02, 0.03)} == {"tense"}


def test_no_flicker_at_the_neutral_ring() -> None:
    m = MoodLabeler(neutral_radius=0.15, hysteresis=0.05)
    assert m.process(0.0, 0.0) == "neutral"
    assert {m.process(0.12 + d, 0.1) for d in (0.0, 0.03, -0.02, 0.02)} == {"neutral"}  # radius 0.16..0.19
    assert m.process(0.3, 0.3) == "excited"
    assert {m.process(0.1, 0.05) for _ in range(3)} == {"excited"}  # radius 0.11 > 0.10
    assert m.process(0.05, 0.05) == "neutral"


def test_reset_forgets_the_label() -> None:
    m = MoodLabeler()
    m.process(0.5, 0.5)
    m.reset()
    assert m.process(-0.01, 0.5) == "tense"


def test_bad_parameters() -> None:
    with pytest.raises(ConfigError, match=r"neutral_radius=1.5 must be in \[0, 1\)"):
        MoodLabeler(neutral_radius=1.5)
    with pytest.raises(ConfigError, match=r"hysteresis=-0.1 must be in \[0, 0.5\)"):
        MoodLabeler(hysteresis=-0.1)
