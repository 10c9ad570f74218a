"""Export a run of ``python -m training real`` as models/NAME.onnx with its card and CV results."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import torch

from rtmer.app.demo import SECTIONS, SynthMusic
from training.export import ZeroPoint, export_streaming, parity_by_output, round_to_float16
from training.frontend import HOP_SAMPLES, SAMPLE_RATE
from training.large import READOUT_SETTINGS, LargeEnsemble, LargeHead, LargeStreamingModel, LinearReadout
from training.mixed import LOSS_WEIGHTS, SIGN_SCALE
from training.models import StreamingModel, parameter_count
from training.protocol import TEST_PART_FILE
from training.teacher import load_backbone
from training.testscore import score

REPO = Path(__file__).resolve().parent.parent
DIMENSIONS = ("valence", "arousal")
# Issue 19's targets, on the fixed test part; arousal: no worse than the previous model's held-out figures.
TARGETS = {
    "large": {"quadrant_accuracy": 0.75, "lowest_recall": 0.60, "valence_auc": 0.90, "r_valence": 0.62, "mirex_valence_auc": 0.80,
              "arousal_auc": 0.925, "r_arousal": 0.79, "reaction": 2.5, "wrong_way": 0.10},
    "default": {"quadrant_accuracy": 0.65, "lowest_recall": 0.50, "valence_auc": 0.84, "r_valence": 0.55, "mirex_valence_auc": 0.75,
                "arousal_auc": 0.915, "r_arousal": 0.75, "reaction": 2.0, "wrong_way": 0.10},
}
LICENCES = [
    "MUSIFEAST-17 (van der Walle, Wu, Margulis & Jakubowski, Behavior Research Methods 2025): ratings CC0; the clips are excerpts of commercial recordings for non-commercial research.",
    "4Q audio emotion dataset (Panda, Malheiro & Paiva, IEEE TAFFC 2018): research use only (AllMusic previews).",
    "MIREX-like mood dataset (Panda, Malheiro, Rocha, Oliveira & Paiva, CMMR 2013): research use only (AllMusic previews).",
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
        f"MIREX-like: only the signs a cluster's mood words imply, as 4Q's (at {config.get('cluster_weight', 1.0):g} of a 4Q clip's weight): cluster 1 (passionate, rousing) +arousal; 2 (cheerful, sweet) +valence; 3 (poignant, wistful, brooding) -valence -arousal; 4 (humorous, quirky) +valence; 5 (aggressive, tense) -valence +arousal. The other dimension is left unlabelled.",
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


def export_real(run_dir: Path, name: str, models_dir: Path, cross_sets: Sequence[Path] = (), zero_point: bool = True) -> Path:
    """Write models/NAME.onnx from a run, score it on the fixed test part (models/NAME.test.json) and write its card.

    ``zero_point=False`` exports a run made with ``--calibrate`` without its zero point (a choice made on its CV figures, which the card gives).
    """
    run = json.loads((run_dir / "run.json").read_text())
    args = run["args"]
    report = json.loads((run_dir / "cv.json").read_text())
    declined = None
    if not zero_point and "calibration" in report:
        declined = {"calibration": report.pop("calibration"), "pooled": report.pop("pooled_calibrated")}
    if "calibration" in report:  # the folds chose to calibrate; the final model's own lean sets its zero
        from training.real import final_zero_points

        offset = final_zero_points(run_dir)
        report["calibration_final"] = {"valence": float(offset[0]), "arousal": float(offset[1])}
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
    calibration = report.get("calibration_final")
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
    test = score(onnx_path, Path(args["realmusic_root"]), Path(args["vgmidi_root"]), Path(args.get("test_part", TEST_PART_FILE)), Path(args["cache"]), args["variants"])
    onnx_path.with_suffix(".test.json").write_text(json.dumps(test, indent=1) + "\n")
    crossed = {}  # set left out -> (its run's args, its pooled figures)
    for cross_run in cross_sets:
        cross_args = json.loads((cross_run / "run.json").read_text())["args"]
        crossed[cross_args["hold_out_set"]] = (cross_args, json.loads((cross_run / "cv.json").read_text())["pooled"])
    card = _card(name, run, report, declined, test, crossed, params, onnx_path.stat().st_size, model.state_size, va_parity, state_parity, rounding, latency)  # type: ignore[attr-defined]
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
    options = ["variants", "folds", "epochs", "patience", "crop_hops", "lr", "medley_share", "hop_weight", "rating_weight", "sign_weight", "clip_sign_weight", "cluster_weight"]
    if args["size"] == "default":  # the large model has no teacher and no tags output
        options += ["teacher_weight", "tags_weight"]
    for option in options + ["seed", "threads"]:
        if option in args:  # runs made before an option existed used its default
            words.append(f"--{option.replace('_', '-')} {args[option]}")
    for flag in ("cosine", "rating_offset", "calibrate"):
        if args.get(flag):
            words.append(f"--{flag.replace('_', '-')}")
    if args.get("hold_out_set"):
        words.append(f"--hold-out-set {args['hold_out_set']}")
    words.append(f"--out {_shown(args['out'])}")
    return " ".join(words)


def _shown(value: object) -> str:
    path = Path(str(value))
    return str(path.relative_to(REPO)) if path.is_absolute() and path.is_relative_to(REPO) else str(value)


def _card(name: str, run: dict, report: dict, declined: dict | None, test: dict, crossed: dict[str, tuple[dict, dict]], params: int, size: int, state_size: int,
          va_parity: float, state_parity: float, rounding: float, latency: dict) -> str:  # fmt: skip
    args = run["args"]
    size_name = args["size"]
    pooled = report.get("pooled_calibrated", report["pooled"])
    commands = ["build/teacher-venv/bin/python training/convert_musicnn.py --out training/weights/msd_musicnn.npz  # once; committed",
                "python -m training.protocol make  # once: the fixed test part, committed as training/test_part.json"]  # fmt: skip
    if size_name == "default":
        teacher_run = json.loads((Path(args["teacher"]) / "run.json").read_text())
        commands.append(_train_command(teacher_run["args"]))
    commands += [_train_command(args)] + [_train_command(cross_args) for cross_args, _ in crossed.values()]
    cross_runs = " ".join(_shown(cross_args["out"]) for cross_args, _ in crossed.values())
    commands.append(f"python -m training.realcard --run {_shown(args['out'])} --name {name}" + (" --no-zero-point" if declined else "")
                    + (f" --cross-set {cross_runs}" if crossed else "") + "  # exports, scores the test part once, writes this card")
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
    calibration, fold_calibration = report.get("calibration_final"), report.get("calibration")
    lines = [
        f"# {name}",
        "",
        description,
        "Causal and streaming: 16 kHz mono PCM in 500 ms hops, state carried between hops.",
        *([f"Its output is moved by a zero point (valence {calibration['valence']:+.3f}, arousal {calibration['arousal']:+.3f} subtracted, then clipped to [-1, 1]): the level below which as many of this model's "
           "estimates of the development part's clips fall as labels are negative, over MUSIFEAST-17's ratings and the signs of 4Q and MIREX-like. Cross-validation chose to calibrate: "
           f"each fold's model moved by its folds' pooled zero point (valence {fold_calibration['valence']:+.3f}, arousal {fold_calibration['arousal']:+.3f}) read the CV figures below; "
           "the final model leans its own way, so its zero comes from its own estimates."] if calibration else []),
        *([_declined_sentence(declined, report["pooled"])] if declined else []),
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
        "## Evaluation protocol",
        "- **The fixed test part** (`training/test_part.json`, made once by `python -m training.protocol make`): a fifth of every set, the first of five folds of scikit-learn's StratifiedGroupKFold "
        "over all sets at once, grouped by artist across sets (so an artist in 4Q and MIREX-like falls on one side; Emotify by clip, VGMIDI by piece), stratified by set and genre, quadrant or cluster. "
        "The trainer never loads it. It is scored once, on this file through onnxruntime, by the last command above (`models/" + name + ".test.json`).",
        f"- **Cross-validation** ({args['folds']} folds by artist, seed {args['seed']}, on the rest: the development part; splits in `models/{name}.splits.json`, everything in `models/{name}.cv.json`) is where every choice is made: recipe, readout, calibration. "
        + ("Its figures that depend on the zero point (accuracy, recall, below-zero shares) are on the folds that chose that zero, so they are not estimates; " if calibration else "Its figures steered the recipe, so they are not estimates; ")
        + "the test part's are.",
        "- A clip's estimate is the mean of its hops after a 5 s warm-up, streamed from a cold state; the figures are the same functions' for both (training/realeval.py).",
        "",
        *_figures_table(test, pooled, TARGETS[size_name]),
        "",
        *_confusion(test, pooled),
        *_cross_set(crossed, report["pooled"]),
        *_baselines(report["pooled"]),
        *_per_fold(report),
        "## Limits",
        "- Every real set labels whole clips; only VGMIDI (piano renders) has labels that change within a piece, so the dynamics within a piece are trained on medleys and VGMIDI, not on real time-continuous annotations.",
        "- The test part is a fifth of the same four sets: it estimates the score on unseen clips of these sets, and less well the score on other recordings.",
        "",
    ]
    return "\n".join(lines)


def _declined_sentence(declined: dict, pooled: dict) -> str:
    offset, moved, plain = declined["calibration"], declined["pooled"]["4q"]["model"], pooled["4q"]["model"]
    return (f"A zero point was chosen on cross-validation (valence {offset['valence']:+.3f}, arousal {offset['arousal']:+.3f}) and not applied: on the CV folds it gave 4Q accuracy {moved['quadrant_accuracy']:.3f} "
            f"and lowest recall {moved['lowest_recall']:.3f}, against {plain['quadrant_accuracy']:.3f} and {plain['lowest_recall']:.3f} without it.")  # fmt: skip


def _figure(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def _figures_table(test: dict, cv: dict, target: dict) -> list[str]:
    """The headline figures, test part beside CV, with issue 19's targets (on the test part)."""
    t4, c4 = test.get("4q", {}), cv.get("4q", {}).get("model", {})
    tm, cm = test.get("musifeast17", {}), cv.get("musifeast17", {}).get("model", {})
    tx, cx = test.get("mirexlike", {}), cv.get("mirexlike", {}).get("model", {})
    tr, cr = test.get("reaction", {}), cv.get("reaction", {})
    worst = min(t4.get("recall", {"-": float("nan")}).items(), key=lambda kv: kv[1])
    rows = [
        ("4Q quadrant accuracy (chance 0.25)", t4.get("quadrant_accuracy"), c4.get("quadrant_accuracy"), f"≥ {target['quadrant_accuracy']}"),
        (f"4Q lowest per-quadrant recall (test: {worst[0]})", t4.get("lowest_recall"), c4.get("lowest_recall"), f"≥ {target['lowest_recall']}"),
        ("4Q valence AUC (Q1+Q4 against Q2+Q3)", t4.get("valence_auc"), c4.get("valence_auc"), f"≥ {target['valence_auc']}"),
        ("4Q arousal AUC (Q1+Q2 against Q3+Q4)", t4.get("arousal_auc"), c4.get("arousal_auc"), f"≥ {target['arousal_auc']}"),
        ("MUSIFEAST-17 valence r", tm.get("valence", {}).get("pearson_r"), cm.get("valence", {}).get("pearson_r"), f"≥ {target['r_valence']}"),
        ("MUSIFEAST-17 arousal r", tm.get("arousal", {}).get("pearson_r"), cm.get("arousal", {}).get("pearson_r"), f"≥ {target['r_arousal']}"),
        ("MIREX-like valence AUC, clusters 2+4 against 3+5", tx.get("valence_auc_24_35"), cx.get("valence_auc_24_35"), f"≥ {target['mirex_valence_auc']}"),
        ("MIREX-like valence AUC, cluster 2 against 3", tx.get("valence_auc_2_3"), cx.get("valence_auc_2_3"), "-"),
        ("MIREX-like arousal AUC, clusters 1+5 against 3", tx.get("arousal_auc_15_3"), cx.get("arousal_auc_15_3"), "-"),
    ]
    lines = [f"| figure | test part ({t4.get('clips', 0)} 4Q, {tm.get('clips', 0)} MUSIFEAST-17, {tx.get('clips', 0)} MIREX-like clips) | cross-validation, development part | target (test part) |",
             "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {label} | {_figure(a)} | {_figure(b)} | {goal} |" for label, a, b, goal in rows]
    for dimension in DIMENSIONS:
        lines.append(
            f"| share of clips read below 0 in {dimension}, against the labels' (4Q / MIREX-like / MUSIFEAST-17) | "
            f"{_figure(t4.get(f'{dimension}_below_zero_share'), 2)} vs {_figure(t4.get(f'{dimension}_labels_below_zero_share'), 2)} / {_figure(tx.get(f'{dimension}_below_zero_share'), 2)} vs {_figure(tx.get(f'{dimension}_labels_below_zero_share'), 2)} / "
            f"{_figure(tm.get(dimension, {}).get('below_zero_share'), 2)} vs {_figure(tm.get(dimension, {}).get('labels_below_zero_share'), 2)} | "
            f"{_figure(c4.get(f'{dimension}_below_zero_share'), 2)} vs {_figure(c4.get(f'{dimension}_labels_below_zero_share'), 2)} / {_figure(cx.get(f'{dimension}_below_zero_share'), 2)} vs {_figure(cx.get(f'{dimension}_labels_below_zero_share'), 2)} / "
            f"{_figure(cm.get(dimension, {}).get('below_zero_share'), 2)} vs {_figure(cm.get(dimension, {}).get('labels_below_zero_share'), 2)} | - |"
        )
    lines.append(f"| reaction, opposite quadrants (medleys of held-out 4Q clips): median seconds to halfway / wrong-way share | {_figure(tr.get('median_seconds'), 2)} s / {_figure(tr.get('wrong_way_share'), 2)} | "
                 f"{_figure(cr.get('median_seconds'), 2)} s / {_figure(cr.get('wrong_way_share'), 2)} | ≤ {target['reaction']} s / ≤ {target['wrong_way']} |")  # fmt: skip
    lines.append(f"| wrong-way share, valence / arousal | {_figure(tr.get('valence_wrong_way_share'), 2)} / {_figure(tr.get('arousal_wrong_way_share'), 2)} | {_figure(cr.get('valence_wrong_way_share'), 2)} / {_figure(cr.get('arousal_wrong_way_share'), 2)} | - |")
    for condition, values in test.get("vgmidi", {}).items():
        held = cv.get("vgmidi", {}).get(condition, {}).get("model", {})
        lines.append(f"| VGMIDI {condition} renders, time-continuous RMSE valence / arousal | {_figure(values['valence']['rmse'])} / {_figure(values['arousal']['rmse'])} | "
                     f"{_figure(held.get('valence', {}).get('rmse'))} / {_figure(held.get('arousal', {}).get('rmse'))} | - |")  # fmt: skip
    return lines


