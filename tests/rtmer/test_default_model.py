"""The embedded default model: its contract, its card, and values that make musical sense."""

import json
from pathlib import Path

import numpy as np
import pytest

from rtmer.demo import SECTIONS, SynthMusic
from rtmer.model import DEFAULT_MODEL_PATH, StreamingModel

SECTION_SECONDS = 30.0


@pytest.fixture(scope="module")
def model() -> StreamingModel:
    return StreamingModel(DEFAULT_MODEL_PATH)


def test_the_default_model_is_small_trained_and_carries_its_cv_metrics(model: StreamingModel) -> None:
    assert DEFAULT_MODEL_PATH.stat().st_size < 1_000_000
    assert model.info.name == "rtmer-default" and model.info.sample_rate == 16000 and model.info.hop_seconds == 0.5
    metrics = json.loads(model.info.metadata["metrics"])
    assert set(metrics) == {"piano", "augmented"}
    card = DEFAULT_MODEL_PATH.with_suffix(".md").read_text()
    for dimension in ("valence", "arousal"):
        rmse = metrics["piano"]["model"][dimension]["rmse"]
        assert f"{rmse:.3f}" in card  # the card quotes the file's own figures
        assert rmse < metrics["piano"]["train_mean"][dimension]["rmse"]


@pytest.fixture(scope="module")
def section_means(model: StreamingModel) -> dict[str, np.ndarray]:
    """Mean raw (valence, arousal) over the last 10 s of each 30 s demo section, streamed."""
    music = SynthMusic(rate=model.info.sample_rate, section_seconds=SECTION_SECONDS)
    audio = music.render(SECTION_SECONDS * len(SECTIONS))
    hop = model.info.hop_samples
    state = model.initial_state(1)
    outputs = []
    for start in range(0, len(audio) - hop + 1, hop):
        va, state = model.step(audio[None, start : start + hop], state)
        outputs.append(va[0])
    va = np.array(outputs)
    hops_per_section = int(SECTION_SECONDS / model.info.hop_seconds)
    return {s.name: va[(k + 1) * hops_per_section - 20 : (k + 1) * hops_per_section].mean(axis=0) for k, s in enumerate(SECTIONS)}


def test_energetic_music_has_higher_arousal_than_calm_music(section_means: dict[str, np.ndarray]) -> None:
    for loud, quiet in (("excited", "calm"), ("excited", "sad"), ("tense", "calm"), ("tense", "sad")):
        assert section_means[loud][1] > section_means[quiet][1] + 0.1, section_means


def test_bright_major_music_has_higher_valence_than_dark_minor_music(section_means: dict[str, np.ndarray]) -> None:
    assert section_means["excited"][0] > section_means["sad"][0] + 0.1, section_means
