from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import music_like, tone
from rtmer.core.engine import Engine
from rtmer.errors import ConfigError
from rtmer.core.framing import Hop, HopFramer
from rtmer.core.model import StreamingModel
from rtmer.core.smoothing import SmoothingConfig


@pytest.fixture(scope="module")
def model(default_model_path: Path) -> StreamingModel:
    return StreamingModel(default_model_path)


def hops_of(stream: str, audio: np.ndarray, model: StreamingModel) -> list[Hop]:
    framer = HopFramer(stream, hop_samples=model.info.hop_samples, sample_rate=model.info.sample_rate)
    return framer.process(audio)


def test_streaming_through_the_engine_equals_stepping_the_model(model: StreamingModel) -> None:
    audio = music_like(6.0, model.info.sample_rate)
    engine = Engine(model, smoothing=SmoothingConfig(kind="none"), clock=lambda: 0.0)
    # feed in odd-sized chunks through the framer, one hop at a time through the engine
    framer = HopFramer("a", hop_samples=model.info.hop_samples, sample_rate=model.info.sample_rate)
    updates = []
    for start in range(0, audio.shape[0], 3001):
        for hop in framer.process(audio[start : start + 3001]):
            updates.extend(engine.process([hop]))
    state = model.initial_state(1)
    hop = model.info.hop_samples
    expected = []
    for k in range(audio.shape[0] // hop):
        va, state = model.step(audio[None, k * hop : (k + 1) * hop], state)
        expected.append(va[0])
    got = np.array([[u.valence_raw, u.arousal_raw] for u in updates])
    assert got.shape == (len(expected), 2)
    assert np.allclose(got, np.array(expected), atol=1e-6)
    assert [u.t for u in updates] == pytest.approx([(k + 1) * model.info.hop_seconds for k in range(len(updates))])
    assert [u.seq for u in updates] == list(range(len(updates)))


def test_second_pass_without_reset_differs_and_reset_restores(model: StreamingModel) -> None:
    audio = music_like(4.0, model.info.sample_rate, seed=3)
    engine = Engine(model, smoothing=SmoothingConfig(kind="none"))
    first = engine.process(hops_of("a", audio, model))
    second = engine.process(hops_of("a", audio, model))
    assert not np.allclose([u.valence_raw for u in first], [u.valence_raw for u in second], atol=1e-7) or not np.allclose(
        [u.arousal_raw for u in first], [u.arousal_raw for u in second], atol=1e-7
    )
    engine.reset()
    third = engine.process(hops_of("a", audio, model))
    assert [(u.valence_raw, u.arousal_raw) for u in third] == [(u.valence_raw, u.arousal_raw) for u in first]


def test_streams_are_batched_into_one_call_and_match_separate_runs(model: StreamingModel) -> None:
    calls: list[int] = []

    class Counting:
        info = model.info

        def initial_state(self, batch: int) -> np.ndarray:
            return model.initial_state(batch)

        def step(self, audio: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            calls.append(audio.shape[0])
            return model.step(audio, state)

    rate = model.info.sample_rate
    a, b = music_like(3.0, rate, seed=1), tone(330, 3.0, rate, amplitude=0.3)
    batched = Engine(Counting(), smoothing=SmoothingConfig(kind="none")).process(hops_of("a", a, model) + hops_of("b", b, model))
    assert calls == [2] * 6
    alone_a = Engine(model, smoothing=SmoothingConfig(kind="none")).process(hops_of("a", a, model))
    alone_b = Engine(model, smoothing=SmoothingConfig(kind="none")).process(hops_of("b", b, model))
    for stream, alone in (("a", alone_a), ("b", alone_b)):
        mine = [u for u in batched if u.stream == stream]
        assert np.allclose([[u.valence_raw, u.arousal_raw] for u in mine], [[u.valence_raw, u.arousal_raw] for u in alone], atol=1e-5)


def test_nan_and_inf_become_zero_are_counted_and_state_stays_finite(model: StreamingModel) -> None:
    rate = model.info.sample_rate
    audio = music_like(2.0, rate)
    audio[100:150] = np.nan
    audio[9000] = np.inf
    audio[9001] = -np.inf
    engine = Engine(model)
    updates = engine.process(hops_of("a", audio, model))
    assert engine.stats()["a"].nonfinite_samples == 52
    assert all(np.isfinite([u.valence, u.arousal, u.valence_raw, u.arousal_raw]).all() for u in updates)
    assert np.isfinite(engine._streams["a"].state).all()
    clean = audio.copy()
    clean[~np.isfinite(clean)] = 0
    ref = Engine(model).process(hops_of("a", clean, model))
    assert [u.valence_raw for u in updates] == [u.valence_raw for u in ref]


def test_silence_gives_a_defined_stable_output(model: StreamingModel) -> None:
    rate = model.info.sample_rate
    engine = Engine(model)
    engine.process(hops_of("a", music_like(3.0, rate), model))
    updates = engine.process(hops_of("a", np.zeros(rate * 20, dtype=np.float32), model))
    assert all(u.valence_raw == 0.0 and u.arousal_raw == 0.0 for u in updates)
    tail = updates[-10:]
    assert max(abs(u.valence) + abs(u.arousal) for u in tail) < 1e-3
    assert {u.mood for u in tail} == {"neutral"}
    assert engine.stats()["a"].silent_hops == len(updates)
    # a stream of silence from the start is the same, exactly
    fresh = Engine(model).process(hops_of("b", np.zeros(rate * 2, dtype=np.float32), model))
    assert {(u.valence, u.arousal, u.mood) for u in fresh} == {(0.0, 0.0, "neutral")}


def test_a_gap_resets_that_streams_state_only(model: StreamingModel) -> None:
    rate = model.info.sample_rate
    audio = music_like(4.0, rate, seed=5)
    none = SmoothingConfig(kind="none")
    warm = Engine(model, smoothing=none)
    warm.process(hops_of("a", audio, model) + hops_of("b", audio, model))
    nxt = hops_of("a", music_like(1.0, rate, seed=9), model)
    gap_hop = Hop("a", nxt[0].audio, 4.5, gap=True)
    other = Hop("b", nxt[0].audio, 4.5)
    out = {u.stream: u for u in warm.process([gap_hop, other])}
    fresh = Engine(model, smoothing=none).process([Hop("x", nxt[0].audio, 0.5)])[0]
    assert (out["a"].valence_raw, out["a"].arousal_raw) == (fresh.valence_raw, fresh.arousal_raw)
    assert (out["b"].valence_raw, out["b"].arousal_raw) != (fresh.valence_raw, fresh.arousal_raw)
    assert warm.stats()["a"].gaps == 1 and warm.stats()["a"].state_resets == 1
    assert warm.stats()["b"].state_resets == 0


def test_a_failing_model_row_fails_alone(model: StreamingModel) -> None:
    class Flaky:
        info = model.info

        def initial_state(self, batch: int) -> np.ndarray:
            return model.initial_state(batch)

        def step(self, audio: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            va, st = model.step(audio, state)
            if audio.shape[0] > 1:
                raise RuntimeError("boom")
            if audio[0, 0] == np.float32(0.25):
                st = st * np.nan
            return va, st

    rate = model.info.sample_rate
    bad = np.full(model.info.hop_samples, 0.25, dtype=np.float32)
    good = music_like(0.5, rate)
    engine = Engine(Flaky())
    out = engine.process([Hop("bad", bad, 0.5), Hop("good", good, 0.5)])
    assert [u.stream for u in out] == ["bad", "good"]
    assert engine.stats()["bad"].model_failures == 1 and engine.stats()["good"].model_failures == 0
    assert (out[0].valence_raw, out[0].arousal_raw) == (0.0, 0.0)
    assert np.isfinite(engine._streams["bad"].state).all()


def test_declared_latency_adds_up(model: StreamingModel) -> None:
    lat = Engine(model, smoothing=SmoothingConfig(kind="ema", time_constant=1.0)).latency
    assert lat["hop_buffer"] == model.info.hop_seconds
    assert lat["total"] == pytest.approx(lat["hop_buffer"] + lat["model"] + lat["smoothing"])


def test_framer_positions_padding_and_gaps() -> None:
    f = HopFramer("s", hop_samples=4, sample_rate=8)
    hops = f.process(np.arange(10, dtype=np.float32))
    assert [h.end_seconds for h in hops] == [0.5, 1.0]
    f.skip(6)  # the 2 buffered samples are dropped, 6 more were lost
    hops = f.process(np.ones(4, dtype=np.float32))
    assert hops[0].gap and hops[0].end_seconds == (10 + 6 + 4) / 8
    f.process(np.ones(1, dtype=np.float32))
    last = f.flush()
    assert last is not None and list(last.audio) == [1, 0, 0, 0] and not last.gap
    assert f.flush() is None


def test_bad_engine_options(model: StreamingModel) -> None:
    with pytest.raises(ConfigError, match=r"silence_db=3 must be a number <= 0 \[dBFS\]"):
        Engine(model, silence_db=3)


def test_each_update_flags_a_gap_or_a_model_failure(tiny_model_path: Path) -> None:
    """Rows of hops the model failed on used to look like any other raw (0, 0)."""
    from rtmer.core.framing import Hop
    from rtmer.core.model import StreamingModel

    class Flaky:
        def __init__(self) -> None:
            self.inner = StreamingModel(tiny_model_path)
            self.info, self.provider, self.calls = self.inner.info, self.inner.provider, 0

        def initial_state(self, batch: int) -> np.ndarray:
            return self.inner.initial_state(batch)

        def step(self, audio: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            self.calls += 1
            if self.calls == 3:
                raise RuntimeError("boom")
            return self.inner.step(audio, state)

    engine = Engine(Flaky())
    hop = engine.info.hop_samples
    x = 0.3 * np.ones(hop, np.float32)
    got = [engine.process([Hop("a", x, end_seconds=0.5 * (i + 1), gap=i == 1)])[0].status for i in range(4)]
    assert got == ["ok", "gap", "failed", "ok"]
