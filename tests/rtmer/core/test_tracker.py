"""rtmer.Tracker: the CLI's stages fed with numpy blocks; equal numbers, batched streams, checked input."""

from __future__ import annotations

import inspect
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

import rtmer
from conftest import music_like
from rtmer.app.cli import EXIT_OK, main
from rtmer.app.config import DEFAULTS
from rtmer.errors import AudioInputError, ConfigError, ModelContractError
from rtmer.core.update import Update


def numbers(updates: list[Update]) -> list[tuple[Any, ...]]:
    """Everything but the wall-clock ``time`` (and the stream id)."""
    return [(u.seq, u.t, u.valence, u.arousal, u.valence_raw, u.arousal_raw, u.mood) for u in updates]


def analyze(path: Path, *options: str) -> list[tuple[Any, ...]]:
    out, err = io.StringIO(), io.StringIO()
    assert main(["analyze", str(path), "--to", "json", *options], stdout=out, stderr=err) == EXIT_OK, err.getvalue()
    rows = json.loads(out.getvalue())["files"][0]["updates"]
    return [
        (r["seq"], r["t"], r["valence"], r["arousal"], r["raw"]["valence"], r["raw"]["arousal"], r["mood"])
        for r in rows
    ]


@pytest.fixture(scope="module")
def tracker() -> rtmer.Tracker:
    return rtmer.Tracker()


@pytest.fixture(scope="module")
def stereo_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, int]:
    """3.3 s of 16-bit stereo at 44.1 kHz (resampled; ends in a partial hop), and its samples."""
    path = tmp_path_factory.mktemp("audio") / "clip.wav"
    x = music_like(3.3, 44100, seed=11)
    sf.write(path, np.stack([x, 0.4 * x[::-1]], axis=1), 44100, subtype="PCM_16")
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    return path, data, rate


def whole(tracker: rtmer.Tracker, block: np.ndarray, rate: int, stream: str = "main") -> list[Update]:
    return tracker.process(block, sample_rate=rate, stream=stream) + tracker.end(stream)


def test_numbers_equal_rtmer_analyze_for_the_same_file(
    tracker: rtmer.Tracker, stereo_clip: tuple[Path, np.ndarray, int]
) -> None:
    path, data, rate = stereo_clip
    expected = analyze(path)
    got = whole(tracker, data, rate)
    assert numbers(got) == expected
    assert [u.t for u in got] == [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]
    assert len({u.valence_raw for u in got}) == len(got)  # a real, moving estimate, not a constant


def test_options_map_to_the_cli_flags(stereo_clip: tuple[Path, np.ndarray, int]) -> None:
    path, data, rate = stereo_clip
    flags = ("--model", "large", "--smoothing", "ema", "--time-constant", "0.7", "--neutral-radius", "0.3")
    tracker = rtmer.Tracker(
        "large", smoothing=rtmer.SmoothingConfig(kind="ema", time_constant=0.7), neutral_radius=0.3
    )
    got = whole(tracker, data, rate)
    assert tracker.info.name == "rtmer-large"
    assert numbers(got) == analyze(path, *flags)
    assert numbers(got) != analyze(path)


def test_defaults_are_the_clis() -> None:
    params = inspect.signature(rtmer.Tracker).parameters
    for name in ("model", "neutral_radius", "hysteresis", "silence_db", "threads"):
        assert params[name].default == DEFAULTS[name], name
    assert params["smoothing"].default == DEFAULTS["smoothing"]


def test_blocks_of_random_lengths_equal_one_block(
    tracker: rtmer.Tracker, stereo_clip: tuple[Path, np.ndarray, int]
) -> None:
    _, data, rate = stereo_clip
    expected = whole(tracker, data, rate)
    rng = np.random.default_rng(5)
    got: list[Update] = []
    i = 0
    while i < data.shape[0]:
        n = int(rng.choice([0, 1, 7, 333, 4410, 9000, 30000]))  # zero, shorter and longer than a hop
        got.extend(tracker.process(data[i : i + n], sample_rate=rate))
        i += n
    got.extend(tracker.end())
    assert numbers(got) == numbers(expected)


def test_int16_pcm_float64_and_float32_give_the_same_numbers(
    tracker: rtmer.Tracker, stereo_clip: tuple[Path, np.ndarray, int]
) -> None:
    path, data, rate = stereo_clip
    pcm, _ = sf.read(path, dtype="int16", always_2d=True)
    expected = numbers(whole(tracker, data, rate))
    assert numbers(whole(tracker, pcm, rate)) == expected
    assert numbers(whole(tracker, data.astype(np.float64), rate)) == expected


