"""Metrics pooled over held-out frames, cross-validation by piece, and the curves plot."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from training.features import Clip

DIMENSIONS = ("valence", "arousal")


def metrics(predicted: np.ndarray, target: np.ndarray) -> dict[str, dict[str, float]]:
    """RMSE, Pearson r, CCC and R^2 per dimension; arrays are [frames, 2] (valence, arousal)."""
    out = {}
    for column, name in enumerate(DIMENSIONS):
        p, t = predicted[:, column].astype(np.float64), target[:, column].astype(np.float64)
        error = p - t
        covariance = ((p - p.mean()) * (t - t.mean())).mean()
        pearson = covariance / (p.std() * t.std()) if p.std() > 0 and t.std() > 0 else 0.0
        out[name] = {
            "rmse": float(np.sqrt((error**2).mean())),
            "pearson_r": float(pearson),
            "ccc": float(2 * covariance / (p.var() + t.var() + (p.mean() - t.mean()) ** 2)),
            "r2": float(1 - (error**2).sum() / ((t - t.mean()) ** 2).sum()),
        }
    return out


def folds_by_piece(piece_ids: Sequence[str], n_folds: int, seed: int) -> list[list[str]]:
    """Pieces shuffled with a fixed seed and dealt into n_folds held-out sets."""
    pieces = sorted(set(piece_ids))
    order = np.random.default_rng(seed).permutation(len(pieces))
    return [sorted(pieces[i] for i in order[fold::n_folds]) for fold in range(n_folds)]


def plot_curves(path: Path, examples: Sequence[tuple[Clip, np.ndarray]], *, title: str) -> None:
    """Predicted against annotated curves for a few held-out clips."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(examples), 1, figsize=(10, 2.3 * len(examples)), squeeze=False)
    for ax, (clip, predicted) in zip(axes[:, 0], examples):
        hops = np.arange(clip.first_hop, clip.first_hop + len(clip.labels))
        t = (hops + 1) * 0.5
        for column, (name, colour) in enumerate(zip(DIMENSIONS, ("tab:blue", "tab:red"))):
            ax.plot(t, clip.labels[:, column], color=colour, lw=2, alpha=0.5, label=f"{name} annotated")
            ax.plot(t, predicted[:, column], color=colour, lw=1, ls="--", label=f"{name} predicted")
        ax.set_ylim(-1, 1)
        ax.set_title(f"{clip.piece_id} ({clip.variant})", fontsize=9)
        ax.axhline(0, color="grey", lw=0.5)
    axes[0, 0].legend(fontsize=7, ncol=4, loc="lower right")
    axes[-1, 0].set_xlabel("time [s] (end of hop)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
