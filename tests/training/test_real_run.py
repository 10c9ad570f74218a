"""``python -m training real`` end to end on small written sets: CV, training, export and card, for both sizes."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from music import SAMPLE_RATE, chords
from rtmer.core.model import StreamingModel
from test_realmusic import EMOTIFY_HEADER, FOURQ_HEADER, MIREX_HEADER, MUSIFEAST_HEADER, emotify_row, fourq_row, mirex_row, musifeast_row, write_set
from training.__main__ import main
from training.datasets import load_audio
from training.realcard import export_real
from training.realeval import clip_estimate
from training.realmusic import label_signs, load_realmusic
from training.testscore import stream
from training.testscore import main as score_test_part

CLIP_SECONDS = 12.0
# (bpm, level, minor) per quadrant: energetic music is fast and loud, negative music minor.
QUADRANT_MUSIC = {1: (150, 0.8, False), 2: (150, 0.8, True), 3: (60, 0.1, True), 4: (60, 0.1, False)}
CLUSTER_QUADRANT = {1: 1, 2: 4, 3: 3, 4: 1, 5: 2}  # music of a quadrant whose signs the cluster's agree with
# The test part: two 4Q artists (four clips, one of each quadrant), two MIREX-like clips and a MUSIFEAST-17 band.
TEST_IDS = ["4q-q0", "4q-q1", "4q-q2", "4q-q3", "mirexlike-x2", "mirexlike-x3", "musifeast17-m3", "musifeast17-m7"]


def write_clip(path: Path, quadrant: int, seed: int) -> None:
    bpm, level, minor = QUADRANT_MUSIC[quadrant]
    sf.write(path, chords(CLIP_SECONDS, bpm=bpm, root_hz=220.0, minor=minor, level=level, seed=seed), SAMPLE_RATE)


@pytest.fixture(scope="module")
def realmusic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("realmusic")
    ratings = {1: ("4.5", "4.5"), 2: ("1.5", "4.5"), 3: ("1.5", "1.5"), 4: ("4.5", "1.5")}
    rows = [musifeast_row(f"m{k}", artist=f"Band {k % 4}", valence_mean=ratings[1 + k % 4][0], arousal_mean=ratings[1 + k % 4][1]) for k in range(8)]
    write_set(root / "musifeast17", MUSIFEAST_HEADER, rows, audio=[])
    for k in range(8):
        write_clip(root / "musifeast17" / "audio" / f"m{k}.wav", 1 + k % 4, seed=k)
    rows = [fourq_row(f"q{k}", quadrant=f"Q{1 + k % 4}", artist=f"Singer {k // 2}") for k in range(16)]
    write_set(root / "4q", FOURQ_HEADER, rows, audio=[])
    for k in range(16):
        write_clip(root / "4q" / "audio" / f"q{k}.wav", 1 + k % 4, seed=100 + k)
    rows = [mirex_row(f"x{k}", cluster=str(1 + k % 5), artist=f"Group {k}") for k in range(10)]
    write_set(root / "mirexlike", MIREX_HEADER, rows, audio=[])
    for k in range(10):
        write_clip(root / "mirexlike" / "audio" / f"x{k}.wav", CLUSTER_QUADRANT[1 + k % 5], seed=300 + k)
    rows = [emotify_row(f"e{k}", calmness="0.6" if k % 2 else "0.1", power="0.1" if k % 2 else "0.7") for k in range(4)]
    write_set(root / "emotify", EMOTIFY_HEADER, rows, audio=[])
    for k in range(4):
        write_clip(root / "emotify" / "audio" / f"e{k}.wav", 4 if k % 2 else 1, seed=200 + k)
    return root


@pytest.fixture(scope="module")
def runs(realmusic: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both sizes trained, cross-validated and exported into ``models/``."""
    out = tmp_path_factory.mktemp("runs")
    (out / "test_part.json").write_text(json.dumps({"seed": 1, "ids": TEST_IDS}))
    common = ["--realmusic-root", str(realmusic), "--variants", "0", "--folds", "2", "--epochs", "2", "--threads", "1",
              "--cache", str(out / "cache"), "--models-dir", str(out / "models"), "--test-part", str(out / "test_part.json")]  # fmt: skip
    (out / "models").mkdir()
    large_losses = ["--sign-weight", "1.0", "--clip-sign-weight", "0.5", "--rating-offset"]
    assert main(["real", "--size", "large", "--heads", "2", "--readout-share", "0.5", *large_losses, "--calibrate", "--out", str(out / "large"), *common]) == 0
    export_real(out / "large", "rtmer-large", out / "models", zero_point=False)  # its zero point declined
    assert main(["real", "--size", "default", "--student", "hybrid_fast", "--teacher", str(out / "large"), "--calibrate",
                 "--out", str(out / "default"), "--export", "rtmer-default", *common]) == 0  # fmt: skip
    for name in ("rtmer-large", "rtmer-default"):
        assert score_test_part(["--model", str(out / "models" / f"{name}.onnx"), "--realmusic-root", str(realmusic), "--variants", "0", "--test-part", str(out / "test_part.json")]) == 0
    return out


