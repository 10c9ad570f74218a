"""Cross-validate, train and export rtmer-large and rtmer-default on real recordings and VGMIDI.

    python -m training real --size large --out runs/large --export rtmer-large
    python -m training real --size default --teacher runs/large --out runs/default --export rtmer-default

``large`` is the streaming MusiCNN backbone with a recurrent head trained on its cached
embeddings. ``default`` is a small causal student on rtmer's own front end, trained on the
labels and on the large model's per-hop estimates (each fold's student learns from that
fold's large head, so no held-out clip reaches it through its teacher).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from sklearn.model_selection import GroupShuffleSplit
from tqdm import tqdm

from rtmer.errors import AudioInputError
from training.datasets import load_audio, load_vgmidi
from training.evaluate import metrics
from training.features import cached_features
from training.frontend import FRAMES_PER_HOP, HOP_SAMPLES, N_MELS, SAMPLE_RATE, FrontEnd, clip_features
from training.large import READOUT_SETTINGS, LargeEnsemble, LargeHead, LinearReadout, fit_readout
from training.mixed import Item, MixedConfig, train_mixed
from training.models import Fusion, Head, Hybrid, zero_states
from training.musicnn import MSD_TAGS, PENULTIMATE
from training.protocol import TEST_PART_FILE, load_test_part, vgmidi_test_id
from training.realeval import (
    LoudnessBaseline,
    clip_estimate,
    cluster_metrics,
    fold_indices,
    medley_audio,
    medley_pairs,
    quadrant_metrics,
    rating_metrics,
    reaction,
    reaction_summary,
    zero_points,
)
from training.realmusic import label_signs, load_realmusic
from training.teacher import DEFAULT_WEIGHTS, cached_embeddings, clip_embeddings, load_backbone

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
LOG_RMS = N_MELS  # column of the front-end features
WARMUP_HOPS = 10
MEDLEYS_PER_DIRECTION = 10

Predict = Callable[[Item], np.ndarray]
PredictAudio = Callable[[np.ndarray], np.ndarray]


@dataclass
class Entry:
    """One recording with its labels and both input kinds (embeddings only when needed)."""

    item: Item  # inputs: front-end features
    audio_path: Path
    embeddings: np.ndarray | None
    loudness: np.ndarray  # [2]: mean and std of log RMS over the hops after the warm-up


def loudness_of(features: np.ndarray) -> np.ndarray:
    per_hop = features[:, LOG_RMS].astype(np.float32).reshape(-1, FRAMES_PER_HOP).mean(axis=1)
    settled = per_hop[WARMUP_HOPS:] if len(per_hop) > WARMUP_HOPS else per_hop
    return np.array([settled.mean(), settled.std()], np.float32)


def load_corpus(args: argparse.Namespace, with_embeddings: bool) -> list[Entry]:
    """Every usable recording of the real sets and the VGMIDI renders outside the test part; unreadable ones are counted and named."""
    front_end = FrontEnd().eval()
    backbone = load_backbone(args.teacher_weights) if with_embeddings else None
    test_part = load_test_part(args.test_part)
    candidates: list[tuple[Item, Path]] = []
    withheld = 0
    for clip in load_realmusic(args.realmusic_root):
        if clip.clip_id in test_part:
            withheld += 1
            continue
        item = Item(clip.clip_id, clip.dataset, clip.group, f"{clip.dataset}:{clip.stratum}", np.empty(0), clip.va, clip.quadrant, clip.gems, cluster=clip.cluster)
        candidates.append((item, clip.audio_path))
    if args.variants:
        from training.render import render_vgmidi

        pieces = load_vgmidi(args.vgmidi_root)
        withheld += sum(vgmidi_test_id(piece.piece_id) in test_part for piece in pieces)
        pieces = [piece for piece in pieces if vgmidi_test_id(piece.piece_id) not in test_part]
        for recording in render_vgmidi(pieces, args.cache / "renders", variants=args.variants, seed=args.seed):
            item = Item(f"{recording.piece_id}/{recording.variant}", "vgmidi", f"piece:{recording.piece_id}", "vgmidi", np.empty(0),
                        hop_labels=recording.labels, variant=recording.variant)
            candidates.append((item, recording.audio_path))
    entries, skipped = [], []
    for item, path in tqdm(candidates, desc="features and embeddings", unit="file"):
        try:
            features = cached_features(path, args.cache / "features", front_end)
            embeddings = cached_embeddings(path, args.cache / "embeddings", backbone) if backbone is not None else None
        except AudioInputError as error:
            skipped.append(f"{path}: {error.reason}")
            continue
        if item.hop_labels is not None:
            n_hops = len(features) // FRAMES_PER_HOP
            item.hop_labels = item.hop_labels[: max(0, n_hops)]
        entries.append(Entry(replace(item, inputs=features), path, embeddings, loudness_of(features)))
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    print(f"{len(entries)} recordings ({len(skipped)} skipped; {withheld} clips and pieces withheld as the test part)", file=sys.stderr)
    return entries


def split_validation(indices: np.ndarray, entries: Sequence[Entry], seed: int) -> tuple[np.ndarray, np.ndarray]:
    groups = [entries[i].item.group for i in indices]
    train, val = next(GroupShuffleSplit(n_splits=1, test_size=0.1, random_state=seed).split(indices, groups=groups))
    return indices[train], indices[val]


# --- the two model sizes ---------------------------------------------------------------------


def embedding_items(entries: Sequence[Entry]) -> list[Item]:
    return [replace(e.item, inputs=e.embeddings) for e in entries]


def train_large(entries: Sequence[Entry], train: np.ndarray, val: np.ndarray, config: MixedConfig, desc: str, n_heads: int, readout_share: float = 0.0) -> LargeEnsemble:
    """``n_heads`` heads, each from its own seed, averaged; with a ``readout_share``, blended with a linear readout fitted on train and val (it needs no early stopping)."""
    items = embedding_items(entries)
    train_embeddings = np.concatenate([items[i].inputs for i in train]).astype(np.float32)
    pad = np.zeros((1, items[0].inputs.shape[1]), np.float32)
    heads = []
    for k in range(n_heads):
        torch.manual_seed(config.seed + 1000 * k)  # the initial weights: torch's own seed differs in every process
        head = LargeHead()
        head.fit_normalizer(train_embeddings)
        train_mixed(head, head.run_cold, [items[i] for i in train], [items[i] for i in val], replace(config, seed=config.seed + 1000 * k),
                    rows_per_hop=1, pad_row=pad, desc=f"{desc} head {k + 1}/{n_heads}")  # fmt: skip
        heads.append(head.eval())
    readout = fit_readout([items[i] for i in np.concatenate([train, val])]) if readout_share else None
    return LargeEnsemble(heads, readout, readout_share).eval()


def tag_probabilities(embeddings: np.ndarray | None) -> np.ndarray | None:
    """The tagger's per-hop MSD tag probabilities [n_hops, 50], from its cached embeddings (tag logits last)."""
    if embeddings is None:
        return None
    return (1 / (1 + np.exp(-embeddings[:, PENULTIMATE:].astype(np.float32)))).astype(np.float32)


