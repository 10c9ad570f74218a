"""``rtmer analyze --plot``: one analysed file drawn as a figure.

The figure has, on the left, valence and arousal over time [s] (smoothed as a thick
line, the model's raw output as a thin one) over bands that give the mood of each hop;
on the right, the smoothed path on the circumplex, coloured from start to end, with the
four mood regions named. It is drawn with matplotlib, which comes with the optional
extra ``plot`` (``pip install 'rtmer[plot]'``); ``require_matplotlib`` says so with a
``MissingExtraError`` (exit 2) when it is missing. The format follows the file's
extension: ``.png``, ``.svg`` or ``.pdf``.

``--plot PATH`` names an image file when PATH ends in one of those extensions (one input
only), else a folder (created if missing) that gets one ``<name>.png`` per input, named
as ``--output-dir`` names its files (``song.ogg`` -> ``song.ogg.png``). ``check_plot``
checks this before anything is analysed, like ``rtmer.app.output_paths.check_outputs``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from rtmer.errors import ConfigError, MissingExtraError
from rtmer.core.update import Update

PLOT_FORMATS = ("png", "svg", "pdf")
MOOD_COLOURS = {
    "excited": "#f2b705",
    "tense": "#d64545",
    "sad": "#3a78d8",
    "calm": "#2bb673",
    "neutral": "#9aa0a6",
}
"""Mood -> colour of its band and its region on the circumplex."""
MOOD_ALPHA = 0.22
"""Opacity of the mood bands [0, 1]."""
VALENCE_COLOUR = "#6a1b9a"
AROUSAL_COLOUR = "#e4572e"
FIGURE_INCHES = (12.0, 6.0)
DPI = 120
QUADRANTS = (("excited", 1, 1), ("tense", -1, 1), ("sad", -1, -1), ("calm", 1, -1))


def require_matplotlib() -> None:
    """Raise ``MissingExtraError`` when matplotlib (the ``plot`` extra) cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("--plot", "matplotlib", "plot") from exc


def _is_image_path(plot: str) -> bool:
    return Path(plot).suffix.lower().lstrip(".") in PLOT_FORMATS


def check_plot(plot: str, paths: Sequence[str]) -> None:
    """Refuse a ``--plot`` that cannot be written for ``paths``, before anything is analysed.

    Also checks that matplotlib is installed. A folder is created if missing. Raises
    ``ConfigError`` (``MissingExtraError``) naming the value and what was expected.
    """
    from rtmer.app.output_paths import check_writable_file, dedupe, make_writable_folder

    require_matplotlib()
    inputs, _ = dedupe(paths)
    p = Path(plot)
    if _is_image_path(plot):
        if len(inputs) != 1:
            raise ConfigError(f"--plot={plot!r} names one image but {len(inputs)} inputs are given; "
                              "give a folder for one image per input")
        if p.is_dir():
            raise ConfigError(f"--plot={plot!r} is a folder; expected an image file ({', '.join(PLOT_FORMATS)})")
        check_writable_file("plot", plot)
        return
    if p.exists() and not p.is_dir():
        raise ConfigError(f"--plot={plot!r} is a file without an image extension; expected a "
                          f"{', '.join('.' + f for f in PLOT_FORMATS)} file or a folder")
    make_writable_folder("plot", plot)


def plot_targets(plot: str, paths: Sequence[str]) -> dict[str, Path]:
    """Where each input's figure goes (see the module docstring); ``check_plot`` first."""
    if _is_image_path(plot):
        return {p: Path(plot) for p in paths}
    from rtmer.app.output_paths import output_names

    return {p: Path(plot) / name for p, name in output_names(paths, "png").items()}


def _runs(updates: Sequence[Update]) -> list[tuple[str, float, float]]:
    """(mood, start [s], end [s]) of each run of hops with the same mood; a hop spans (t - hop, t]."""
    runs: list[tuple[str, float, float]] = []
    prev_t = 0.0
    for u in updates:
        if runs and runs[-1][0] == u.mood:
            runs[-1] = (u.mood, runs[-1][1], u.t)
        else:
            runs.append((u.mood, prev_t, u.t))
        prev_t = u.t
    return runs


