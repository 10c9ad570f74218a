"""The composite stage (``rtmer.core.pipeline.Pipeline``): resample -> frame -> engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import music_like
from rtmer.core.engine import Engine
from rtmer.core.model import StreamingModel
from rtmer.core.pipeline import Pipeline


def _pipeline(model: Path) -> Pipeline:
    return Pipeline(Engine(StreamingModel(model)))


def test_blocks_of_any_length_equal_one_block_and_the_end_drains_the_resampler(tiny_model_path: Path) -> None:
    x = np.stack([music_like(2.7, 44100, seed=5), music_like(2.7, 44100, seed=6)], axis=1)
    whole = _pipeline(tiny_model_path)
    whole.open("a", in_rate=44100)
    one = whole.process({"a": x}) + whole.run(whole.end("a"))
    pieces = _pipeline(tiny_model_path)
    pieces.open("a", in_rate=44100)
    got = []
    for start in range(0, x.shape[0], 3001):
        got += pieces.process({"a": x[start:start + 3001]})
    got += pieces.run(pieces.end("a"))
    assert [u.t for u in got] == [u.t for u in one] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    np.testing.assert_allclose([u.valence_raw for u in got], [u.valence_raw for u in one], atol=1e-6)


def test_streams_at_the_model_rate_go_straight_to_the_framer(tiny_model_path: Path) -> None:
    p = _pipeline(tiny_model_path)
    p.open("a")
    assert p.delay_seconds("a") == pytest.approx(0.5)
    hops = p.frame("a", np.zeros(12000, np.float32))
    assert [h.end_seconds for h in hops] == [0.5]
    p.skip("a", 8000)  # the partial hop is dropped, the clock goes on
    assert p.frame("a", np.zeros(4000, np.float32)) == []
    assert [(h.end_seconds, h.gap) for h in p.end("a")] == [(1.75, True)]
    assert p.close("a") is None and "a" not in p


def test_a_stream_is_opened_once(tiny_model_path: Path) -> None:
    p = _pipeline(tiny_model_path)
    p.open("a", in_rate=22050)
    p.frame("a", np.zeros(2205, np.float32))
    assert p.delay_seconds("a") > 0.5  # the resampler's delay on top of the hop
    with pytest.raises(ValueError, match="stream id 'a' is used twice"):
        p.open("a")