def student_items(entries: Sequence[Entry], teacher: dict[str, np.ndarray]) -> list[Item]:
    return [replace(e.item, teacher=teacher.get(e.item.item_id), teacher_tags=tag_probabilities(e.embeddings)) for e in entries]


def build_student(spec: str) -> Head:
    from training.__main__ import build_spec

    return build_spec(spec)


def train_student(spec: str, entries: Sequence[Entry], teacher: dict[str, np.ndarray], train: np.ndarray, val: np.ndarray, config: MixedConfig, desc: str) -> Head:
    items = student_items(entries, teacher)
    torch.manual_seed(config.seed)  # the initial weights: torch's own seed differs in every process
    head = build_student(spec)
    frames = np.concatenate([items[i].inputs[::7] for i in train]).astype(np.float64)
    mean, std = frames.mean(axis=0).astype(np.float32), frames.std(axis=0).astype(np.float32)
    members = head.members if isinstance(head, Fusion) else [head]
    for member in members:
        member.normalizer.fit(mean, std)
    silence = clip_features(FrontEnd(), np.zeros(HOP_SAMPLES, np.float32))[:1]
    tags = None
    if config.tags_weight > 0:
        if not isinstance(head, Hybrid):
            raise ValueError(f"tags_weight={config.tags_weight} needs a hybrid student (an MLP hidden layer to read the tags from); got {spec!r}")
        tags = torch.nn.Linear(head.mlp[0].out_features, len(MSD_TAGS))  # training only: not part of the exported model

    def run(inputs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        states = zero_states(head, inputs.shape[0])
        if tags is None:
            return head(inputs, states)[0], {}
        va, _, hidden = head.forward_with_hidden(inputs, states)  # type: ignore[operator]
        return va, {"tags": tags(hidden)}

    trained = head if tags is None else torch.nn.ModuleDict({"head": head, "tags": tags})
    train_mixed(trained, run, [items[i] for i in train], [items[i] for i in val], config, rows_per_hop=FRAMES_PER_HOP, pad_row=silence, desc=desc)
    return head.eval()


def large_predictors(head: LargeEnsemble, backbone: torch.nn.Module) -> tuple[Predict, PredictAudio]:
    @torch.no_grad()
    def on_embeddings(embeddings: np.ndarray) -> np.ndarray:
        va, _ = head.run_cold(torch.from_numpy(embeddings.astype(np.float32))[None])
        return va[0].numpy()

    return (lambda item: on_embeddings(item.inputs)), (lambda audio: on_embeddings(clip_embeddings(backbone, audio)))  # type: ignore[arg-type]


def student_predictors(head: Head) -> tuple[Predict, PredictAudio]:
    front_end = FrontEnd().eval()

    @torch.no_grad()
    def on_features(features: np.ndarray) -> np.ndarray:
        va, _ = head(torch.from_numpy(features.astype(np.float32))[None], zero_states(head, 1))
        return va[0].numpy()

    return (lambda item: on_features(item.inputs)), (lambda audio: on_features(clip_features(front_end, audio)))


# --- evaluation ---------------------------------------------------------------------------------


@dataclass
class Pool:
    """Held-out results gathered over the folds."""

    rated: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]  # model, train mean, loudness, label
    quadrant: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]
    clustered: list[tuple[np.ndarray, int]]  # model, MIREX cluster
    vgmidi: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]  # condition -> (model, train mean, labels) per hop
    moves: list[tuple[str, float | None]]