def plot_updates(updates: Sequence[Update], path: str | Path, *, title: str) -> None:
    """Draw ``updates`` (one stream, in order) and save the figure to ``path``; OSError if it cannot be written."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, Patch, Rectangle

    t = np.array([u.t for u in updates], dtype=float)
    v = np.array([u.valence for u in updates], dtype=float)
    a = np.array([u.arousal for u in updates], dtype=float)
    v_raw = np.array([u.valence_raw for u in updates], dtype=float)
    a_raw = np.array([u.arousal_raw for u in updates], dtype=float)

    fig = Figure(figsize=FIGURE_INCHES, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 2, width_ratios=(2.1, 1.0))
    ax_v = fig.add_subplot(grid[0, 0])
    ax_a = fig.add_subplot(grid[1, 0], sharex=ax_v)
    ax_c = fig.add_subplot(grid[:, 1])
    fig.suptitle(title)
    runs = _runs(updates)
    end = float(t[-1]) if len(t) else 1.0
    for ax, name, smooth, raw, colour in ((ax_v, "valence", v, v_raw, VALENCE_COLOUR),
                                          (ax_a, "arousal", a, a_raw, AROUSAL_COLOUR)):
        for mood, start, stop in runs:
            ax.axvspan(start, stop, color=MOOD_COLOURS.get(mood, MOOD_COLOURS["neutral"]), alpha=MOOD_ALPHA, lw=0)
        ax.axhline(0.0, color="#555555", lw=0.8)
        ax.plot(t, raw, color=colour, lw=0.9, alpha=0.45, label=f"{name}, raw")
        ax.plot(t, smooth, color=colour, lw=2.2, label=f"{name}, smoothed")
        ax.set_ylim(-1.05, 1.05)
        ax.set_xlim(0.0, end)
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper right", fontsize="small", framealpha=0.85)
    ax_a.set_xlabel("time [s]")
    ax_v.tick_params(labelbottom=False)
    seen = [m for m in MOOD_COLOURS if any(r[0] == m for r in runs)]
    if seen:
        ax_v.legend(
            handles=[*ax_v.get_legend_handles_labels()[0],
                     *(Patch(color=MOOD_COLOURS[m], alpha=MOOD_ALPHA + 0.2, label=m) for m in seen)],
            loc="upper right", fontsize="small", framealpha=0.85, ncols=2,
        )
    if not len(t):
        ax_v.text(0.5, 0.5, "no updates", transform=ax_v.transAxes, ha="center", va="center")

    # the circumplex: the four regions, the unit circle, the path coloured by time
    for mood, sv, sa in QUADRANTS:
        ax_c.add_patch(Rectangle((min(0, sv), min(0, sa)), 1, 1, color=MOOD_COLOURS[mood], alpha=0.10, lw=0))
        ax_c.text(0.95 * sv, 0.95 * sa, mood, ha="right" if sv > 0 else "left", va="top" if sa > 0 else "bottom",
                  fontsize="large", fontweight="bold", color=MOOD_COLOURS[mood])
    ax_c.add_patch(Circle((0, 0), 1.0, fill=False, color="#777777", lw=0.8))
    ax_c.axhline(0.0, color="#555555", lw=0.8)
    ax_c.axvline(0.0, color="#555555", lw=0.8)
    ax_c.plot(v_raw, a_raw, ".", color="#888888", ms=2.5, alpha=0.5, label="raw")
    if len(t) > 1:
        pts = np.stack([v, a], axis=1)
        segments = np.stack([pts[:-1], pts[1:]], axis=1)
        line = LineCollection(list(segments), cmap="viridis", linewidths=2.0)
        line.set_array(t[1:])
        ax_c.add_collection(line)
        fig.colorbar(line, ax=ax_c, label="time [s]", location="bottom", shrink=0.8)
    if len(t):
        ax_c.plot(v[:1], a[:1], "o", color="#222222", ms=7, label="start")
        ax_c.plot(v[-1:], a[-1:], "s", color="#222222", ms=7, label="end")
    ax_c.set_xlim(-1.05, 1.05)
    ax_c.set_ylim(-1.05, 1.05)
    ax_c.set_aspect("equal")
    ax_c.set_xlabel("valence")
    ax_c.set_ylabel("arousal")
    ax_c.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncols=3, fontsize="small", frameon=False)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.rtmer-partial")  # then renamed: never a half-written image
    try:
        fig.savefig(tmp, format=target.suffix.lower().lstrip(".") or "png")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
