"""The demo's music (``rtmer.app.demo``): shipped renders, looped into sections of any length at any rate."""

import numpy as np
import pytest

from rtmer.app.demo import SECTIONS, SynthMusic, section_audio


def test_every_section_ships_as_20_to_24_s_of_whole_bars() -> None:
    for section in SECTIONS:
        audio = section_audio(section.name, 16000)
        bars = audio.shape[0] / 16000 / (4 * 60.0 / section.bpm)
        assert 19.9 < audio.shape[0] / 16000 < 24.1 and abs(bars - round(bars)) < 0.01, (section.name, bars)
        assert 0.05 < np.max(np.abs(audio)) <= 1.0


def test_sections_follow_each_other_at_the_given_length_and_rate() -> None:
    music = SynthMusic(rate=44100, section_seconds=30.0)  # longer than the renders: they repeat
    assert music.render(1.0).shape == (44100,)
    assert [music.section_at(t) for t in (0.0, 29.9, 30.0, 95.0, 125.0)] == ["calm", "calm", "excited", "tense", "calm"]
    loop = music.render(120.0)
    rms = [float(np.sqrt(np.mean(loop[k * 30 * 44100 + 44100 : (k + 1) * 30 * 44100 - 44100] ** 2))) for k in range(4)]
    assert rms[1] > 2 * rms[0] and rms[3] > 2 * rms[2], rms  # excited and tense are the loud ones


def test_read_hands_out_the_loop_block_by_block_and_wraps() -> None:
    music = SynthMusic(rate=16000, section_seconds=1.0)
    blocks = np.concatenate([music.read(n) for n in (1, 999, 16000, 47000, 4000)])
    assert blocks.shape == (68000, 1)
    assert np.array_equal(blocks[:64000, 0], music.render(4.0)) and np.array_equal(blocks[64000:, 0], music.render(0.25))


def test_seeds_start_the_sections_at_different_bars() -> None:
    a, b = SynthMusic(rate=16000, seed=0).render(40.0), SynthMusic(rate=16000, seed=1).render(40.0)
    assert a.shape == b.shape and not np.allclose(a, b)


@pytest.mark.parametrize("rate, seconds", [(0, 10.0), (16000, 0.05)])
def test_bad_arguments_are_named(rate: int, seconds: float) -> None:
    with pytest.raises(ValueError, match="rate=0|section_seconds=0.05"):
        SynthMusic(rate=rate, section_seconds=seconds)


@pytest.mark.parametrize("seconds", ["0.1", "0.05"])
def test_a_section_too_short_for_its_fades_is_a_usage_error(seconds: str) -> None:
    """Was a ValueError traceback from SynthMusic (exit 1): only <= 0 was checked where the option enters."""
    import io

    from rtmer.app.cli import EXIT_USAGE, main

    err = io.StringIO()
    code = main(["demo", "--section-seconds", seconds, "--seconds", "1"], stdout=io.StringIO(), stderr=err)
    assert code == EXIT_USAGE
    assert f"--section-seconds={float(seconds)!r} must be more than 0.1 [s]" in err.getvalue()
    assert "Traceback" not in err.getvalue()
