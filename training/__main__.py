"""Command line of the offline trainer.

    python -m training train --model crnn --data vgmidi --folds 5 --export rtmer-default

runs 5-fold cross-validation by piece, trains the final model on every piece, and writes
models/<name>.onnx with its card models/<name>.md. See README.md, "Training".
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from rtmer.errors import ConfigError, DatasetError
from training import datasets
from training.evaluate import folds_by_piece, metrics, plot_curves
from training.features import Clip, load_clips
from training.frontend import FrontEnd, clip_features, HOP_SAMPLES
from training.models import HEADS, Fusion, Head, build_head
from training.train import LOSSES, TrainConfig, labelled_predictions, train_head

REPO = Path(__file__).resolve().parent.parent
DEFAULT_ROOTS = {"vgmidi": REPO.parent / "shared" / "data" / "vgmidi"}
DATASETS = ("vgmidi", "deam", "emomusic", "pmemo")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="cross-validate, train and optionally export a model")
    train.add_argument("--model", default="crnn", help=f"one of {sorted(HEADS)}, or fusion:NAME+NAME[+...]")
    train.add_argument("--data", default="vgmidi", choices=DATASETS)
    train.add_argument("--data-root", type=Path, help="dataset folder (default for vgmidi: ../shared/data/vgmidi)")
    train.add_argument("--variants", type=int, default=4, help="VGMIDI renders per piece: piano plus N-1 augmented")
    train.add_argument("--pieces", type=int, default=0, help="use only the first N pieces (0: all), for quick runs")
    train.add_argument("--folds", type=int, default=5, help="cross-validation folds by piece (0: skip)")
    train.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    train.add_argument("--patience", type=int, default=TrainConfig.patience)
    train.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    train.add_argument("--crop-hops", type=int, default=TrainConfig.crop_hops)
    train.add_argument("--lr", type=float, default=TrainConfig.learning_rate)
    train.add_argument("--loss", default=TrainConfig.loss, choices=LOSSES)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=2)
    train.add_argument("--cache", type=Path, default=REPO / "build", help="renders and feature cache")
    train.add_argument("--out", type=Path, help="run folder (default runs/<model>-<data>)")
    train.add_argument("--export", metavar="NAME", help="also write models/NAME.onnx and models/NAME.md")
    train.add_argument("--models-dir", type=Path, default=REPO / "models", help="where --export writes")
    train.add_argument("--reuse", type=Path, nargs="+", default=[], metavar="RUN",
                       help="load members already trained in these run folders (same data, folds and seed) instead of training them, e.g. to fuse finished runs")
    from training.real import add_arguments as add_real_arguments

    real = commands.add_parser("real", help="rtmer-large or rtmer-default on real recordings (MUSIFEAST-17, 4Q, Emotify) and VGMIDI")
    add_real_arguments(real)
    export = commands.add_parser("export", help="write models/NAME.onnx and its card from a finished run folder")
    export.add_argument("--run", type=Path, required=True, help="run folder written by train")
    export.add_argument("--name", required=True)
    export.add_argument("--models-dir", type=Path, default=REPO / "models")
    return parser.parse_args(argv)


def load_dataset(args: argparse.Namespace) -> tuple[list[Clip], str]:
    root = args.data_root or DEFAULT_ROOTS.get(args.data)
    if root is None:
        raise ConfigError(f"--data {args.data} needs --data-root (the dataset folder)")
    if args.data == "vgmidi":
        from training.render import render_vgmidi

        pieces = datasets.load_vgmidi(root)
        if args.pieces:
            pieces = pieces[: args.pieces]
        recordings = render_vgmidi(pieces, args.cache / "renders", variants=args.variants, seed=args.seed)
        description = f"VGMIDI (Ferreira & Whitehead, ISMIR 2019): {len(pieces)} piano pieces, annotators averaged; rendered with FluidSynth FluidR3_GM, piano plus {args.variants - 1} augmented variants a piece"
    else:
        loader = {"deam": datasets.load_deam, "emomusic": datasets.load_emomusic, "pmemo": datasets.load_pmemo}[args.data]
        recordings = loader(root)
        if args.pieces:
            recordings = recordings[: args.pieces]
        description = f"{args.data} from {root}: {len(recordings)} recordings"
    clips, skipped = load_clips(recordings, args.cache / "features")
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(f"{len(clips)} clips of {len({c.piece_id for c in clips})} pieces; {len(skipped)} skipped", file=sys.stderr)
    if not clips:
        raise DatasetError(f"no usable recordings in {root}")
    return clips, description


def member_names(spec: str) -> list[str]:
    """Member names of a model spec ('crnn', or 'fusion:crnn+hybrid'); checks every name."""
    names = spec.removeprefix("fusion:").split("+") if spec.startswith("fusion:") else [spec]
    for name in names:
        build_head(name)
    return names


def build_spec(spec: str) -> Head:
    members = [build_head(name) for name in member_names(spec)]
    return Fusion(members) if len(members) > 1 else members[0]


def train_spec(
    spec: str, train: list[Clip], val: list[Clip], config: TrainConfig, silence: np.ndarray, desc: str, out: Path, reuse: Sequence[Path] = ()
) -> Head:
    """Train every member of the spec; checkpoints go to out/<desc>-<member>.pt.

    A member whose checkpoint of the same name is in one of the ``reuse`` run folders, of a
    run that finished (it wrote run.json last), is loaded from it instead.
    """
    torch.manual_seed(config.seed)  # the initial weights: torch's own seed differs in every process
    head = build_spec(spec)
    members = head.members if isinstance(head, Fusion) else [head]
    for name, member in zip(member_names(spec), members):
        filename = f"{desc.replace(' ', '-').replace('/', 'of')}-{name}.pt"
        done = [run / filename for run in reuse if (run / "run.json").exists() and (run / filename).exists()]
        if done:
            member.load_state_dict(torch.load(done[0], weights_only=True)["state_dict"])
            print(f"{desc} {name}: loaded {done[0]}", file=sys.stderr)
        else:
            train_head(member, train, val, config, silence=silence, desc=f"{desc} {name}", checkpoint=out / filename)
    return head.eval()


def split_validation(clips: list[Clip], seed: int) -> tuple[list[Clip], list[Clip]]:
    """10% of the pieces (at least one) held out for early stopping."""
    pieces = sorted({clip.piece_id for clip in clips})
    order = np.random.default_rng(seed + 1).permutation(len(pieces))
    val_pieces = {pieces[i] for i in order[: max(1, len(pieces) // 10)]}
    return [c for c in clips if c.piece_id not in val_pieces], [c for c in clips if c.piece_id in val_pieces]


def conditions(clips: list[Clip]) -> dict[str, list[Clip]]:
    """VGMIDI is scored on the piano renders (what annotators heard) and on the augmented ones."""
    variants = {clip.variant for clip in clips}
    if "piano" in variants:
        return {"piano": [c for c in clips if c.variant == "piano"], "augmented": [c for c in clips if c.variant != "piano"]}
    return {"all": clips}


def train_label_mean(clips: list[Clip]) -> np.ndarray:
    """The train-mean predictor: mean annotation over the training pieces' labelled hops."""
    by_piece = {clip.piece_id: clip.labels for clip in clips}
    return np.concatenate(list(by_piece.values())).mean(axis=0)


