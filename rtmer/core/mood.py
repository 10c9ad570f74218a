"""A mood label from the quadrant of the (valence, arousal) circumplex, with hysteresis.

    arousal
       ^     tense   |  excited
       |   ----------+----------> valence
       |      sad    |  calm
``neutral`` near the origin.

Hysteresis keeps the label from flickering at a boundary: the label leaves ``neutral``
only when the radius exceeds ``neutral_radius + hysteresis`` and enters it only when the
radius falls below ``neutral_radius - hysteresis``; it crosses an axis only once the
value is more than ``hysteresis`` past it.
"""

from __future__ import annotations

import math

from rtmer.errors import ConfigError

MOODS = ("excited", "tense", "sad", "calm", "neutral")


def quadrant(valence: float, arousal: float) -> str:
    """The quadrant label without hysteresis (zero counts as positive)."""
    if arousal >= 0:
        return "excited" if valence >= 0 else "tense"
    return "calm" if valence >= 0 else "sad"


_SIGNS = {"excited": (1, 1), "tense": (-1, 1), "sad": (-1, -1), "calm": (1, -1)}


class MoodLabeler:
    """Stage: (valence, arousal) in [-1, 1] -> mood label. Keeps the last label.

    ``neutral_radius`` and ``hysteresis`` are distances in the unit valence/arousal plane.
    """

    delay_seconds = 0.0

    def __init__(self, *, neutral_radius: float = 0.15, hysteresis: float = 0.05) -> None:
        if not (isinstance(neutral_radius, (int, float)) and 0 <= neutral_radius < 1):
            raise ConfigError(f"neutral_radius={neutral_radius!r} must be in [0, 1)")
        if not (isinstance(hysteresis, (int, float)) and 0 <= hysteresis < 0.5):
            raise ConfigError(f"hysteresis={hysteresis!r} must be in [0, 0.5)")
        self.neutral_radius = float(neutral_radius)
        self.hysteresis = float(hysteresis)
        self._label: str | None = None

    def process(self, valence: float, arousal: float) -> str:
        r = math.hypot(valence, arousal)
        h = self.hysteresis
        label = self._label
        if label is None:
            label = "neutral" if r < self.neutral_radius else quadrant(valence, arousal)
        elif label == "neutral":
            if r > self.neutral_radius + h:
                label = quadrant(valence, arousal)
        elif r < self.neutral_radius - h:
            label = "neutral"
        else:
            sv, sa = _SIGNS[label]
            if valence * sv < -h:
                sv = -sv
            if arousal * sa < -h:
                sa = -sa
            label = quadrant(float(sv), float(sa))
        self._label = label
        return label

    def reset(self) -> None:
        self._label = None