def evaluate_fold(entries: Sequence[Entry], items: Sequence[Item], train: np.ndarray, test: np.ndarray, predict: Predict, predict_audio: PredictAudio, pool: Pool, seed: int) -> dict:
    rated_train = [i for i in train if items[i].va is not None]
    quadrant_train = [i for i in train if items[i].quadrant is not None]
    # a set held out whole (--hold-out-set) leaves a baseline nothing to fit: it then says 0, no information
    train_mean = np.mean([items[i].va for i in rated_train], axis=0) if rated_train else np.zeros(2)
    hop_mean = np.concatenate([items[i].hop_labels for i in train if items[i].hop_labels is not None]).mean(axis=0) if any(items[i].hop_labels is not None for i in train) else np.zeros(2)
    loudness = LoudnessBaseline.fit(
        np.stack([entries[i].loudness for i in rated_train]), np.stack([items[i].va for i in rated_train]),
        np.stack([entries[i].loudness for i in quadrant_train]), np.array([items[i].quadrant for i in quadrant_train]),
    ) if rated_train and quadrant_train else None  # fmt: skip
    fold_rated, fold_quadrant, fold_clustered, quadrant_test = [], [], [], []
    for i in test:
        item = items[i]
        if item.dataset == "emotify":
            continue
        per_hop = predict(item)
        if item.va is not None:
            entry = (clip_estimate(per_hop), train_mean, loudness.rate(entries[i].loudness[None])[0] if loudness else np.zeros(2), item.va)
            pool.rated.append(entry)
            fold_rated.append(entry)
        if item.quadrant is not None:
            entry_q = (clip_estimate(per_hop), train_mean, loudness.signs(entries[i].loudness[None])[0] if loudness else np.zeros(2), item.quadrant)
            pool.quadrant.append(entry_q)
            fold_quadrant.append(entry_q)
            quadrant_test.append(i)
        if item.cluster is not None:
            fold_clustered.append((clip_estimate(per_hop), item.cluster))
        if item.hop_labels is not None and len(item.hop_labels):
            condition = "piano" if item.variant == "piano" else "augmented"
            labels = item.hop_labels[: len(per_hop)]
            pool.vgmidi.setdefault(condition, []).append((per_hop[: len(labels)], np.broadcast_to(hop_mean, labels.shape), labels))
    quadrants = np.array([items[i].quadrant for i in quadrant_test])
    fold_moves = []
    for a, b in medley_pairs(quadrants, np.random.default_rng(seed), MEDLEYS_PER_DIRECTION):
        ia, ib = quadrant_test[a], quadrant_test[b]
        audio, switch = medley_audio(load_audio(entries[ia].audio_path, SAMPLE_RATE), load_audio(entries[ib].audio_path, SAMPLE_RATE), SAMPLE_RATE)
        fold_moves += reaction(predict_audio(audio), switch, items[ia].quadrant, items[ib].quadrant)  # type: ignore[arg-type]
    pool.moves += fold_moves
    pool.clustered += fold_clustered
    report: dict = {"test_items": len(test), "reaction": reaction_summary(fold_moves)}
    if fold_rated:
        report["musifeast17"] = rating_metrics(np.stack([r[0] for r in fold_rated]), np.stack([r[3] for r in fold_rated]))
    if fold_quadrant:
        report["4q"] = quadrant_metrics(np.stack([q[0] for q in fold_quadrant]), np.array([q[3] for q in fold_quadrant]))
    if fold_clustered:
        report["mirexlike"] = cluster_metrics(np.stack([c[0] for c in fold_clustered]), np.array([c[1] for c in fold_clustered]))
    return report