def _confusion(test: dict, cv: dict) -> list[str]:
    lines = []
    for title, q4 in (("test part", test.get("4q")), ("cross-validation", cv.get("4q", {}).get("model"))):
        if not q4:
            continue
        lines += [f"4Q confusion, {title} (rows: the label; columns: the quadrant read; recall on the diagonal's row):", "",
                  "| label | Q1 read | Q2 read | Q3 read | Q4 read | recall |", "|---|---|---|---|---|---|"]  # fmt: skip
        for k, row in enumerate(q4["confusion"]):
            lines.append(f"| Q{k + 1} | {' | '.join(str(n) for n in row)} | {q4['recall'][f'Q{k + 1}']:.2f} |")
        lines.append("")
    return lines


def _cross_set(crossed: dict[str, tuple[dict, dict]], cv: dict) -> list[str]:
    """Each set scored by a model trained on the others' development parts, beside its CV figure with every set in training."""
    if not crossed:
        return []
    lines = ["## Cross-set checks", "Trained on the development parts of every other set (VGMIDI and Emotify included), scored on the whole development part of the set left out (each run's command is among those above); beside it, the same figure in this model's cross-validation, which had that set in training.", "",
             "| set left out | figure | left out | in training (CV) |", "|---|---|---|---|"]  # fmt: skip
    keys = {"4q": [("quadrant accuracy", "quadrant_accuracy"), ("valence AUC", "valence_auc"), ("arousal AUC", "arousal_auc")],
            "mirexlike": [("valence AUC 2+4 against 3+5", "valence_auc_24_35"), ("arousal AUC 1+5 against 3", "arousal_auc_15_3")]}  # fmt: skip
    for held_out, (_, pooled) in crossed.items():
        if held_out == "musifeast17":
            for dimension in DIMENSIONS:
                lines.append(f"| MUSIFEAST-17 | {dimension} r | {_figure(pooled['musifeast17']['model'][dimension]['pearson_r'])} | {_figure(cv.get('musifeast17', {}).get('model', {}).get(dimension, {}).get('pearson_r'))} |")
            continue
        for label, key in keys[held_out]:
            lines.append(f"| {held_out} | {label} | {_figure(pooled[held_out]['model'][key])} | {_figure(cv.get(held_out, {}).get('model', {}).get(key))} |")
    return lines + [""]


