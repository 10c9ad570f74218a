import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from music import chords
from rtmer.core.model import StreamingModel as RuntimeModel
from training.__main__ import main
from training.evaluate import folds_by_piece, metrics
from training.features import Clip
from training.frontend import FRAMES_PER_HOP, FrontEnd, HOP_SAMPLES, clip_features
from training.models import build_head
from training.train import TrainConfig, labelled_predictions, train_head

DEAM_DYNAMIC = "annotations averaged per song/dynamic (per second annotations)"


def energetic_or_calm(index: int, seconds: float = 30.0) -> tuple[np.ndarray, float]:
    """Loud, fast, major music labelled (0.5, 0.6); quiet, slow, minor music labelled (-0.4, -0.6)."""
    if index % 2 == 0:
        return chords(seconds, bpm=160, root_hz=330, minor=False, level=0.8, seed=index), 0.6
    return chords(seconds, bpm=50, root_hz=110, minor=True, level=0.1, seed=index), -0.6


def clip_of(index: int) -> Clip:
    audio, arousal = energetic_or_calm(index)
    features = clip_features(FrontEnd(), audio).astype(np.float16)
    n_hops = len(features) // FRAMES_PER_HOP
    labels = np.tile(np.float32([0.5 if arousal > 0 else -0.4, arousal]), (n_hops, 1))
    return Clip(f"piece{index}", "", features, labels, 0)


def test_training_learns_what_the_labels_follow() -> None:
    clips = [clip_of(i) for i in range(10)]
    train, val, test = clips[:6], clips[6:8], clips[8:]
    head = build_head("crnn")
    config = TrainConfig(epochs=25, patience=25, batch_size=6, crop_hops=16, learning_rate=1e-2, seed=0)
    silence = clip_features(FrontEnd(), np.zeros(HOP_SAMPLES, np.float32))[0]
    history = train_head(head, train, val, config, silence=silence)
    predicted = np.concatenate([labelled_predictions(head, clip) for clip in test])
    target = np.concatenate([clip.labels for clip in test])
    assert metrics(predicted, target)["arousal"]["rmse"] < 0.3  # the train-mean predictor's is 0.6
    assert min(history.val_rmse) < history.val_rmse[0]


def test_metrics_of_known_predictions() -> None:
    target = np.stack([np.linspace(-1, 1, 50), np.sin(np.linspace(0, 6, 50))], axis=1)
    perfect = metrics(target, target)
    assert perfect["valence"] == pytest.approx({"rmse": 0.0, "pearson_r": 1.0, "ccc": 1.0, "r2": 1.0})
    mean = metrics(np.broadcast_to(target.mean(0), target.shape), target)
    assert mean["arousal"]["r2"] == pytest.approx(0.0) and mean["arousal"]["ccc"] == pytest.approx(0.0)
    shifted = metrics(target + 0.1, target)
    assert shifted["valence"]["rmse"] == pytest.approx(0.1) and shifted["valence"]["ccc"] < 1.0


def test_folds_are_disjoint_cover_every_piece_and_follow_the_seed() -> None:
    pieces = [f"p{i}" for i in range(23) for _ in range(3)]  # three variants a piece
    folds = folds_by_piece(pieces, 5, seed=7)
    assert sorted(p for fold in folds for p in fold) == sorted(set(pieces))
    assert {len(fold) for fold in folds} <= {4, 5}
    assert folds == folds_by_piece(pieces, 5, seed=7) and folds != folds_by_piece(pieces, 5, seed=8)


def write_deam(root: Path, songs: int) -> None:
    (root / "MEMD_audio").mkdir(parents=True)
    annotations = root / DEAM_DYNAMIC
    annotations.mkdir(parents=True)
    columns = [f"sample_{15000 + 500 * k}ms" for k in range(30)]
    rows = {"valence": [], "arousal": []}
    for song in range(songs):
        audio, arousal = energetic_or_calm(song, seconds=31.0)
        sf.write(root / "MEMD_audio" / f"{song + 1}.wav", audio, 16000)
        rows["arousal"].append([arousal] * 30)
        rows["valence"].append([arousal / 2] * 30)
    for name, values in rows.items():
        lines = ["song_id," + ",".join(columns)] + [f"{i + 1}," + ",".join(f"{v:.3f}" for v in row) for i, row in enumerate(values)]
        (annotations / f"{name}.csv").write_text("\n".join(lines) + "\n")


def test_train_command_cross_validates_exports_and_writes_the_card(tmp_path: Path) -> None:
    write_deam(tmp_path / "deam", songs=8)
    args = ["train", "--model", "cnn", "--data", "deam", "--data-root", str(tmp_path / "deam"), "--folds", "2", "--epochs", "3",
            "--crop-hops", "16", "--batch-size", "4", "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "run"),
            "--export", "tiny", "--models-dir", str(tmp_path / "models")]
    assert main(args) == 0
    assert (tmp_path / "run" / "fold-1of2-cnn.pt").exists() and (tmp_path / "run" / "final.pt").exists()
    report = json.loads((tmp_path / "run" / "cv.json").read_text())
    assert len(report["folds"]) == 2
    for fold in report["folds"]:
        assert set(fold["all"]["model"]["valence"]) == {"rmse", "pearson_r", "ccc", "r2"}
        assert fold["all"]["frames"] == 4 * 30  # four held-out songs, 30 labelled hops each
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())["folds"]
    assert not set(splits[0]) & set(splits[1])
    model = RuntimeModel(tmp_path / "models" / "tiny.onnx")
    assert json.loads(model.info.metadata["metrics"])["all"]["model"]["arousal"]["rmse"] == pytest.approx(report["pooled"]["all"]["model"]["arousal"]["rmse"])
    card = (tmp_path / "models" / "tiny.md").read_text()
    assert f"{report['pooled']['all']['model']['arousal']['rmse']:.3f}" in card and "p50" in card
    assert (tmp_path / "models" / "tiny.cv.png").stat().st_size > 10_000
    # the export command rebuilds the same file from the run folder
    assert main(["export", "--run", str(tmp_path / "run"), "--name", "again", "--models-dir", str(tmp_path / "models")]) == 0
    again = RuntimeModel(tmp_path / "models" / "again.onnx")
    audio = np.random.default_rng(0).standard_normal((2, HOP_SAMPLES)).astype(np.float32) * 0.1
    assert np.array_equal(again.step(audio, again.initial_state(2))[0], model.step(audio, model.initial_state(2))[0])


def test_train_command_names_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--model", "transformer", "--data", "deam", "--data-root", str(tmp_path)]) == 2
    assert "model='transformer' is unknown" in capsys.readouterr().err
    assert main(["train", "--data", "deam", "--data-root", str(tmp_path / "nowhere")]) == 2
    assert str(tmp_path / "nowhere") in capsys.readouterr().err