def cross_validate(args: argparse.Namespace, clips: list[Clip], config: TrainConfig, silence: np.ndarray, out: Path) -> dict:
    folds = folds_by_piece([c.piece_id for c in clips], args.folds, args.seed)
    (out / "splits.json").write_text(json.dumps({"seed": args.seed, "folds": folds}, indent=1))
    pooled: dict[str, dict[str, list[np.ndarray]]] = {}
    report: dict = {"model": args.model, "data": args.data, "seed": args.seed, "config": asdict(config), "folds": []}
    examples: list[tuple[Clip, np.ndarray]] = []
    for k, test_pieces in enumerate(folds):
        held_out = set(test_pieces)
        train, val = split_validation([c for c in clips if c.piece_id not in held_out], args.seed + k)
        test = [c for c in clips if c.piece_id in held_out]
        head = train_spec(args.model, train, val, config, silence, f"fold {k + 1}/{args.folds}", out, args.reuse)
        baseline = train_label_mean(train + val)
        fold_report: dict = {"fold": k, "test_pieces": len(test_pieces), "train_mean": baseline.tolist()}
        for condition, condition_clips in conditions(test).items():
            predicted = [labelled_predictions(head, clip) for clip in condition_clips]
            target = np.concatenate([clip.labels for clip in condition_clips])
            model_pred = np.concatenate(predicted)
            mean_pred = np.broadcast_to(baseline, target.shape)
            fold_report[condition] = {"frames": len(target), "model": metrics(model_pred, target), "train_mean": metrics(mean_pred, target)}
            store = pooled.setdefault(condition, {"model": [], "train_mean": [], "target": []})
            store["model"].append(model_pred)
            store["train_mean"].append(mean_pred)
            store["target"].append(target)
            if condition in ("piano", "all") and len(examples) < 6:
                examples.extend(list(zip(condition_clips, predicted))[:2])
        report["folds"].append(fold_report)
        print(json.dumps({c: fold_report[c]["model"] for c in conditions(test)}), file=sys.stderr)
    report["pooled"] = {}
    for condition, store in pooled.items():
        target = np.concatenate(store["target"])
        model_m = metrics(np.concatenate(store["model"]), target)
        mean_m = metrics(np.concatenate(store["train_mean"]), target)
        reduction = {d: 1 - model_m[d]["rmse"] / mean_m[d]["rmse"] for d in model_m}
        report["pooled"][condition] = {"frames": len(target), "model": model_m, "train_mean": mean_m, "rmse_reduction_vs_train_mean": reduction}
    (out / "cv.json").write_text(json.dumps(report, indent=1))
    plot_curves(out / "cv.png", examples[:6], title=f"{args.model} on {args.data}: held-out pieces, 5-fold CV (solid: annotated, dashed: predicted)")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "real":
        from training.real import run

        try:
            return run(args)
        except (ConfigError, DatasetError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    if args.command == "export":
        if not (args.run / "final.pt").exists():
            print(f"error: {args.run} holds no final.pt: run `python -m training train` first", file=sys.stderr)
            return 2
        export_run(args.run, args.name, args.models_dir)
        return 0
    torch.set_num_threads(args.threads)
    try:
        member_names(args.model)
        config = TrainConfig(epochs=args.epochs, patience=args.patience, batch_size=args.batch_size, crop_hops=args.crop_hops,
                             learning_rate=args.lr, loss=args.loss, seed=args.seed)
        clips, description = load_dataset(args)
    except (ConfigError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = args.out or REPO / "runs" / f"{args.model.replace(':', '-').replace('+', '-')}-{args.data}"
    out.mkdir(parents=True, exist_ok=True)
    silence = clip_features(FrontEnd(), np.zeros(HOP_SAMPLES, np.float32))[0]  # every silent frame is the same
    started = time.time()
    report = cross_validate(args, clips, config, silence, out) if args.folds > 1 else None
    if report:
        print(json.dumps(report["pooled"], indent=1))
    train, val = split_validation(clips, args.seed)
    head = train_spec(args.model, train, val, config, silence, "final", out, args.reuse)
    torch.save({"model": args.model, "state_dict": head.state_dict()}, out / "final.pt")
    run_record = {"args": vars(args), "description": description, "clips": len(clips)}
    (out / "run.json").write_text(json.dumps(run_record, indent=1, default=str))
    print(f"trained in {time.time() - started:.0f} s; run folder {out}", file=sys.stderr)
    if args.export:
        export_run(out, args.export, args.models_dir)
    return 0


def export_run(run_dir: Path, name: str, models_dir: Path) -> Path:
    """models_dir/<name>.onnx and its card from a run folder's final.pt, run.json and cv.json."""
    from training.card import export_with_card

    run = json.loads((run_dir / "run.json").read_text())
    saved = torch.load(run_dir / "final.pt", weights_only=True)
    head = build_spec(saved["model"])
    head.load_state_dict(saved["state_dict"])
    cv_path = run_dir / "cv.json"
    report = json.loads(cv_path.read_text()) if cv_path.exists() else None
    args = argparse.Namespace(**{**run["args"], "export": name, "models_dir": Path(models_dir)})
    return export_with_card(head.eval(), args=args, description=run["description"], cv_report=report, run_dir=run_dir, n_clips=run["clips"])


if __name__ == "__main__":
    sys.exit(main())
