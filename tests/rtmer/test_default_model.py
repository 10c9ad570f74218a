"""The shipped models: their contract, their cards, and a demo whose sections read as what they claim."""

import json

import numpy as np
import pytest

from rtmer.demo import SECTIONS, SynthMusic
from rtmer.model import StreamingModel, resolve_model
from rtmer.mood import quadrant

SIZE_LIMITS = {"default": 1_000_000, "large": 2 << 20}  # the issue allows the large 25 MB; the repository keeps tracked files under 2 MiB
DEMO_SECTION_SECONDS = 10.0  # rtmer demo's default
SETTLED_SECONDS = 4.0  # the end of each section that is scored


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


@pytest.fixture(scope="module")
def section_means(model: StreamingModel) -> dict[str, np.ndarray]:
    """Mean raw (valence, arousal) over the last 4 s of each demo section, on the loop's second pass, streamed."""
    music = SynthMusic(rate=model.info.sample_rate, section_seconds=DEMO_SECTION_SECONDS)
    loop_seconds = DEMO_SECTION_SECONDS * len(SECTIONS)
    audio = music.render(2 * loop_seconds)
    hop = model.info.hop_samples
    state = model.initial_state(1)
    outputs = []
    for start in range(0, len(audio) - hop + 1, hop):
        va, state = model.step(audio[None, start : start + hop], state)
        outputs.append(va[0])
    va = np.array(outputs)
    per_section, settled = int(DEMO_SECTION_SECONDS / model.info.hop_seconds), int(SETTLED_SECONDS / model.info.hop_seconds)
    first = len(SECTIONS) * per_section
    return {s.name: va[first + (k + 1) * per_section - settled : first + (k + 1) * per_section].mean(axis=0) for k, s in enumerate(SECTIONS)}


# (model, section) -> why it misreads; each entry is a strict xfail, so it must go once the model reads the section right.
KNOWN_MISREADINGS: dict[tuple[str, str], str] = {}


@pytest.mark.parametrize("section", [s.name for s in SECTIONS])
def test_each_demo_section_reads_as_the_mood_it_claims(model: StreamingModel, section_means: dict[str, np.ndarray], section: str, request: pytest.FixtureRequest) -> None:
    known = KNOWN_MISREADINGS.get((model.info.name, section))
    if known:
        request.applymarker(pytest.mark.xfail(reason=f"open (issue 6, item 5): {known}", strict=True))
    assert quadrant(*section_means[section]) == section, section_means  # the section names are the mood names
    if section == "calm":  # bright major music more pleasant than dark minor or dissonant music
        assert section_means["calm"][0] > section_means["tense"][0] + 0.1, section_means
    if section == "excited":
        assert section_means["excited"][0] > section_means["sad"][0] + 0.1, section_means


def test_energetic_music_has_higher_arousal_than_calm_music(section_means: dict[str, np.ndarray]) -> None:
    for loud, quiet in (("excited", "calm"), ("excited", "sad"), ("tense", "calm"), ("tense", "sad")):
        assert section_means[loud][1] > section_means[quiet][1] + 0.1, section_means