def _baselines(pooled: dict) -> list[str]:
    lines = ["## Baselines (cross-validation, uncalibrated model)", "Fitted on the same training folds: the train mean (of the MUSIFEAST-17 ratings), and linear models on the clip's loudness alone (mean and std of its log RMS).", "",
             "| figure | model | train mean | loudness only |", "|---|---|---|---|"]  # fmt: skip
    if "4q" in pooled:
        q = pooled["4q"]
        for label, key in (("4Q quadrant accuracy", "quadrant_accuracy"), ("4Q valence AUC", "valence_auc"), ("4Q arousal AUC", "arousal_auc")):
            lines.append(f"| {label} | {q['model'][key]:.3f} | {q['train_mean'][key]:.3f} | {q['loudness'][key]:.3f} |")
    if "musifeast17" in pooled:
        m = pooled["musifeast17"]
        for dimension in DIMENSIONS:
            lines.append(f"| MUSIFEAST-17 {dimension} r / RMSE | {m['model'][dimension]['pearson_r']:.3f} / {m['model'][dimension]['rmse']:.3f} | - / {m['train_mean'][dimension]['rmse']:.3f} | "
                         f"{m['loudness'][dimension]['pearson_r']:.3f} / {m['loudness'][dimension]['rmse']:.3f} |")  # fmt: skip
    return lines + [""]


