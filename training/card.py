"""Export a trained head and write its model card; every figure comes from this run."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from training.export import export_onnx, export_parity
from training.models import Head, parameter_count

REPO = Path(__file__).resolve().parent.parent
DIMENSIONS = ("valence", "arousal")


def export_with_card(head: Head, *, args: argparse.Namespace, description: str, cv_report: dict | None, run_dir: Path, n_clips: int) -> Path:
    models_dir = args.models_dir
    onnx_path = models_dir / f"{args.export}.onnx"
    pooled = cv_report["pooled"] if cv_report else {}
    metadata = {
        "model_name": args.export,
        "model_version": "1",
        "architecture": args.model,
        "training_data": description,
        "metrics": json.dumps({c: {"model": v["model"], "train_mean": v["train_mean"]} for c, v in pooled.items()}, sort_keys=True),
    }
    model = export_onnx(head, onnx_path, metadata=metadata)
    parity = export_parity(model, onnx_path)
    if parity > 1e-4:
        raise RuntimeError(f"export parity {parity:.2e} exceeds 1e-4")
    latency = json.loads(
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "model_latency.py"), str(onnx_path), "--json"], check=True, capture_output=True, text=True).stdout
    )
    for name in ("cv.json", "cv.png", "splits.json"):
        if (run_dir / name).exists():
            shutil.copy(run_dir / name, models_dir / f"{args.export}.{name}")
    card = _card(args, description, pooled, cv_report, model.state_size, parameter_count(head), onnx_path.stat().st_size, parity, latency, n_clips)
    (models_dir / f"{args.export}.md").write_text(card)
    print(f"wrote {onnx_path} and {onnx_path.with_suffix('.md')}", file=sys.stderr)
    return onnx_path


def _metrics_table(pooled: dict) -> list[str]:
    lines = ["| condition | dimension | RMSE | Pearson r | CCC | R² | train-mean RMSE | RMSE reduction |", "|---|---|---|---|---|---|---|---|"]
    for condition, values in pooled.items():
        for d in DIMENSIONS:
            m, b = values["model"][d], values["train_mean"][d]
            lines.append(
                f"| {condition} ({values['frames']} frames) | {d} | {m['rmse']:.3f} | {m['pearson_r']:.3f} | {m['ccc']:.3f} | {m['r2']:.3f} | {b['rmse']:.3f} | {values['rmse_reduction_vs_train_mean'][d] * 100:.1f}% |"
            )
    return lines


def _fold_table(report: dict) -> list[str]:
    lines = ["| fold | pieces | condition | valence RMSE (train mean) | arousal RMSE (train mean) | valence r | arousal r | valence CCC | arousal CCC |", "|---|---|---|---|---|---|---|---|---|"]
    for fold in report["folds"]:
        for condition in [k for k in fold if isinstance(fold[k], dict)]:
            m, b = fold[condition]["model"], fold[condition]["train_mean"]
            lines.append(
                f"| {fold['fold'] + 1} | {fold['test_pieces']} | {condition} | {m['valence']['rmse']:.3f} ({b['valence']['rmse']:.3f}) | {m['arousal']['rmse']:.3f} ({b['arousal']['rmse']:.3f}) | {m['valence']['pearson_r']:.3f} | {m['arousal']['pearson_r']:.3f} | {m['valence']['ccc']:.3f} | {m['arousal']['ccc']:.3f} |"
            )
    return lines


TRAIN_OPTIONS = ("model", "data", "data_root", "variants", "pieces", "folds", "epochs", "patience", "batch_size", "crop_hops", "lr", "loss", "seed", "threads", "out", "reuse")


def _shown(value: object) -> str:
    """An argument as typed: paths inside the repository relative to it."""
    if isinstance(value, list):
        return " ".join(_shown(item) for item in value)
    text = str(value)
    path = Path(text)
    return str(path.relative_to(REPO)) if path.is_absolute() and path.is_relative_to(REPO) else text


def train_command(run_args: dict) -> str:
    """The `python -m training train` command line that a run's recorded arguments stand for."""
    words = ["python -m training train"]
    for name in TRAIN_OPTIONS:
        value = run_args.get(name)
        if value is None or value == [] or (value == 0 and name != "seed"):
            continue
        words.append(f"--{name.replace('_', '-')} {_shown(value)}")
    return " ".join(words)


