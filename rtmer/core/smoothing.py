"""Smoothing stages for the (valence, arousal) pair: One-Euro (default), EMA, or none.

Every stage works on one stream, is fed once per hop, and keeps its memory between
calls until ``reset()``. Time is the stream's own clock: the step is the model's hop
[s], never the wall clock, so a file analysed offline smooths exactly as it does live.
``delay_seconds`` is the lag [s] a stage adds to a slowly moving input (a declared,
upper-bound figure; One-Euro lags less when the input moves fast).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from rtmer.errors import ConfigError

SmoothingKind = Literal["one-euro", "ema", "none"]
SMOOTHING_KINDS: tuple[str, ...] = ("one-euro", "ema", "none")


class Smoother(Protocol):
    delay_seconds: float

    def process(self, value: np.ndarray) -> np.ndarray: ...

    def reset(self) -> None: ...


LIMIT = 1e6
"""Largest cutoff [Hz], time constant [s] and beta accepted, and 1/LIMIT the smallest
cutoff and time constant: beyond them a filter's factor rounds to 0 or 1 and it stops
filtering (or divides by zero)."""


def _positive(name: str, value: float, unit: str) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not 1.0 / LIMIT <= value <= LIMIT):
        raise ConfigError(f"{name}={value!r} must be a positive number [{unit}], from {1 / LIMIT:g} to {LIMIT:g}")
    return float(value)


def _non_negative(name: str, value: float, unit: str) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or not 0 <= value <= LIMIT):
        raise ConfigError(f"{name}={value!r} must be a number >= 0 [{unit}], at most {LIMIT:g}")
    return float(value)


def _alpha(cutoff_hz: float | np.ndarray, step_s: float) -> float | np.ndarray:
    """Smoothing factor of a first-order low-pass with ``cutoff_hz`` sampled every ``step_s``."""
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / step_s)


class OneEuroFilter:
    """One-Euro filter (Casiez, Roussel & Vogel, CHI 2012), element-wise over a vector.

    Parameters
    ----------
    step_seconds: time between inputs [s] (the model hop).
    min_cutoff: cutoff at rest [Hz]; lower is smoother and slower.
    beta: how fast the cutoff rises with speed [Hz per (unit/s)]; higher follows jumps faster.
    d_cutoff: cutoff of the speed estimate [Hz].

    Notes
    -----
    Keeps the previous output and the previous speed estimate. The first input passes
    through unchanged.
    """

    def __init__(self, *, step_seconds: float, min_cutoff: float = 0.25, beta: float = 0.6, d_cutoff: float = 1.0) -> None:
        self.step_seconds = _positive("step_seconds", step_seconds, "s")
        self.min_cutoff = _positive("min_cutoff", min_cutoff, "Hz")
        self.beta = _non_negative("beta", beta, "Hz per unit/s")
        self.d_cutoff = _positive("d_cutoff", d_cutoff, "Hz")
        self.delay_seconds = 1.0 / (2.0 * math.pi * self.min_cutoff)
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    def process(self, value: np.ndarray) -> np.ndarray:
        x = np.asarray(value, dtype=np.float64)
        if self._x is None or self._dx is None:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        speed = (x - self._x) / self.step_seconds
        a_d = _alpha(self.d_cutoff, self.step_seconds)
        self._dx = self._dx + a_d * (speed - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        a = _alpha(cutoff, self.step_seconds)
        self._x = self._x + a * (x - self._x)
        return self._x.copy()

    def reset(self) -> None:
        self._x = None
        self._dx = None


class EmaFilter:
    """Exponential moving average with time constant ``time_constant`` [s].

    ``y += (1 - exp(-step/time_constant)) * (x - y)``; the first input passes through.
    Keeps the previous output between calls.
    """

    def __init__(self, *, step_seconds: float, time_constant: float = 1.5) -> None:
        self.step_seconds = _positive("step_seconds", step_seconds, "s")
        self.time_constant = _positive("time_constant", time_constant, "s")
        self.alpha = 1.0 - math.exp(-self.step_seconds / self.time_constant)
        self.delay_seconds = self.step_seconds * (1.0 - self.alpha) / self.alpha
        self._y: np.ndarray | None = None

    def process(self, value: np.ndarray) -> np.ndarray:
        x = np.asarray(value, dtype=np.float64)
        if self._y is None:
            self._y = x.copy()
        else:
            self._y = self._y + self.alpha * (x - self._y)
        return self._y.copy()

    def reset(self) -> None:
        self._y = None


class NoSmoothing:
    """Passes values through; keeps nothing."""

    delay_seconds = 0.0

    def process(self, value: np.ndarray) -> np.ndarray:
        return np.asarray(value, dtype=np.float64).copy()

    def reset(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class SmoothingConfig:
    """Which smoother and its parameters; ``make`` builds one per stream."""

    kind: str = "one-euro"
    min_cutoff: float = 0.25  # [Hz]
    beta: float = 0.6  # [Hz per unit/s]
    d_cutoff: float = 1.0  # [Hz]
    time_constant: float = 1.5  # [s] (EMA)

    def __post_init__(self) -> None:
        if self.kind not in SMOOTHING_KINDS:
            raise ConfigError(f"smoothing={self.kind!r} must be one of {', '.join(SMOOTHING_KINDS)}")
        self.make(step_seconds=0.5)  # validates the parameters

    def make(self, *, step_seconds: float) -> Smoother:
        if self.kind == "one-euro":
            return OneEuroFilter(
                step_seconds=step_seconds, min_cutoff=self.min_cutoff, beta=self.beta, d_cutoff=self.d_cutoff
            )
        if self.kind == "ema":
            return EmaFilter(step_seconds=step_seconds, time_constant=self.time_constant)
        return NoSmoothing()
