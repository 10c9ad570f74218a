"""Export a run of ``python -m training real`` as models/NAME.onnx with its card and CV results."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from rtmer.demo import SECTIONS, SynthMusic
from training.export import ZeroPoint, export_streaming, parity_by_output, round_to_float16
from training.frontend import HOP_SAMPLES, SAMPLE_RATE
from training.large import READOUT_SETTINGS, LargeEnsemble, LargeHead, LargeStreamingModel, LinearReadout
from training.mixed import LOSS_WEIGHTS, SIGN_SCALE
from training.models import StreamingModel, parameter_count
from training.teacher import load_backbone

REPO = Path(__file__).resolve().parent.parent
DIMENSIONS = ("valence", "arousal")
TARGETS = {
    "large": {"quadrant_accuracy": 0.72, "arousal_auc": 0.93, "valence_auc": 0.86, "r_arousal": 0.82, "r_valence": 0.60, "spread": 0.7},
    "default": {"quadrant_accuracy": 0.60, "arousal_auc": 0.90, "valence_auc": 0.78, "r_arousal": 0.75, "r_valence": 0.50, "spread": 0.6},
}
PREVIOUS_DEFAULT_VGMIDI = {  # models/rtmer-default.md before real recordings: 5-fold CV by piece, 3 renders a piece
    "piano": {"valence": 0.211, "arousal": 0.204},
    "augmented": {"valence": 0.213, "arousal": 0.248},
}
LICENCES = [
    "MUSIFEAST-17 (van der Walle, Wu, Margulis & Jakubowski, Behavior Research Methods 2025): ratings CC0; the clips are excerpts of commercial recordings for non-commercial research.",
    "4Q audio emotion dataset (Panda, Malheiro & Paiva, IEEE TAFFC 2018): research use only (AllMusic previews).",
    "Emotify (Aljanaki, Wiering & Veltkamp, IP&M 2016): Magnatune audio, CC BY-NC-SA; used only as the auxiliary GEMS target.",
    "VGMIDI (Ferreira & Whitehead, ISMIR 2019): no licence stated; research data.",
    "musicnn MSD_musicnn weights (Pons & Serra, ISC licence), trained on the Million Song Dataset's top-50 tags.",
]


def _label_mapping(config: dict) -> list[str]:
    """How each set's labels reach the losses, with the weights of this run (``MixedConfig`` as saved in cv.json)."""
    weights = {**LOSS_WEIGHTS, **{key: config[f"{key}_weight"] for key in ("rating", "sign", "clip_sign") if f"{key}_weight" in config}}
    offset = " plus an offset learned in training (not exported), so that the model's zero is 4Q's quadrant boundary" if config.get("rating_offset") else ""
    clip_sign = f", and on the mean estimate of each clip's hops in a training crop (weight {weights['clip_sign']})" if weights["clip_sign"] else ""
    return [
        f"MUSIFEAST-17: mean ratings on 1-5 mapped by (x - 3) / 2; a regression target on every hop after the first 2 s (weight {weights['rating']}){offset}.",
        f"4Q: only the quadrant's signs (Q1 +v +a, Q2 -v +a, Q3 -v -a, Q4 +v -a); a logistic loss on {SIGN_SCALE:g} x the estimate at every hop (weight {weights['sign']}){clip_sign}, so no magnitude is implied.",
        "Emotify: induced emotion, not mapped to valence/arousal; its nine GEMS proportions are the target of an auxiliary output used in training only (large model).",
        f"VGMIDI: per-measure annotator means on the 0.5 s hop grid, time-continuous, as before (weight {config.get('hop_weight', LOSS_WEIGHTS['hops'])}).",
    ]