def _per_fold(report: dict) -> list[str]:
    lines = ["Per fold (uncalibrated):", "", "| fold | 4Q accuracy | valence AUC | arousal AUC | MUSIFEAST r valence | r arousal | MIREX valence AUC | reaction median |", "|---|---|---|---|---|---|---|---|"]
    for k, fold in enumerate(report["folds"]):
        q4, mf, mx = fold.get("4q", {}), fold.get("musifeast17", {}), fold.get("mirexlike", {})
        lines.append(
            f"| {k + 1} | {_figure(q4.get('quadrant_accuracy'))} | {_figure(q4.get('valence_auc'))} | {_figure(q4.get('arousal_auc'))} | "
            f"{_figure(mf.get('valence', {}).get('pearson_r'))} | {_figure(mf.get('arousal', {}).get('pearson_r'))} | {_figure(mx.get('valence_auc_24_35'))} | {_figure(fold['reaction']['median_seconds'], 2)} s |"
        )
    return lines + [""]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--cross-set", type=Path, nargs="*", default=[], metavar="RUN", help="runs of python -m training real --hold-out-set SET, for the card's cross-set table")
    parser.add_argument("--no-zero-point", action="store_true", help="export a --calibrate run without its zero point (chosen on its CV figures; the card says so)")
    cli = parser.parse_args()
    export_real(cli.run, cli.name, cli.models_dir, cli.cross_set, zero_point=not cli.no_zero_point)
