"""The fixed test part: a fifth of every set, split off once, that no choice ever sees.

The evaluation protocol:

1. ``python -m training.protocol make`` splits every labelled item (the real sets' clips and
   VGMIDI's pieces) into a development part and a test part of about 20%: the first fold of
   scikit-learn's ``StratifiedGroupKFold`` (5 folds, seed ``TEST_SEED``) over all sets at
   once, grouped by artist across sets (Emotify by clip, VGMIDI by piece) and stratified by
   set and genre, quadrant or cluster. The ids are committed in ``training/test_part.json``,
   so the part stays fixed whatever a later scikit-learn or data loader does.
2. The trainer (``python -m training real``) never loads the test part: cross-validation, the
   final model, its teacher and its readout all see the development part only. Every
   choice (architecture, recipe, readout, thresholds, calibration) is made on that CV.
3. ``python -m training.testscore`` scores a shipped ``.onnx`` file on the test part once, through
   onnxruntime as rtmer runs it; its card gives those figures beside the CV ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from training.datasets import load_vgmidi
from training.realmusic import load_realmusic

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
TEST_PART_FILE = Path(__file__).with_name("test_part.json")
TEST_FOLDS = 5  # the test part is one fold of five: about 20%
TEST_SEED = 20261205


def vgmidi_test_id(piece_id: str) -> str:
    return f"vgmidi-{piece_id}"


def choose_test_part(ids: Sequence[str], groups: Sequence[str], strata: Sequence[str], seed: int = TEST_SEED) -> list[str]:
    """The ids of the first of ``TEST_FOLDS`` stratified folds grouped by ``groups``, sorted."""
    splitter = StratifiedGroupKFold(n_splits=TEST_FOLDS, shuffle=True, random_state=seed)
    _, test = next(splitter.split(np.zeros(len(ids)), list(strata), list(groups)))
    return sorted(ids[i] for i in test)


def make_test_part(realmusic_root: Path, vgmidi_root: Path) -> dict:
    """The test part of every real set and of VGMIDI's pieces, with its counts per set."""
    ids, groups, strata, sets = [], [], [], []
    for clip in load_realmusic(realmusic_root):
        ids.append(clip.clip_id)
        groups.append(clip.group)
        strata.append(f"{clip.dataset}:{clip.stratum}")
        sets.append(clip.dataset)
    for piece in load_vgmidi(vgmidi_root):
        ids.append(vgmidi_test_id(piece.piece_id))
        groups.append(f"piece:{piece.piece_id}")
        strata.append("vgmidi")
        sets.append("vgmidi")
    test = choose_test_part(ids, groups, strata)
    chosen = set(test)
    counts = {name: {"test": sum(1 for i, s in zip(ids, sets) if s == name and i in chosen), "all": total} for name, total in Counter(sets).items()}
    return {"folds": TEST_FOLDS, "seed": TEST_SEED, "counts": counts, "ids": test}


def load_test_part(path: Path = TEST_PART_FILE) -> frozenset[str]:
    """The committed test part's ids (clip ids, and ``vgmidi-<piece>`` for VGMIDI pieces)."""
    return frozenset(json.loads(Path(path).read_text())["ids"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.protocol", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make", help="split off the test part and write it (once: it is committed)")
    make.add_argument("--realmusic-root", type=Path, default=SHARED / "realmusic")
    make.add_argument("--vgmidi-root", type=Path, default=SHARED / "vgmidi")
    make.add_argument("--out", type=Path, default=TEST_PART_FILE)
    make.add_argument("--force", action="store_true", help="replace an existing test part (every model trained since must be trained again)")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.force:
        print(f"error: {args.out} exists; the test part is fixed once made (--force replaces it)", file=sys.stderr)
        return 2
    part = make_test_part(args.realmusic_root, args.vgmidi_root)
    args.out.write_text(json.dumps(part, indent=1) + "\n")
    print(json.dumps(part["counts"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
