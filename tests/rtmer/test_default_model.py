"""The shipped models: their contract, their cards, and a demo whose sections read as what they claim."""

import json
from dataclasses import dataclass

import numpy as np
import pytest

from rtmer import Tracker
from rtmer.app.demo import SECTIONS, SynthMusic
from rtmer.core.model import StreamingModel, resolve_model

SIZE_LIMITS = {"default": 1_000_000, "large": 2 << 20}  # the issue allows the large 25 MB; the repository keeps tracked files under 2 MiB
MAIN_COMMAND_SECONDS = 30.0  # the README's: rtmer demo --seconds 30
SETTLING_SECONDS = 4.0  # the start of each section that is not scored


@pytest.fixture(scope="module", params=list(SIZE_LIMITS))
def model(request: pytest.FixtureRequest) -> StreamingModel:
    return StreamingModel(resolve_model(request.param))


def test_shipped_models_are_small_trained_and_carry_their_cv_figures(model: StreamingModel) -> None:
    name = model.info.name.removeprefix("rtmer-")
    path = resolve_model(name)
    assert path.stat().st_size < SIZE_LIMITS[name]
    assert model.info.sample_rate == 16000 and model.info.hop_seconds == 0.5
    metrics = json.loads(model.info.metadata["metrics"])
    assert {"4q", "musifeast17", "vgmidi", "reaction"} <= set(metrics)
    card = path.with_suffix(".md").read_text()
    assert f"{metrics['4q']['quadrant_accuracy']:.3f}" in card  # the card quotes the file's own figures
    assert f"{metrics['musifeast17']['valence']['pearson_r']:.3f}" in card
    assert metrics["4q"]["arousal_auc"] > 0.5 and metrics["4q"]["valence_auc"] > 0.5


def test_a_stream_reads_the_same_whatever_shares_its_call(model: StreamingModel) -> None:
    """Batched with other streams, a stream's outputs and state are bit for bit those it gets alone."""
    rng = np.random.default_rng(5)
    audio = (0.2 * rng.standard_normal((5, 3, model.info.hop_samples))).astype(np.float32)
    together = model.initial_state(5)
    alone = [model.initial_state(1) for _ in range(5)]
    for hop in range(3):
        va_together, together = model.step(audio[:, hop], together)
        for stream in range(5):
            va_alone, alone[stream] = model.step(audio[stream : stream + 1, hop], alone[stream])
            assert np.array_equal(va_alone[0], va_together[stream])
            assert np.array_equal(alone[stream][0], together[stream])


@dataclass(frozen=True)
class SectionReading:
    moods: list[str]  # the label of each hop after the section's first SETTLING_SECONDS
    mean: np.ndarray  # mean smoothed (valence, arousal) over those hops


@pytest.fixture(scope="module")
def demo_readings(model: StreamingModel) -> dict[str, SectionReading]:
    """What `rtmer demo --seconds 30` shows: one pass of the loop at the default section length, from a cold start, smoothed and labelled as live."""
    tracker = Tracker(model=model.path)
    music = SynthMusic(rate=model.info.sample_rate)
    audio = music.read(int(round(music.section_seconds * len(SECTIONS) * music.rate)))
    updates = tracker.process(audio, sample_rate=music.rate)
    readings = {}
    for k, section in enumerate(SECTIONS):
        start, end = k * music.section_seconds + SETTLING_SECONDS, (k + 1) * music.section_seconds
        settled = [u for u in updates if start < u.t <= end + 1e-9]
        readings[section.name] = SectionReading([u.mood for u in settled], np.mean([[u.valence, u.arousal] for u in settled], axis=0))
    return readings


def test_the_main_command_plays_all_four_sections() -> None:
    assert SynthMusic(rate=16000).section_seconds * len(SECTIONS) <= MAIN_COMMAND_SECONDS


# (model, section) -> how it misreads (issue 19, open); each is a strict xfail, so it must go once the model reads the section right.
KNOWN_MISREADINGS: dict[tuple[str, str], str] = {
    ("rtmer-default", "calm"): "its zero point (valence 0.166 subtracted) puts quiet major music near 0: sad, sad, sad, then calm (4 of 7 hops)",
    ("rtmer-default", "excited"): "still calm 5 s into the section after the calm one, then excited (5 of 7 hops)",
    ("rtmer-large", "sad"): "the minor lament reads at valence -0.02: calm in 5 of 7 hops, sad in the last 2",
}


@pytest.mark.parametrize("section", [s.name for s in SECTIONS])
def test_each_demo_section_shows_its_own_mood_in_three_hops_of_four(model: StreamingModel, demo_readings: dict[str, SectionReading], section: str,
                                                                    request: pytest.FixtureRequest) -> None:  # fmt: skip
    known = KNOWN_MISREADINGS.get((model.info.name, section))
    if known:
        request.applymarker(pytest.mark.xfail(reason=known, strict=True))
    moods = demo_readings[section].moods  # the section names are the mood names
    assert len(moods) >= 6 and moods.count(section) >= 0.75 * len(moods), {name: "".join(m[0] for m in r.moods) for name, r in demo_readings.items()}


def test_bright_major_music_reads_more_pleasant_than_dark_music(demo_readings: dict[str, SectionReading]) -> None:
    means = {name: reading.mean for name, reading in demo_readings.items()}
    assert means["calm"][0] > means["tense"][0] + 0.1 and means["excited"][0] > means["sad"][0] + 0.1, means


def test_energetic_music_has_higher_arousal_than_calm_music(demo_readings: dict[str, SectionReading]) -> None:
    means = {name: reading.mean for name, reading in demo_readings.items()}
    for loud, quiet in (("excited", "calm"), ("excited", "sad"), ("tense", "calm"), ("tense", "sad")):
        assert means[loud][1] > means[quiet][1] + 0.1, means