@torch.no_grad()
def _rounding_effect(unrounded: torch.nn.Module, rounded: torch.nn.Module, seconds: float = 80.0) -> float:
    """Largest |va| change that float16 weights make, streaming one loop of rtmer demo's music."""
    audio = SynthMusic(rate=SAMPLE_RATE, section_seconds=seconds / len(SECTIONS)).render(seconds)
    hops = torch.from_numpy(audio[: len(audio) // HOP_SAMPLES * HOP_SAMPLES].reshape(-1, HOP_SAMPLES))
    worst, states = 0.0, [torch.zeros(1, unrounded.state_size), torch.zeros(1, rounded.state_size)]  # type: ignore[attr-defined]
    for hop in hops:
        (va_a, states[0]), (va_b, states[1]) = unrounded(hop[None], states[0]), rounded(hop[None], states[1])
        worst = max(worst, float((va_a - va_b).abs().max()))
    return worst


def export_real(run_dir: Path, name: str, models_dir: Path) -> Path:
    run = json.loads((run_dir / "run.json").read_text())
    args = run["args"]
    report = json.loads((run_dir / "cv.json").read_text())
    saved = torch.load(run_dir / "final.pt", weights_only=True)
    if args["size"] == "large":
        share = saved.get("readout_share", 0.0)  # runs made before the readout existed have none
        ensemble = LargeEnsemble([LargeHead() for _ in range(saved["heads"])], LinearReadout() if share else None, share)
        ensemble.load_state_dict(saved["state_dict"])
        model: torch.nn.Module = LargeStreamingModel(load_backbone(Path(args["teacher_weights"])), ensemble.eval()).eval()
        architecture = f"musicnn-msd (streaming, frozen) + {saved['heads']} dense/GRU heads averaged" + (f", blended {share:g} with a linear readout" if share else "")
        trainable = sum(parameter_count(h) - h.gems.weight.numel() - h.gems.bias.numel() for h in ensemble.heads)  # type: ignore[union-attr]
        trainable += parameter_count(ensemble.readout) if ensemble.readout is not None else 0
        params = trainable + sum(p.numel() for p in model.backbone.parameters())  # type: ignore[union-attr]
    else:
        from training.__main__ import build_spec

        head = build_spec(saved["model"])
        head.load_state_dict(saved["state_dict"])
        model = StreamingModel(head.eval()).eval()
        architecture = saved["model"]
        params = parameter_count(head)
    calibration = report.get("calibration")
    if calibration:
        model = ZeroPoint(model, [calibration["valence"], calibration["arousal"]]).eval()
    onnx_path = models_dir / f"{name}.onnx"
    metadata = {
        "model_name": name,
        "model_version": "2",
        "architecture": architecture,
        "training_data": "MUSIFEAST-17, 4Q, Emotify (real recordings) and VGMIDI renders; research-use terms, see the card",
        "metrics": json.dumps(summary(report.get("pooled_calibrated", report["pooled"])), sort_keys=True),
    }
    if args["size"] == "large":
        unrounded = copy.deepcopy(model)
        round_to_float16(model)
        rounding = _rounding_effect(unrounded, model)
    else:
        rounding = 0.0  # only the front end's constants, already at float16 precision, are stored at half precision
    export_streaming(model, onnx_path, metadata=metadata)
    va_parity, state_parity = parity_by_output(model, onnx_path)
    if va_parity > 1e-4:
        raise RuntimeError(f"export parity {va_parity:.2e} on va exceeds 1e-4")
    latency_args = ["--hops", "100", "--batch", "16"] if args["size"] == "large" else []
    latency = json.loads(
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "model_latency.py"), str(onnx_path), "--json", *latency_args],
                       check=True, capture_output=True, text=True).stdout
    )
    for suffix in ("cv.json", "splits.json"):
        shutil.copy(run_dir / suffix, models_dir / f"{name}.{suffix}")
    card = _card(name, run, report, params, onnx_path.stat().st_size, model.state_size, va_parity, state_parity, rounding, latency)  # type: ignore[attr-defined]
    (models_dir / f"{name}.md").write_text(card)
    print(f"wrote {onnx_path} and {onnx_path.with_suffix('.md')}", file=sys.stderr)
    return onnx_path