def _commands(args: argparse.Namespace) -> list[str]:
    """Every command that produced the model: the members' runs (``--reuse``), then this one."""
    members = [train_command(json.loads((Path(run) / "run.json").read_text())["args"]) for run in args.reuse or []]
    return [*members, train_command(vars(args)), f"python -m training export --run {_shown(args.out)} --name {args.export}"]


def _card(args: argparse.Namespace, description: str, pooled: dict, report: dict | None, state_size: int, params: int, size: int, parity: float, latency: dict, n_clips: int) -> str:
    lines = [
        f"# {args.export}",
        "",
        f"Architecture `{args.model}` (see `training/models.py`), causal and streaming: 16 kHz mono PCM in 500 ms hops, state carried between hops.",
        "Written by these commands, in order; every figure below comes from them or from "
        f"`python benchmarks/model_latency.py models/{args.export}.onnx`:",
        "",
        "```sh",
        *_commands(args),
        "```",
        "",
        "## Model",
        f"- parameters: {params}",
        f"- file size: {size} bytes ({size / 1e6:.2f} MB)",
        f"- state size: {state_size} floats per stream",
        "- inputs `audio` [batch, 8000], `state` [batch, state_size]; outputs `va` [batch, 2] (valence, arousal in [-1, 1]), `state_out`",
        "- front end inside the graph, 62.5 ms feature frames: 64 log-mel bands (30 Hz to 8 kHz) from a Hann-windowed 512-point DFT every 250 samples, five time series (RMS, ZCR, centroid, spread, envelope), and a 12-bin chroma from a 2048-sample pitch DFT",
        f"- export parity, onnxruntime against torch on fresh random audio, 3 hops with state carried: max |difference| {parity:.1e}",
        "",
        "## Data",
        f"- {description}; {n_clips} clips in all.",
        "- Labels: per-measure annotator means mapped to 2 Hz hops (a hop gets the measure being played at its end).",
        "- Trained on VGMIDI: cite L. N. Ferreira and J. Whitehead, \"Learning to Generate Music with Sentiment\", ISMIR 2019. The source carries no license; treat as research data.",
    ]
    if report:
        lines += [
            "",
            f"## Evaluation: {args.folds}-fold cross-validation by piece (seed {args.seed})",
            f"Splits: `models/{args.export}.splits.json`. Full results: `models/{args.export}.cv.json`; held-out curves: `models/{args.export}.cv.png`.",
            "Each held-out piece is run from a cold state over its whole length, exactly as a stream; metrics are pooled over the held-out hops of all folds.",
            "`piano` is the render annotators heard; `augmented` are the held-out pieces' other renders (other instruments, reverb, noise, gain).",
            "",
            *_metrics_table(pooled),
            "",
            "Per fold:",
            "",
            *_fold_table(report),
        ]
    lines += [
        "",
        "## Latency (onnxruntime, CPU, one thread, front end included)",
        f"- per hop, batch 1: p50 {latency['p50_ms']:.3f} ms, p99 {latency['p99_ms']:.3f} ms",
        f"- batch {latency['batch']}: {latency['batch_call_ms']:.1f} ms a call, {latency['streams_per_core']:.0f} real-time streams per core",
        "",
        "## Limits",
        "- Trained on rendered piano arrangements of video-game music only; real recordings with vocals, drums and production are out of its training distribution, and the augmentation only narrows that gap: on the augmented renders arousal is far weaker than on piano (table above).",
        "- VGMIDI annotators disagree a lot (see the dataset's README), which bounds what any model can reach on it.",
        "",
    ]
    return "\n".join(lines)
