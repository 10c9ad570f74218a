"""Training one head on cached features: random causal crops, early stopping on validation."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from training.features import Clip
from training.frontend import FRAMES_PER_HOP, N_FEATURES
from training.models import Head, zero_states


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    patience: int = 5
    batch_size: int = 32
    crop_hops: int = 48  # 24 s: each crop starts from a cold state, as a stream can
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    loss: str = "rmse"  # or "ccc", or "rmse+ccc"
    seed: int = 0


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_rmse: list[float] = field(default_factory=list)
    best_epoch: int = -1


LOSSES = ("rmse", "ccc", "rmse+ccc")


def fit_normalizer(head: Head, clips: Sequence[Clip]) -> None:
    frames = np.concatenate([clip.features[::7] for clip in clips]).astype(np.float64)
    head.normalizer.fit(frames.mean(axis=0).astype(np.float32), frames.std(axis=0).astype(np.float32))


def ccc(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Concordance correlation per output column, over the first axis."""
    pm, tm = predicted.mean(0), target.mean(0)
    covariance = ((predicted - pm) * (target - tm)).mean(0)
    return 2 * covariance / (predicted.var(0, unbiased=False) + target.var(0, unbiased=False) + (pm - tm) ** 2 + 1e-8)


def loss_value(kind: str, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    rmse = ((predicted - target) ** 2).mean(0).add(1e-8).sqrt().mean()
    if kind == "rmse":
        return rmse
    if kind == "ccc":
        return (1 - ccc(predicted, target)).mean()
    return rmse + 0.5 * (1 - ccc(predicted, target)).mean()


def _crops(clips: Sequence[Clip], crop_hops: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(clip index, first hop of the crop): one crop per clip an epoch, at a random place.

    A clip shorter than a crop gets a negative start: silence is padded in front of it.
    """
    crops = []
    for index, clip in enumerate(clips):
        last_start = clip.first_hop + len(clip.labels) - crop_hops
        crops.append((index, int(rng.integers(0, last_start + 1)) if last_start > 0 else last_start))
    rng.shuffle(crops)
    return crops


def _batch(clips: Sequence[Clip], crops: Sequence[tuple[int, int]], crop_hops: int, silence: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features [b, crop_hops*32, 69], labels [b, crop_hops, 2] and a mask of labelled hops.

    A crop that starts before the clip (a clip shorter than a crop) is padded in front with
    the features of digital silence, as a stream that starts with silence would be.
    """
    features = np.empty((len(crops), crop_hops * FRAMES_PER_HOP, N_FEATURES), np.float32)
    labels = np.zeros((len(crops), crop_hops, 2), np.float32)
    mask = np.zeros((len(crops), crop_hops), bool)
    for row, (index, start) in enumerate(crops):
        clip = clips[index]
        features[row] = silence
        source_start = max(start, 0)
        end = min(start + crop_hops, clip.n_hops)
        features[row, (source_start - start) * FRAMES_PER_HOP : (end - start) * FRAMES_PER_HOP] = clip.features[
            source_start * FRAMES_PER_HOP : end * FRAMES_PER_HOP
        ]
        for hop in range(max(start, clip.first_hop), min(start + crop_hops, clip.first_hop + len(clip.labels))):
            labels[row, hop - start] = clip.labels[hop - clip.first_hop]
            mask[row, hop - start] = True
    return torch.from_numpy(features), torch.from_numpy(labels), torch.from_numpy(mask)


@torch.no_grad()
def predict(head: Head, clip: Clip) -> np.ndarray:
    """va [n_hops, 2] for the whole clip, from a cold start (offline = streaming)."""
    head.eval()
    features = torch.from_numpy(clip.features.astype(np.float32))[None]
    va, _ = head(features, zero_states(head, 1))
    return va[0].numpy()


def labelled_predictions(head: Head, clip: Clip) -> np.ndarray:
    return predict(head, clip)[clip.first_hop : clip.first_hop + len(clip.labels)]


def pooled_rmse(head: Head, clips: Sequence[Clip]) -> float:
    errors = np.concatenate([labelled_predictions(head, clip) - clip.labels for clip in clips])
    return float(np.sqrt((errors**2).mean(axis=0)).mean())


def train_head(
    head: Head,
    train: Sequence[Clip],
    val: Sequence[Clip],
    config: TrainConfig,
    *,
    silence: np.ndarray,
    desc: str = "train",
    checkpoint: Path | None = None,
) -> History:
    """Train in place; the head ends with the weights of its best validation epoch.

    Each new best is also written to ``checkpoint`` (a torch state dict), when given.
    """
    if config.loss not in LOSSES:
        raise ValueError(f"loss={config.loss!r} must be one of {LOSSES}")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    fit_normalizer(head, train)
    optimizer = torch.optim.AdamW(head.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    history = History()
    best_state, best_rmse, stale = copy.deepcopy(head.state_dict()), float("inf"), 0
    for epoch in range(config.epochs):
        head.train()
        crops = _crops(train, config.crop_hops, rng)
        batches = range(0, len(crops), config.batch_size)
        losses = []
        with tqdm(batches, desc=f"{desc} epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False) as bar:
            for start in bar:
                features, labels, mask = _batch(train, crops[start : start + config.batch_size], config.crop_hops, silence)
                va, _ = head(features, zero_states(head, len(features)))
                loss = loss_value(config.loss, va[mask], labels[mask])
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
                optimizer.step()
                losses.append(loss.item())
                bar.set_postfix(loss=f"{np.mean(losses):.4f}")
        val_rmse = pooled_rmse(head, val)
        history.train_loss.append(float(np.mean(losses)))
        history.val_rmse.append(val_rmse)
        tqdm.write(f"{desc} epoch {epoch + 1}: train loss {history.train_loss[-1]:.4f}, val rmse {val_rmse:.4f}")
        if val_rmse < best_rmse - 1e-4:
            best_state, best_rmse, stale, history.best_epoch = copy.deepcopy(head.state_dict()), val_rmse, 0, epoch
            if checkpoint:
                torch.save({"epoch": epoch, "val_rmse": val_rmse, "state_dict": best_state}, checkpoint)
        else:
            stale += 1
            if stale >= config.patience:
                break
    head.load_state_dict(best_state)
    head.eval()
    return history
