from __future__ import annotations

import math

import numpy as np
import pytest

from rtmer.errors import ConfigError
from rtmer.core.smoothing import EmaFilter, NoSmoothing, OneEuroFilter, SmoothingConfig


def step_response(f: OneEuroFilter | EmaFilter | NoSmoothing, n: int = 20) -> list[float]:
    f.process(np.zeros(2))
    return [float(f.process(np.ones(2))[0]) for _ in range(n)]


def test_ema_follows_its_time_constant() -> None:
    f = EmaFilter(step_seconds=0.5, time_constant=2.0)
    y = step_response(f, 8)
    # after k steps of 0.5 s the response is 1 - exp(-k * 0.5 / 2)
    for k, v in enumerate(y, start=1):
        assert v == pytest.approx(1 - math.exp(-k * 0.5 / 2.0), abs=1e-12)


def test_one_euro_first_value_passes_and_constant_input_is_a_fixed_point() -> None:
    f = OneEuroFilter(step_seconds=0.5)
    assert np.array_equal(f.process(np.array([0.3, -0.2])), [0.3, -0.2])
    for _ in range(10):
        out = f.process(np.array([0.3, -0.2]))
    assert np.allclose(out, [0.3, -0.2])


def test_one_euro_beta_follows_jumps_faster_and_min_cutoff_smooths_jitter() -> None:
    slow = step_response(OneEuroFilter(step_seconds=0.5, min_cutoff=0.1, beta=0.0))
    fast = step_response(OneEuroFilter(step_seconds=0.5, min_cutoff=0.1, beta=2.0))
    assert fast[0] > slow[0] and fast[2] > slow[2]
    rng = np.random.default_rng(0)
    jitter = 0.05 * rng.standard_normal((200, 2))
    f = OneEuroFilter(step_seconds=0.5, min_cutoff=0.1, beta=0.1)
    out = np.array([f.process(x) for x in jitter])
    assert out[20:].std() < 0.5 * jitter[20:].std()


def test_reset_forgets() -> None:
    for f in (OneEuroFilter(step_seconds=0.5), EmaFilter(step_seconds=0.5)):
        f.process(np.array([1.0, 1.0]))
        f.reset()
        assert np.array_equal(f.process(np.array([-1.0, 0.5])), [-1.0, 0.5])


def test_none_passes_through_and_declares_no_delay() -> None:
    f = NoSmoothing()
    assert f.delay_seconds == 0.0
    assert step_response(f, 1) == [1.0]


def test_declared_delay() -> None:
    assert OneEuroFilter(step_seconds=0.5, min_cutoff=0.25).delay_seconds == pytest.approx(1 / (2 * math.pi * 0.25))
    assert 0 < EmaFilter(step_seconds=0.5, time_constant=1.5).delay_seconds < 1.5


def test_bad_parameters_name_the_value() -> None:
    with pytest.raises(ConfigError, match=r"min_cutoff=0 must be a positive number \[Hz\]"):
        SmoothingConfig(min_cutoff=0)
    with pytest.raises(ConfigError, match=r"beta=-1 must be a number >= 0"):
        SmoothingConfig(beta=-1)
    with pytest.raises(ConfigError, match=r"time_constant=nan must be a positive number \[s\]"):
        SmoothingConfig(kind="ema", time_constant=float("nan"))
    with pytest.raises(ConfigError, match=r"smoothing='kalman' must be one of one-euro, ema, none"):
        SmoothingConfig(kind="kalman")