@pytest.mark.parametrize("size", ["large", "default"])
def test_cv_report_has_every_figure_beside_its_baselines(runs: Path, size: str) -> None:
    pooled = json.loads((runs / size / "cv.json").read_text())["pooled"]
    assert pooled["4q"]["clips"] == 12 and pooled["musifeast17"]["clips"] == 6 and pooled["mirexlike"]["clips"] == 8  # the test part withheld
    for baseline in ("model", "train_mean", "loudness"):
        assert {"quadrant_accuracy", "valence_auc", "arousal_auc", "recall", "lowest_recall", "confusion", "valence_below_zero_share"} <= set(pooled["4q"][baseline])
        assert sum(map(sum, pooled["4q"][baseline]["confusion"])) == 12
        assert {"rmse", "pearson_r", "ccc", "spread_ratio", "below_zero_share", "labels_below_zero_share"} == set(pooled["musifeast17"][baseline]["arousal"])
    assert set(pooled["mirexlike"]["model"]) >= {"valence_auc_24_35", "valence_auc_2_3", "arousal_auc_15_3", "valence_below_zero_share"}
    # the development part's ratings: m0, m4 in Q1, m1, m5 in Q2, m2, m6 in Q3 (m3, m7 are in the test part)
    assert pooled["musifeast17"]["model"]["valence"]["labels_below_zero_share"] == pytest.approx(4 / 6)
    assert pooled["musifeast17"]["model"]["arousal"]["labels_below_zero_share"] == pytest.approx(2 / 6)
    assert pooled["reaction"]["moves"] > 0


def test_the_test_part_reaches_neither_cv_nor_the_final_model_and_is_scored_apart(runs: Path) -> None:
    for size in ("large", "default"):
        folds = json.loads((runs / size / "splits.json").read_text())["folds"]
        assert not set(sum(folds, [])) & set(TEST_IDS)
        assert len(sum(folds, [])) == 8 + 16 + 10 + 4 - len(TEST_IDS)
        teacher = np.load(runs / "large" / "teacher_final.npz")
        assert not set(teacher.files) & set(TEST_IDS)
    for name in ("rtmer-large", "rtmer-default"):
        scored = json.loads((runs / "models" / f"{name}.test.json").read_text())
        assert scored["4q"]["clips"] == 4 and scored["mirexlike"]["clips"] == 2 and scored["musifeast17"]["clips"] == 2
        assert sum(map(sum, scored["4q"]["confusion"])) == 4 and scored["reaction"]["moves"] > 0


def test_calibration_moves_the_exported_zero_by_the_offset_chosen_on_cv(runs: Path) -> None:
    report = json.loads((runs / "default" / "cv.json").read_text())
    offset = np.array([report["calibration"]["valence"], report["calibration"]["arousal"]])
    assert np.all(np.abs(offset) < 1) and "pooled_calibrated" in report
    metrics = json.loads(StreamingModel(runs / "models" / "rtmer-default.onnx").info.metadata["metrics"])
    assert metrics["4q"]["quadrant_accuracy"] == report["pooled_calibrated"]["4q"]["model"]["quadrant_accuracy"]
    # the large run's zero point was declined at export: its file and card give the plain CV figures, and say why
    large = json.loads((runs / "large" / "cv.json").read_text())
    metrics = json.loads(StreamingModel(runs / "models" / "rtmer-large.onnx").info.metadata["metrics"])
    assert metrics["4q"]["quadrant_accuracy"] == large["pooled"]["4q"]["model"]["quadrant_accuracy"]
    card = (runs / "models" / "rtmer-large.md").read_text()
    assert "--no-zero-point" in card and f"not applied: on the CV folds it gave 4Q accuracy {large['pooled_calibrated']['4q']['model']['quadrant_accuracy']:.3f}" in card