def test_mono_shapes_and_identical_channels_are_the_same_stream(tracker: rtmer.Tracker) -> None:
    x = music_like(2.2, 16000, seed=4)
    expected = numbers(whole(tracker, x, 16000))
    assert numbers(whole(tracker, x[:, None], 16000)) == expected
    assert numbers(whole(tracker, np.stack([x, x], axis=1), 16000)) == expected
    assert [u.t for u in whole(tracker, x, 16000)] == [0.5, 1.0, 1.5, 2.0, 2.5]


def test_streams_of_mixed_rates_and_channels_batched_equal_each_alone(
    stereo_clip: tuple[Path, np.ndarray, int],
) -> None:
    _, deck1, rate1 = stereo_clip
    deck2 = np.tile(music_like(2.2, 48000, seed=2)[:, None], (1, 6)) * np.linspace(0.2, 1, 6, dtype=np.float32)
    deck3 = music_like(1.3, 8000, seed=3)
    blocks: dict[str, Any] = {"deck1": deck1, "deck2": deck2, "deck3": deck3}
    rates = {"deck1": rate1, "deck2": 48000, "deck3": 8000}
    alone = rtmer.Tracker()
    expected = {s: numbers(whole(alone, b, rates[s], s)) for s, b in blocks.items()}

    batched = rtmer.Tracker()
    calls: list[int] = []
    model = batched._engine.model
    step = model.step

    def counting_step(audio: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(audio.shape[0])
        return step(audio, state)

    model.step = counting_step  # type: ignore[method-assign]
    got = batched.process_streams(blocks, sample_rate=rates)
    assert sorted(batched.streams) == ["deck1", "deck2", "deck3"]
    got += batched.end()
    assert batched.streams == []
    for s in blocks:
        assert numbers([u for u in got if u.stream == s]) == expected[s], s
    # 6, 4 and 2 complete hops: one batched call per round, then the three padded last hops in one call
    assert calls == [3, 3, 2, 2, 1, 1, 3]
    assert [u.stream for u in got[:3]] == ["deck1", "deck2", "deck3"]


def test_a_second_pass_without_end_differs_and_end_restores(
    tracker: rtmer.Tracker, stereo_clip: tuple[Path, np.ndarray, int]
) -> None:
    _, data, rate = stereo_clip
    first = tracker.process(data, sample_rate=rate)
    second = tracker.process(data, sample_rate=rate)
    assert [u.seq for u in second] == list(range(len(first), len(first) + len(second)))
    assert [u.valence_raw for u in second[: len(first)]] != [u.valence_raw for u in first]
    tracker.end()
    third = tracker.process(data, sample_rate=rate)
    tracker.reset()
    assert numbers(third) == numbers(first)


def test_end_flushes_the_partial_hop_and_reset_drops_it(tracker: rtmer.Tracker) -> None:
    x = music_like(1.2, 22050, seed=9)
    assert [u.t for u in tracker.process(x, sample_rate=22050, stream="a")] == [0.5, 1.0]
    tracker.reset("a")
    assert tracker.streams == []
    assert [u.t for u in tracker.process(x, sample_rate=22050, stream="a")] == [0.5, 1.0]
    last = tracker.end("a")
    assert [(u.stream, u.seq, u.t) for u in last] == [("a", 2, 1.5)]
    assert tracker.end() == []  # nothing left
    # a zero-length first block starts a stream; ending it gives nothing
    assert tracker.process(np.zeros((0, 2), np.float32), sample_rate=44100, stream="b") == []
    assert tracker.streams == ["b"]
    assert tracker.end("b") == [] and tracker.streams == []
    with pytest.raises(ConfigError, match=r"stream='nope' is not being tracked \(tracking: none\)"):
        tracker.end("nope")
    with pytest.raises(ConfigError, match=r"stream='nope' is not being tracked"):
        tracker.reset("nope")


BAD_BLOCKS: list[tuple[Any, int, str]] = [
    (np.zeros(100, np.complex64), 44100, r"block dtype=complex64 is not audio; expected float32 or float64"),
    (np.zeros(100, np.int64), 44100, r"block dtype=int64 is not audio; .*int16/int32 PCM"),
    (np.zeros(100, bool), 44100, r"block dtype=bool is not audio"),
    (np.array(["a", "b"]), 44100, r"block dtype=<U1 is not audio"),
    (np.zeros((10, 2, 2)), 44100, r"block has shape \(10, 2, 2\); expected \[frames\] \(mono\) or \[frames, channels"),
    (np.float32(0.5), 44100, r"block has shape \(\); expected \[frames\]"),
    (np.zeros((100, 0), np.float32), 44100, r"block has shape \(100, 0\): 0 channels, expected 1 to 256"),
    (np.zeros((2, 44100)), 44100, r"block has shape \(2, 44100\): 44100 channels, expected 1 to 256 \(a \[channels,.* block\.T"),
    (np.array([0.0, np.nan, 0.1, np.inf]), 44100, r"block has 2 non-finite samples .* the first at frame 1"),
    (np.array([[0.0, 0.0], [1e39, 0.0]]), 44100, r"block has 1 non-finite samples \(NaN, inf, or beyond float32\), the first"),
    (np.zeros(100, np.float32), 0, r"sample_rate=0 must be a positive integer \[Hz\]"),
    (np.zeros(100, np.float32), -8000, r"sample_rate=-8000 must be a positive integer \[Hz\]"),
    (np.zeros(100), 44100.0, r"sample_rate=44100\.0 must be a positive integer \[Hz\]"),  # type: ignore[list-item]
    (np.zeros(100, np.float32), True, r"sample_rate=True must be a positive integer \[Hz\]"),
]


@pytest.mark.parametrize(("block", "rate", "message"), BAD_BLOCKS)
def test_bad_input_raises_naming_the_value_and_keeps_every_stream(
    tracker: rtmer.Tracker, block: Any, rate: Any, message: str
) -> None:
    tracker.reset()
    good = music_like(1.7, 16000, seed=1)
    expected = numbers(whole(tracker, good, 16000, "good"))
    first = tracker.process(good[:9000], sample_rate=16000, stream="good")
    with pytest.raises(AudioInputError, match=rf"audio input 'bad': {message}"):
        tracker.process_streams({"good": good[9000:], "bad": block}, sample_rate={"good": 16000, "bad": rate})
    assert tracker.streams == ["good"]  # neither stream took anything from the failed call
    got = first + tracker.process(good[9000:], sample_rate=16000, stream="good") + tracker.end()
    assert numbers(got) == expected


def test_a_stream_keeps_its_rate_and_channels_until_it_ends(tracker: rtmer.Tracker) -> None:
    tracker.process(np.zeros((10, 2), np.float32), sample_rate=44100, stream="deck")
    with pytest.raises(AudioInputError, match=r"'deck': block has 1 channels, but the stream started at 44100 Hz with 2 "):
        tracker.process(np.zeros(10, np.float32), sample_rate=44100, stream="deck")
    with pytest.raises(AudioInputError, match=r"block has sample_rate=48000 \[Hz\], but the stream started at 44100"):
        tracker.process(np.zeros((10, 2), np.float32), sample_rate=48000, stream="deck")
    tracker.end("deck")
    assert tracker.process(np.zeros(10, np.float32), sample_rate=48000, stream="deck") == []
    tracker.reset()


def test_bad_arguments_raise_config_errors(tracker: rtmer.Tracker) -> None:
    with pytest.raises(ConfigError, match=r"stream='' must be a non-empty string"):
        tracker.process(np.zeros(10, np.float32), sample_rate=16000, stream="")
    with pytest.raises(ConfigError, match=r"sample_rate has no rate for stream 'b' \(has \['a'\]\)"):
        tracker.process_streams({"a": np.zeros(1), "b": np.zeros(1)}, sample_rate={"a": 16000})
    assert tracker.streams == []
    with pytest.raises(ConfigError, match=r"smoothing='kalman' must be one of one-euro, ema, none"):
        rtmer.Tracker(smoothing="kalman")
    with pytest.raises(ConfigError, match=r"threads=0 must be a positive integer"):
        rtmer.Tracker(threads=0)
    with pytest.raises(ConfigError, match=r"silence_db=3 must be a number <= 0"):
        rtmer.Tracker(silence_db=3)
    with pytest.raises(ModelContractError, match=r"'larg': is neither a shipped model"):
        rtmer.Tracker("larg")


def test_bad_argument_types_and_an_empty_model_are_named(tracker: rtmer.Tracker) -> None:
    with pytest.raises(ConfigError, match=r"model='' is empty; give a shipped model's name \(default, large\) or"):
        rtmer.Tracker(model="")
    with pytest.raises(TypeError, match=r"model=5 must be a str or pathlib\.Path \(a shipped model's name or "
                       r"an \.onnx file's path\), got int"):
        rtmer.Tracker(model=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"blocks must be a mapping of stream id to block, e.g. \{'deck1': block\}; "
                       r"got list"):
        tracker.process_streams([np.zeros(10)], sample_rate=16000)  # type: ignore[arg-type]
    assert tracker.streams == []


def test_declared_timing(tracker: rtmer.Tracker) -> None:
    assert tracker.hop_seconds == 0.5 and tracker.info.sample_rate == 16000
    assert tracker.latency["hop_buffer"] == 0.5 and tracker.latency["total"] > 0.5


def readme_python_api_examples() -> list[str]:
    text = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python API") : text.index("## Protocols")]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_tracker_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    examples = [code for code in readme_python_api_examples() if "rtmer.client" not in code]
    assert len(examples) == 2
    exec(compile(examples[0], "README.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10 and lines[0].startswith(" 0.5 s  valence ") and lines[-1].endswith("(last)")
    exec(compile(examples[1], "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "[('deck1', 0.5), ('deck2', 0.5), ('deck1', 1.0), ('deck2', 1.0)]"