def summary(pooled: dict) -> dict:
    """The headline figures: what the metadata and the README quote."""
    out: dict = {}
    if "4q" in pooled:
        out["4q"] = pooled["4q"]["model"]
    if "musifeast17" in pooled:
        out["musifeast17"] = pooled["musifeast17"]["model"]
    out["vgmidi"] = {c: v["model"] for c, v in pooled.get("vgmidi", {}).items()}
    out["reaction"] = pooled["reaction"]
    return out


def _readout_sentence(share: float, settings: dict) -> str:
    return (
        f" The heads' mean is blended ({1 - share:g} to {share:g}) with a memoryless linear readout of each hop's standardised embedding, clamped to [-1, 1] and fitted by ridge "
        f"(alpha {settings['alpha']:g}) on clip means after the first 5 s: MUSIFEAST-17's ratings, 4Q's quadrant signs at ±{settings['sign_level']:g}, and one hop in {settings['vgmidi_stride']} of the VGMIDI renders (each render weighing one clip)."
    )


def _train_command(args: dict) -> str:
    words = ["python -m training real", f"--size {args['size']}"]
    if args["size"] == "large":
        words.append(f"--heads {args.get('heads', 1)}")
        if args.get("readout_share"):
            words.append(f"--readout-share {args['readout_share']}")
    if args["size"] == "default":
        words += [f"--student {args['student']}", f"--teacher {_shown(args['teacher'])}"]
    options = ["variants", "folds", "epochs", "patience", "crop_hops", "lr", "medley_share", "hop_weight", "rating_weight", "sign_weight", "clip_sign_weight"]
    if args["size"] == "default":  # the large model has no teacher and no tags output
        options += ["teacher_weight", "tags_weight"]
    for option in options + ["seed", "threads"]:
        if option in args:  # runs made before an option existed used its default
            words.append(f"--{option.replace('_', '-')} {args[option]}")
    for flag in ("cosine", "rating_offset"):
        if args.get(flag):
            words.append(f"--{flag.replace('_', '-')}")
    words.append(f"--out {_shown(args['out'])}")
    return " ".join(words)


def _shown(value: object) -> str:
    path = Path(str(value))
    return str(path.relative_to(REPO)) if path.is_absolute() and path.is_relative_to(REPO) else str(value)