def calibration(pool: Pool) -> np.ndarray:
    """The (valence, arousal) zero points of the pooled held-out estimates of every set with a sign: MUSIFEAST-17's ratings, 4Q, MIREX-like."""
    estimates = [r[0] for r in pool.rated] + [q[0] for q in pool.quadrant] + [c[0] for c in pool.clustered]
    signs = [label_signs(None, None, r[3]) for r in pool.rated] + [label_signs(q[3], None) for q in pool.quadrant] + [label_signs(None, c[1]) for c in pool.clustered]
    return zero_points(estimates, signs)


def final_zero_points(run_dir: Path) -> np.ndarray:
    """The zero points of a run's final model, from its own estimates of the development part's signed clips.

    Each fold's model leans its own way (rtmer-default's final student read 14% of its own 4Q
    clips below 0 where its fold students read 31% of theirs), so the folds' zero points do not
    carry over to the final model; its own estimates, on clips it was trained on, tell its lean.
    """
    args = argparse.Namespace(**json.loads((run_dir / "run.json").read_text())["args"])
    for key in ("realmusic_root", "vgmidi_root", "cache", "teacher_weights", "test_part"):
        setattr(args, key, Path(getattr(args, key)))
    args.variants = 0  # VGMIDI has no signs
    saved = torch.load(run_dir / "final.pt", weights_only=True)
    entries = load_corpus(args, with_embeddings=args.size == "large")
    if args.size == "large":
        head = LargeEnsemble([LargeHead() for _ in range(saved["heads"])], LinearReadout() if saved.get("readout_share") else None, saved.get("readout_share", 0.0))
        head.load_state_dict(saved["state_dict"])
        predict, _ = large_predictors(head.eval(), load_backbone(args.teacher_weights))
        items = embedding_items(entries)
    else:
        student = build_student(saved["model"])
        student.load_state_dict(saved["state_dict"])
        predict, _ = student_predictors(student.eval())
        items = [e.item for e in entries]
    estimates, signs = [], []
    for item in items:
        sign = label_signs(item.quadrant, item.cluster, item.va)
        if sign is not None:
            estimates.append(clip_estimate(predict(item)))
            signs.append(sign)
    return zero_points(estimates, signs)


def shifted(pool: Pool, offset: np.ndarray) -> Pool:
    """The pool with the model's estimates less ``offset`` and clipped to [-1, 1], as the exported model gives them; the medleys are not streamed again."""
    def move(x: np.ndarray) -> np.ndarray:
        return np.clip(x - offset, -1.0, 1.0)

    return Pool(
        [(move(m), t, l, y) for m, t, l, y in pool.rated],
        [(move(m), t, l, q) for m, t, l, q in pool.quadrant],
        [(move(m), c) for m, c in pool.clustered],
        {condition: [(move(m), t, y) for m, t, y in rows] for condition, rows in pool.vgmidi.items()},
        pool.moves,
    )


