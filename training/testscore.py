"""Score a model file on the fixed test part (training/protocol.py), through onnxruntime as rtmer runs it.

    python -m training.testscore --model models/rtmer-default.onnx      # writes models/rtmer-default.test.json

Run it once per shipped model, after every choice is made: a figure from here that steers a
choice is no longer an estimate. Each clip streams from a cold state, hop by hop; its
estimate is the mean of its hops after 5 s, as in cross-validation, and the figures are
the same functions' (training/realeval.py). Medleys of test 4Q clips from opposite
quadrants give the reaction time, and the VGMIDI renders of the test pieces the
time-continuous errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from rtmer.core.model import StreamingModel
from training.datasets import load_audio, load_vgmidi
from training.evaluate import metrics
from training.protocol import SHARED, TEST_PART_FILE, load_test_part, vgmidi_test_id
from training.realeval import (
    clip_estimate,
    cluster_metrics,
    medley_audio,
    medley_pairs,
    quadrant_metrics,
    rating_metrics,
    reaction,
    reaction_summary,
)
from training.realmusic import LabelledClip, load_realmusic

MEDLEYS_PER_DIRECTION = 10
BATCH = 64
SEED = 0


def stream(model: StreamingModel, recordings: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per-hop (valence, arousal) [n_hops, 2] of each recording, each from a cold state, ``BATCH`` streams a call."""
    hop = model.info.hop_samples
    out: list[np.ndarray] = []
    for first in tqdm(range(0, len(recordings), BATCH), desc="streaming", unit="batch", leave=False):
        batch = recordings[first : first + BATCH]
        n_hops = [len(audio) // hop for audio in batch]
        audio = np.zeros((len(batch), max(n_hops) * hop), np.float32)
        for row, samples in enumerate(batch):
            audio[row, : n_hops[row] * hop] = samples[: n_hops[row] * hop]
        state = model.initial_state(len(batch))
        va = np.zeros((len(batch), max(n_hops), 2), np.float32)
        for k in range(max(n_hops)):  # a stream's values do not depend on what shares its call (the contract)
            va[:, k], state = model.step(audio[:, k * hop : (k + 1) * hop], state)
        out += [va[row, : n_hops[row]] for row in range(len(batch))]
    return out


def score(model_path: Path, realmusic_root: Path, vgmidi_root: Path, test_part: Path, cache: Path, variants: int) -> dict:
    model = StreamingModel(model_path)
    rate = model.info.sample_rate
    ids = load_test_part(test_part)
    clips = [clip for clip in load_realmusic(realmusic_root) if clip.clip_id in ids and clip.dataset != "emotify"]
    audio = [load_audio(clip.audio_path, rate) for clip in tqdm(clips, desc="decoding", unit="clip", leave=False)]
    estimates = np.stack([clip_estimate(per_hop) for per_hop in stream(model, audio)])
    report: dict = {"model": model.info.name, "test_part": {"seed": json.loads(test_part.read_text())["seed"], "ids": len(ids)}}

    def of(dataset: str) -> list[int]:
        return [k for k, clip in enumerate(clips) if clip.dataset == dataset]

    rated, quadrant, clustered = of("musifeast17"), of("4q"), of("mirexlike")
    if rated:
        report["musifeast17"] = {"clips": len(rated), **rating_metrics(estimates[rated], np.stack([clips[k].va for k in rated]))}  # type: ignore[misc]
    if quadrant:
        quadrants = np.array([clips[k].quadrant for k in quadrant])
        report["4q"] = {"clips": len(quadrant), **quadrant_metrics(estimates[quadrant], quadrants)}
        report["reaction"] = medley_reaction(model, [clips[k] for k in quadrant], [audio[k] for k in quadrant])
    if clustered:
        report["mirexlike"] = {"clips": len(clustered), **cluster_metrics(estimates[clustered], np.array([clips[k].cluster for k in clustered]))}
    if variants:
        report["vgmidi"] = vgmidi_figures(model, vgmidi_root, ids, cache, variants)
    return report


def medley_reaction(model: StreamingModel, clips: Sequence[LabelledClip], audio: Sequence[np.ndarray]) -> dict:
    quadrants = np.array([clip.quadrant for clip in clips])
    pairs = medley_pairs(quadrants, np.random.default_rng(SEED), MEDLEYS_PER_DIRECTION)
    medleys = [medley_audio(audio[a], audio[b], model.info.sample_rate) for a, b in pairs]
    moves = []
    for (a, b), (_, switch), per_hop in zip(pairs, medleys, stream(model, [m for m, _ in medleys])):
        moves += reaction(per_hop, switch, int(quadrants[a]), int(quadrants[b]))
    return reaction_summary(moves)


def vgmidi_figures(model: StreamingModel, root: Path, ids: frozenset[str], cache: Path, variants: int) -> dict:
    from training.render import render_vgmidi

    pieces = [piece for piece in load_vgmidi(root) if vgmidi_test_id(piece.piece_id) in ids]
    recordings = render_vgmidi(pieces, cache / "renders", variants=variants, seed=SEED)
    per_hop = stream(model, [load_audio(r.audio_path, model.info.sample_rate) for r in recordings])
    by_condition: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for recording, estimate in zip(recordings, per_hop):
        labels = recording.labels[: len(estimate) - recording.first_hop]
        condition = "piano" if recording.variant == "piano" else "augmented"
        by_condition.setdefault(condition, []).append((estimate[recording.first_hop : recording.first_hop + len(labels)], labels))
    return {
        condition: {"hops": sum(len(labels) for _, labels in rows), **metrics(np.concatenate([e for e, _ in rows]), np.concatenate([l for _, l in rows]))}
        for condition, rows in by_condition.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.testscore", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="an .onnx file")
    parser.add_argument("--out", type=Path, help="default: the model's path with .test.json")
    parser.add_argument("--realmusic-root", type=Path, default=SHARED / "realmusic")
    parser.add_argument("--vgmidi-root", type=Path, default=SHARED / "vgmidi")
    parser.add_argument("--test-part", type=Path, default=TEST_PART_FILE)
    parser.add_argument("--variants", type=int, default=2, help="VGMIDI renders per test piece (0: none)")
    parser.add_argument("--cache", type=Path, default=Path(__file__).resolve().parent.parent / "build")
    args = parser.parse_args(argv)
    report = score(args.model, args.realmusic_root, args.vgmidi_root, args.test_part, args.cache, args.variants)
    out = args.out or args.model.with_suffix(".test.json")
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