def _card(name: str, run: dict, report: dict, params: int, size: int, state_size: int, va_parity: float, state_parity: float, rounding: float, latency: dict) -> str:
    args = run["args"]
    pooled, size_name = report["pooled"], args["size"]
    target = TARGETS[size_name]
    commands = ["build/teacher-venv/bin/python training/convert_musicnn.py --out training/weights/msd_musicnn.npz  # once; committed"]
    if size_name == "default":
        teacher_run = json.loads((Path(args["teacher"]) / "run.json").read_text())
        commands.append(_train_command(teacher_run["args"]))
    commands += [_train_command(args), f"python -m training.realcard --run {_shown(args['out'])} --name {name}"]
    runs = [run] + ([teacher_run] if size_name == "default" else [])
    unseeded = [] if all(r.get("seeded_init") for r in runs) else [
        "These runs were made before the trainer seeded torch's initial weights, so the commands make models of the same recipe, not the same bits."
    ]
    description = (
        "The streaming MusiCNN backbone (musicnn's MSD_musicnn weights, frozen; 96-band log-mel, 3 s pooled at the end of each hop, 0.64 s of look-back alignment, nothing after the current hop) and heads trained here, each from its own seed and averaged: standardisation, dense 128, GRU 64, valence and arousal."
        + (_readout_sentence(args["readout_share"], run.get("readout", READOUT_SETTINGS)) if args.get("readout_share") else "")  # older runs: today's constants
        if size_name == "large"
        else f"Architecture `{args['student']}` (training/models.py) on rtmer's own in-graph front end, trained on the labels and distilled from the per-hop estimates of a large model (MusiCNN and GRU heads, as rtmer-large) trained by the first training command below (`{_shown(args['teacher'])}`; each CV fold from that fold's large heads)."
    )
    lines = [
        f"# {name}",
        "",
        description,
        "Causal and streaming: 16 kHz mono PCM in 500 ms hops, state carried between hops.",
        "",
        "Written by these commands, in order; every figure below comes from them or from "
        f"`python benchmarks/model_latency.py models/{name}.onnx{' --hops 100 --batch 16' if size_name == 'large' else ''}`:",
        "",
        "```sh",
        *commands,
        "```",
        *unseeded,
        "",
        "## Model",
        f"- parameters: {params}",
        f"- file size: {size} bytes ({size / 1e6:.2f} MB)",
        f"- state size: {state_size} floats per stream",
        f"- latency (onnxruntime, CPU, one thread, front end included): p50 {latency['p50_ms']:.3f} ms, p99 {latency['p99_ms']:.3f} ms a hop (p50 of each of {len(latency['round_p50s_ms'])} rounds: {', '.join(f'{value:.3f}' for value in latency['round_p50s_ms'])} ms); batch {latency['batch']}: {latency['batch_call_ms']:.1f} ms a call, {latency['streams_per_core']:.0f} real-time streams per core",
        f"- export parity, onnxruntime against torch, 3 hops: va {va_parity:.1e}, state {state_parity:.1e} of its largest value",
        *([f"- weights stored at float16 (cast to float32 when loaded); against the float32 model that the evaluation below ran, va moves by at most {rounding:.1e} over one loop of `rtmer demo`'s music"] if rounding else []),
        "",
        "## Data and terms",
        *[f"- {line}" for line in LICENCES],
        "- **A model trained on these sets inherits their research-only, non-commercial terms.**",
        "",
        "Label mapping to [-1, 1]:",
        *[f"- {line}" for line in _label_mapping(report["config"])],
        "",
        f"## Evaluation: {args['folds']}-fold cross-validation (seed {args['seed']})",
        "Folds from scikit-learn's StratifiedGroupKFold: grouped by artist (Emotify by clip, VGMIDI by piece), stratified by set and genre or quadrant; "
        f"splits in `models/{name}.splits.json`, everything in `models/{name}.cv.json`. A clip's estimate is the mean of its hops after a 5 s warm-up, streamed from a cold state. "
        "Baselines are fitted on the same training folds: the train mean (of the MUSIFEAST-17 ratings; of the VGMIDI hops), and linear models on the clip's loudness alone (mean and std of its log RMS).",
        "",
        "| figure | model | train mean | loudness only | target |",
        "|---|---|---|---|---|",
    ]
    if "4q" in pooled:
        q = pooled["4q"]
        lines += [
            f"| 4Q quadrant accuracy ({q['clips']} clips, chance 0.25) | {q['model']['quadrant_accuracy']:.3f} | {q['train_mean']['quadrant_accuracy']:.3f} | {q['loudness']['quadrant_accuracy']:.3f} | ≥ {target['quadrant_accuracy']} |",
            f"| 4Q arousal AUC (Q1+Q2 against Q3+Q4) | {q['model']['arousal_auc']:.3f} | 0.5 | {q['loudness']['arousal_auc']:.3f} | ≥ {target['arousal_auc']} |",
            f"| 4Q valence AUC (Q1+Q4 against Q2+Q3) | {q['model']['valence_auc']:.3f} | 0.5 | {q['loudness']['valence_auc']:.3f} | ≥ {target['valence_auc']} |",
        ]
    if "musifeast17" in pooled:
        m = pooled["musifeast17"]
        for dimension in DIMENSIONS:
            lines.append(
                f"| MUSIFEAST-17 {dimension}: r / CCC / RMSE ({m['clips']} clips) | {m['model'][dimension]['pearson_r']:.3f} / {m['model'][dimension]['ccc']:.3f} / {m['model'][dimension]['rmse']:.3f} | "
                f"- / 0 / {m['train_mean'][dimension]['rmse']:.3f} | {m['loudness'][dimension]['pearson_r']:.3f} / {m['loudness'][dimension]['ccc']:.3f} / {m['loudness'][dimension]['rmse']:.3f} | r ≥ {target['r_' + dimension]} |"
            )
        lines.append(
            f"| MUSIFEAST-17 spread of estimates / spread of labels, valence / arousal | {m['model']['valence']['spread_ratio']:.2f} / {m['model']['arousal']['spread_ratio']:.2f} | 0 | "
            f"{m['loudness']['valence']['spread_ratio']:.2f} / {m['loudness']['arousal']['spread_ratio']:.2f} | ≥ {target['spread']} |"
        )
    r = pooled["reaction"]
    lines.append(
        f"| reaction, opposite quadrants ({r['moves']} moves in medleys of held-out 4Q clips): median seconds to halfway / wrong-way share | {r['median_seconds']:.2f} s / {r['wrong_way_share']:.2f} | - | - | ≤ 3 s / ≤ 0.10 |"
    )
    lines += ["", "Reaction per dimension: " + ", ".join(f"{d} median {r[d + '_median_seconds']:.2f} s, wrong way {r[d + '_wrong_way_share']:.2f}" for d in DIMENSIONS) + "."]
    if pooled.get("vgmidi"):
        lines += ["", "VGMIDI, time-continuous, pooled over held-out hops (renders of held-out pieces, cold start):", "",
                  "| condition | dimension | RMSE | Pearson r | CCC | train-mean RMSE | previous default's RMSE |", "|---|---|---|---|---|---|---|"]
        for condition, values in pooled["vgmidi"].items():
            for dimension in DIMENSIONS:
                mm, bb = values["model"][dimension], values["train_mean"][dimension]
                lines.append(f"| {condition} ({values['hops']} hops) | {dimension} | {mm['rmse']:.3f} | {mm['pearson_r']:.3f} | {mm['ccc']:.3f} | {bb['rmse']:.3f} | {PREVIOUS_DEFAULT_VGMIDI[condition][dimension]:.3f} |")
    lines += ["", "Per fold:", "", "| fold | 4Q accuracy | valence AUC | arousal AUC | MUSIFEAST r valence | r arousal | reaction median |", "|---|---|---|---|---|---|---|"]
    for k, fold in enumerate(report["folds"]):
        q4, mf = fold.get("4q", {}), fold.get("musifeast17", {})
        lines.append(
            f"| {k + 1} | {q4.get('quadrant_accuracy', float('nan')):.3f} | {q4.get('valence_auc', float('nan')):.3f} | {q4.get('arousal_auc', float('nan')):.3f} | "
            f"{mf.get('valence', {}).get('pearson_r', float('nan')):.3f} | {mf.get('arousal', {}).get('pearson_r', float('nan')):.3f} | {fold['reaction']['median_seconds']:.2f} s |"
        )
    lines += [
        "",
        "## Limits",
        "- Every real set labels whole clips; only VGMIDI (piano renders) has labels that change within a piece, so the dynamics within a piece are trained on medleys and VGMIDI, not on real time-continuous annotations.",
        "- The cross-validated figures estimate, not measure, the scores on the held-out parts of these sets and on other recordings.",
        f"- Valence is the weak dimension, as in the literature: {r['valence_wrong_way_share']:.0%} of the valence moves between opposite quadrants go the wrong way, against {r['arousal_wrong_way_share']:.0%} of the arousal moves.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    cli = parser.parse_args()
    export_real(cli.run, cli.name, cli.models_dir)