def pooled_report(pool: Pool) -> dict:
    report: dict = {}
    if pool.rated:
        labels = np.stack([r[3] for r in pool.rated])
        report["musifeast17"] = {"clips": len(labels)}
        for index, name in enumerate(("model", "train_mean", "loudness")):
            report["musifeast17"][name] = rating_metrics(np.stack([r[index] for r in pool.rated]), labels)
    if pool.quadrant:
        quadrants = np.array([q[3] for q in pool.quadrant])
        report["4q"] = {"clips": len(quadrants)}
        for index, name in enumerate(("model", "train_mean", "loudness")):
            report["4q"][name] = quadrant_metrics(np.stack([q[index] for q in pool.quadrant]), quadrants)
    if pool.clustered:
        report["mirexlike"] = {"clips": len(pool.clustered), "model": cluster_metrics(np.stack([c[0] for c in pool.clustered]), np.array([c[1] for c in pool.clustered]))}
    report["vgmidi"] = {}
    for condition, rows in pool.vgmidi.items():
        labels = np.concatenate([r[2] for r in rows])
        report["vgmidi"][condition] = {
            "hops": len(labels),
            "model": metrics(np.concatenate([r[0] for r in rows]), labels),
            "train_mean": metrics(np.concatenate([r[1] for r in rows]), labels),
        }
    report["reaction"] = reaction_summary(pool.moves)
    return report


# --- the command ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", choices=("large", "default"), required=True)
    parser.add_argument("--student", default="fusion:crnn+hybrid", help="architecture of the default model (see --model of train)")
    parser.add_argument("--heads", type=int, default=1, help="large: heads averaged, each from its own seed")
    parser.add_argument("--readout-share", type=float, default=0.0, help="large: share of a linear readout (ridge on clip-mean embeddings) blended with the heads' mean")
    parser.add_argument("--teacher", type=Path, help="the large model's run folder (for --size default)")
    parser.add_argument("--realmusic-root", type=Path, default=SHARED / "realmusic")
    parser.add_argument("--vgmidi-root", type=Path, default=SHARED / "vgmidi")
    parser.add_argument("--variants", type=int, default=2, help="VGMIDI renders per piece (0: no VGMIDI)")
    parser.add_argument("--teacher-weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=MixedConfig.epochs)
    parser.add_argument("--patience", type=int, default=MixedConfig.patience)
    parser.add_argument("--crop-hops", type=int, default=MixedConfig.crop_hops)
    parser.add_argument("--lr", type=float, default=MixedConfig.learning_rate)
    parser.add_argument("--medley-share", type=float, default=MixedConfig.medley_share)
    parser.add_argument("--cosine", action="store_true", help="learning rate down to 0 along a half cosine over --epochs (default: constant)")
    parser.add_argument("--hop-weight", type=float, default=MixedConfig.hop_weight, help="weight of VGMIDI's time-continuous loss")
    parser.add_argument("--rating-weight", type=float, default=MixedConfig.rating_weight, help="weight of MUSIFEAST-17's rating loss")
    parser.add_argument("--sign-weight", type=float, default=MixedConfig.sign_weight, help="weight of 4Q's sign loss at every hop")
    parser.add_argument("--clip-sign-weight", type=float, default=MixedConfig.clip_sign_weight, help="weight of 4Q's sign loss on a crop's mean estimate of each clip")
    parser.add_argument("--cluster-weight", type=float, default=MixedConfig.cluster_weight, help="weight of a MIREX-like cluster's signs against a 4Q quadrant's")
    parser.add_argument("--calibrate", action="store_true", help="move each dimension's zero so that the estimates read as many clips below 0 as the labels: the CV figures with the folds' pooled zero, the exported model (realcard) with the final model's own")
    parser.add_argument("--rating-offset", action="store_true", help="learn an offset between MUSIFEAST-17's ratings and the model's zero (4Q's boundary); training only")
    parser.add_argument("--teacher-weight", type=float, default=MixedConfig.teacher_weight, help="default: weight of the distillation loss")
    parser.add_argument("--tags-weight", type=float, default=MixedConfig.tags_weight, help="default: weight of the MSD tags (from the tagger) on an auxiliary output")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=REPO / "build")
    parser.add_argument("--test-part", type=Path, default=TEST_PART_FILE, help="the fixed test part's ids (training/protocol.py), never loaded here")
    parser.add_argument("--hold-out-set", choices=("musifeast17", "4q", "mirexlike"), help="cross-set check: one fold, train on the other sets and score this one; no final model")
    parser.add_argument("--out", type=Path, required=True, help="run folder")
    parser.add_argument("--export", metavar="NAME", help="also write models/NAME.onnx and its card")
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")