def test_the_default_s_zero_point_is_its_own_lean_on_the_development_part(runs: Path, realmusic: Path) -> None:
    """Its file reads as many development clips below 0 as their labels are, pooled over the signed sets."""
    card = (runs / "models" / "rtmer-default.md").read_text()
    assert "--calibrate" in card and "Cross-validation chose to calibrate" in card
    model = StreamingModel(runs / "models" / "rtmer-default.onnx")
    clips = [c for c in load_realmusic(realmusic) if c.clip_id not in TEST_IDS and c.dataset != "emotify"]
    estimates = np.stack([clip_estimate(p) for p in stream(model, [load_audio(c.audio_path, SAMPLE_RATE) for c in clips])])
    signs = np.stack([label_signs(c.quadrant, c.cluster, c.va) for c in clips])
    for column in range(2):
        signed = signs[:, column] != 0
        assert abs((estimates[signed, column] < 0).mean() - (signs[signed, column] < 0).mean()) <= 1.5 / signed.sum()


def test_folds_never_split_an_artist(runs: Path) -> None:
    folds = json.loads((runs / "large" / "splits.json").read_text())["folds"]
    artists = [{int(clip.removeprefix("4q-q")) // 2 for clip in fold if clip.startswith("4q-")} for fold in folds]
    assert len(folds) == 2 and not artists[0] & artists[1]
    assert sorted(sum(folds, [])) == sorted(set(sum(folds, [])))


@pytest.mark.parametrize("name", ["rtmer-large", "rtmer-default"])
def test_exported_models_stream_in_the_runtime_and_their_cards_quote_the_cv(runs: Path, name: str) -> None:
    path = runs / "models" / f"{name}.onnx"
    model = StreamingModel(path)
    assert model.info.name == name and model.info.sample_rate == SAMPLE_RATE
    state = model.initial_state(1)
    rng = np.random.default_rng(0)
    for _ in range(3):
        va, state = model.step((0.1 * rng.standard_normal((1, model.info.hop_samples))).astype(np.float32), state)
        assert va.shape == (1, 2) and np.all(np.abs(va) <= 1)
    metrics = json.loads(model.info.metadata["metrics"])
    card = path.with_suffix(".md").read_text()
    assert f"{metrics['4q']['quadrant_accuracy']:.3f}" in card
    assert f"{metrics['musifeast17']['arousal']['pearson_r']:.3f}" in card
    assert "research" in card and "MUSIFEAST-17" in card and "StratifiedGroupKFold" in card and "MIREX-like" in card
    scored = json.loads(path.with_suffix(".test.json").read_text())  # the test part, scored by the export
    assert f"| 4Q quadrant accuracy (chance 0.25) | {scored['4q']['quadrant_accuracy']:.3f} | {metrics['4q']['quadrant_accuracy']:.3f} |" in card
    assert f"| Q3 | {' | '.join(str(n) for n in scored['4q']['confusion'][2])} |" in card
    assert "python -m training.protocol make" in card
    assert "not the same bits" not in card  # this trainer seeds the initial weights
    if name == "rtmer-large":  # the options given to its run, in its command and its label mapping
        assert "--readout-share 0.5" in card and "--sign-weight 1.0 --clip-sign-weight 0.5" in card and "--rating-offset" in card
        assert "blended (0.5 to 0.5) with a memoryless linear readout" in card and "blended 0.5 with a linear readout" in model.info.metadata["architecture"]
        recorded = json.loads((runs / "large" / "run.json").read_text())["readout"]
        assert f"(alpha {recorded['alpha']:g})" in card and f"signs at ±{recorded['sign_level']:g}" in card and f"one hop in {recorded['vgmidi_stride']} of" in card
        assert "estimate at every hop (weight 1.0), and on the mean estimate of each clip's hops in a training crop (weight 0.5)" in card
        assert "plus an offset learned in training" in card
    else:  # the defaults
        assert "estimate at every hop (weight 0.3), so" in card and "plus an offset learned" not in card
    assert (runs / "models" / f"{name}.cv.json").is_file()


@pytest.mark.parametrize("argv", [["--size", "default"], ["--size", "large", "--readout-share", "1.0"], ["--size", "default", "--teacher", "runs/x", "--readout-share", "0.5"]])
def test_bad_options_stop_before_any_work_with_a_named_error(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["real", *argv, "--out", str(tmp_path / "run"), "--realmusic-root", str(tmp_path / "absent")]) == 2
    error = capsys.readouterr().err
    assert ("--teacher" in error if argv == ["--size", "default"] else "--readout-share" in error) and "Traceback" not in error
    assert not (tmp_path / "run").exists()
