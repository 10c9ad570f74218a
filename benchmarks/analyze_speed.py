"""``rtmer analyze`` speed in multiples of real time, on one core.

Synthesises music (``rtmer.app.demo.SynthMusic``), writes it as WAV at the model rate and
at 44.1 kHz (which adds soxr resampling), and times ``rtmer.app.cli.main(["analyze", ...])``
in this process, pinned to one CPU, with onnxruntime on 1 intra-op thread. Everything
goes through the same stages as ``rtmer run``: decode, resample, frame, sanitise, one
model step per hop (single file: batch of 1), smooth, label, CSV. With several files,
their hops are batched into one model call per round. Target: >= 500x real time.

    python benchmarks/analyze_speed.py [--seconds 120] [--files 4]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import soundfile as sf

from rtmer.app.cli import main as rtmer_main
from rtmer.app.demo import SynthMusic
from rtmer.core.model import StreamingModel


def timed(argv: list[str], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        out, err = io.StringIO(), io.StringIO()
        t0 = time.perf_counter()
        code = rtmer_main(argv, stdout=out, stderr=err)
        best = min(best, time.perf_counter() - t0)
        assert code == 0, err.getvalue()
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=120.0, help="length of each test file [s]")
    ap.add_argument("--files", type=int, default=4, help="files for the batched case")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    rate = StreamingModel().info.sample_rate
    with tempfile.TemporaryDirectory() as tmp:
        native = Path(tmp) / "native.wav"
        cd = Path(tmp) / "cd.wav"
        sf.write(native, SynthMusic(rate=rate).render(args.seconds), rate)
        sf.write(cd, SynthMusic(rate=44100).render(args.seconds), 44100, subtype="PCM_16")
        many = []
        for i in range(args.files):
            p = Path(tmp) / f"f{i}.wav"
            sf.write(p, SynthMusic(rate=rate, seed=i).render(args.seconds), rate)
            many.append(str(p))
        out = str(Path(tmp) / "out.csv")
        print(f"one CPU (affinity), onnxruntime 1 intra-op thread; files of {args.seconds:g} s")
        for label, files in ((f"1 file, {rate} Hz (no resampling)", [str(native)]),
                             ("1 file, 44.1 kHz 16-bit (soxr resampling)", [str(cd)]),
                             (f"{args.files} files at once, {rate} Hz (batched)", many)):
            t = timed(["analyze", *files, "-o", out])
            audio = args.seconds * len(files)
            x = audio / t
            print(f"{label:<44} {t:7.3f} s for {audio:g} s of audio: {x:7.0f}x real time "
                  f"({'meets' if x >= 500 else 'below'} the 500x target)")


if __name__ == "__main__":
    main()