def load_teacher(run: Path, name: str) -> dict[str, np.ndarray]:
    with np.load(run / f"{name}.npz") as archive:
        return {key: archive[key] for key in archive.files}


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    if args.size == "default" and args.teacher is None:
        print("error: --size default needs --teacher RUN (the large model's run folder)", file=sys.stderr)
        return 2
    if not 0.0 <= args.readout_share < 1.0 or (args.readout_share and args.size != "large"):
        print(f"error: --readout-share {args.readout_share}: expected a share in [0, 1), and only with --size large", file=sys.stderr)
        return 2
    config = MixedConfig(epochs=args.epochs, patience=args.patience, crop_hops=args.crop_hops, learning_rate=args.lr, cosine=args.cosine, medley_share=args.medley_share, hop_weight=args.hop_weight, rating_weight=args.rating_weight, sign_weight=args.sign_weight, clip_sign_weight=args.clip_sign_weight, cluster_weight=args.cluster_weight, rating_offset=args.rating_offset, teacher_weight=args.teacher_weight, tags_weight=args.tags_weight, seed=args.seed)
    entries = load_corpus(args, with_embeddings=args.size == "large" or args.tags_weight > 0)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.hold_out_set:
        folds = [np.flatnonzero([e.item.dataset == args.hold_out_set for e in entries])]
        args.folds = 1
    else:
        folds = fold_indices([e.item.group for e in entries], [e.item.stratum for e in entries], args.folds, args.seed)
    (args.out / "splits.json").write_text(json.dumps({"seed": args.seed, "folds": [[entries[i].item.item_id for i in f] for f in folds]}))
    backbone = load_backbone(args.teacher_weights) if args.size == "large" else None
    pool = Pool([], [], [], {}, [])
    report: dict = {"size": args.size, "config": asdict(config), "folds": []}
    started = time.time()
    everything = np.arange(len(entries))
    for k, test in enumerate(folds):
        rest = np.setdiff1d(everything, test)
        train, val = split_validation(rest, entries, args.seed + k)
        desc = f"fold {k + 1}/{args.folds}"
        if args.size == "large":
            head = train_large(entries, train, val, config, desc, args.heads, args.readout_share)
            predict, predict_audio = large_predictors(head, backbone)  # type: ignore[arg-type]
            items = embedding_items(entries)
            np.savez_compressed(args.out / f"teacher_fold{k}.npz", **{item.item_id: predict(item) for item in items})
        else:
            student = train_student(args.student, entries, load_teacher(args.teacher, f"teacher_fold{k}"), train, val, config, desc)
            predict, predict_audio = student_predictors(student)
            items = [e.item for e in entries]
        fold = evaluate_fold(entries, items, rest, test, predict, predict_audio, pool, args.seed + k)
        report["folds"].append(fold)
        print(json.dumps({key: fold[key] for key in ("musifeast17", "4q", "mirexlike", "reaction") if key in fold}), file=sys.stderr)
    report["pooled"] = pooled_report(pool)
    if args.calibrate:
        # chosen on these folds, so the calibrated figures that depend on the zero (accuracy, recall, shares) are not estimates; the test part's are
        offset = calibration(pool)
        report["calibration"] = {"valence": float(offset[0]), "arousal": float(offset[1])}
        report["pooled_calibrated"] = pooled_report(shifted(pool, offset))
    (args.out / "cv.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report["pooled"], indent=1))
    if args.hold_out_set:
        (args.out / "run.json").write_text(json.dumps({"args": vars(args), "recordings": len(entries)}, indent=1, default=str))
        return 0
    train, val = split_validation(everything, entries, args.seed)
    if args.size == "large":
        head = train_large(entries, train, val, config, "final", args.heads, args.readout_share)
        torch.save({"heads": args.heads, "readout_share": args.readout_share, "state_dict": head.state_dict()}, args.out / "final.pt")
        predict, _ = large_predictors(head, backbone)  # type: ignore[arg-type]
        np.savez_compressed(args.out / "teacher_final.npz", **{item.item_id: predict(item) for item in embedding_items(entries)})
    else:
        student = train_student(args.student, entries, load_teacher(args.teacher, "teacher_final"), train, val, config, "final")
        torch.save({"model": args.student, "state_dict": student.state_dict()}, args.out / "final.pt")
    run_record = {"args": vars(args), "recordings": len(entries), "seeded_init": True, "readout": READOUT_SETTINGS}  # the card quotes these, should they change later
    (args.out / "run.json").write_text(json.dumps(run_record, indent=1, default=str))
    print(f"done in {time.time() - started:.0f} s; run folder {args.out}", file=sys.stderr)
    if args.export:
        from training.realcard import export_real

        export_real(args.out, args.export, args.models_dir)
    return 0
