"""Files libsndfile cannot read: decoded by `ffmpeg` on the PATH, or a hint when there is none.

ffmpeg is not installed on the test machines, so a fake `ffmpeg` is put on the PATH: a
script that reads a made-up format (``FAKEAUD1``, rate, channels, float32 samples) and
writes what real ffmpeg writes for the arguments rtmer passes (``-c:a pcm_f32be -f au -``):
a Sun AU header of 32 bytes (24, plus ffmpeg's annotation field) and big-endian float32.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import cli, music_like
from rtmer.app.cli import EXIT_INPUT_FAILED, EXIT_OK

FAKE_FFMPEG = '''#!{python}
import os, struct, sys
from array import array

args = sys.argv[1:]
with open(os.environ["FAKE_FFMPEG_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
src = args[args.index("-i") + 1].removeprefix("file:")
data = open(src, "rb").read()
kind = data[:8]
if kind not in (b"FAKEAUD1", b"FAKEAUD2", b"FAKEAUD3"):
    sys.stderr.write(src + ": Invalid data found when processing input\\n")
    sys.exit(1)
rate, channels = struct.unpack("<II", data[8:16])
samples = array("f")
samples.frombytes(data[16:])
samples.byteswap()
out = sys.stdout.buffer
out.write(b".snd" + struct.pack(">5I", 32, 0xFFFFFFFF, 6, rate, channels) + bytes(8))
body = samples.tobytes()
if kind == b"FAKEAUD2":  # fails half way
    out.write(body[: len(body) // 2])
    out.flush()
    sys.stderr.write("Error while decoding stream #0:0: Invalid data found when processing input\\n")
    sys.exit(1)
if kind == b"FAKEAUD3":  # a truncated file: ffmpeg stops where it ends, says so, and exits 0
    out.write(body[: len(body) // 2])
    sys.stderr.write("[mp3float @ 0x1] Header missing\\n")
    sys.exit(0)
out.write(body)
'''


def write_fake(path: Path, audio: np.ndarray, rate: int, kind: bytes = b"FAKEAUD1") -> Path:
    """``audio`` [frames, channels] in the fake format, which libsndfile cannot read."""
    frames = np.ascontiguousarray(audio, dtype="<f4")
    path.write_bytes(kind + struct.pack("<II", rate, frames.shape[1]) + frames.tobytes())
    return path


@pytest.fixture
def fake_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake `ffmpeg` first on the PATH; returns the log of its command lines."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "ffmpeg"
    exe.write_text(FAKE_FFMPEG.replace("{python}", sys.executable))
    exe.chmod(0o755)
    log = tmp_path / "ffmpeg.log"
    log.write_text("")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_FFMPEG_LOG", str(log))
    return log


@pytest.fixture(scope="module")
def stereo() -> np.ndarray:
    x = music_like(3.3, 44100, seed=5)
    return np.stack([x, 0.3 * music_like(3.3, 44100, seed=6)], axis=1).astype(np.float32)


def test_m4a_is_decoded_by_ffmpeg_with_the_same_numbers_as_the_same_pcm_in_a_wav(
    fake_ffmpeg: Path, stereo: np.ndarray, tmp_path: Path
) -> None:
    m4a = write_fake(tmp_path / "song.m4a", stereo, 44100)
    wav = tmp_path / "same.wav"
    sf.write(wav, stereo, 44100, subtype="FLOAT")
    code, from_ffmpeg, err = cli("analyze", str(m4a), "--to", "json")
    assert code == EXIT_OK, err
    _, from_wav, _ = cli("analyze", str(wav), "--to", "json")
    got, want = json.loads(from_ffmpeg)["files"][0], json.loads(from_wav)["files"][0]
    assert got["file"] == str(m4a) and len(got["updates"]) == 7
    assert [u["raw"] for u in got["updates"]] == [u["raw"] for u in want["updates"]]  # exactly
    [command] = fake_ffmpeg.read_text().splitlines()
    assert f"-i file:{m4a}" in command and "-c:a pcm_f32be -f au -" in command and "-map 0:a:0" in command


def test_run_reads_ffmpeg_files_with_a_channel_pick(fake_ffmpeg: Path, stereo: np.ndarray, tmp_path: Path) -> None:
    m4a = write_fake(tmp_path / "song.m4a", stereo, 44100)
    wav = tmp_path / "same.wav"
    sf.write(wav, stereo, 44100, subtype="FLOAT")
    code, out, err = cli("run", "--stream", f"file:{m4a}:2", "--no-realtime", "--ndjson", "--no-display")
    assert code == EXIT_OK, err
    _, want, _ = cli("run", "--stream", f"file:{wav}:2", "--no-realtime", "--ndjson", "--no-display")
    assert [json.loads(line)["raw"] for line in out.splitlines()] == [json.loads(line)["raw"] for line in
                                                                       want.splitlines()]
    code, _, err = cli("run", "--stream", f"file:{m4a}:3", "--no-realtime", "--ndjson", "--no-display")
    assert code == EXIT_INPUT_FAILED and "has 2 channels; channel 3 was asked for" in err


def test_without_ffmpeg_the_error_says_how_to_read_the_file(
    stereo: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m4a = write_fake(tmp_path / "song.m4a", stereo, 44100)
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without ffmpeg
    code, out, err = cli("analyze", str(m4a))
    assert code == EXIT_INPUT_FAILED and out == ""
    assert f"audio input '{m4a}': cannot read as audio (" in err
    assert "for m4a/AAC and other formats install ffmpeg" in err and "Traceback" not in err


def test_what_ffmpeg_cannot_decode_is_named_with_its_message(fake_ffmpeg: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.m4a"
    bad.write_bytes(b"not audio at all" * 10)
    code, _, err = cli("analyze", str(bad))
    assert code == EXIT_INPUT_FAILED
    assert f"audio input '{bad}': ffmpeg cannot decode it (ffmpeg exited with 1: " in err
    assert "Invalid data found when processing input" in err


@pytest.mark.parametrize(("kind", "said"), [(b"FAKEAUD2", "ffmpeg exited with 1: Error while decoding stream"),
                                           (b"FAKEAUD3", "ffmpeg: [mp3float @ 0x1] Header missing")])
def test_ffmpeg_stopping_half_way_is_a_truncation_like_libsndfiles(fake_ffmpeg: Path, stereo: np.ndarray,
                                                                    tmp_path: Path, kind: bytes, said: str) -> None:
    """Failing (exit 1) or not (exit 0, errors said): what came is analysed, with the same warning and exit 1."""
    half = write_fake(tmp_path / "half.m4a", stereo, 44100, kind=kind)
    good = write_fake(tmp_path / "good.m4a", stereo, 44100)
    code, out, err = cli("analyze", str(half), str(good))
    assert code == EXIT_INPUT_FAILED, err
    assert f"WARNING file {half}: is truncated or damaged: decoding stopped at 1.65 s ({said}" in err, err
    assert "1 of 2 files analysed with a warning (truncated?): " + str(half) in err
    rows = [row.split(",")[6] for row in out.splitlines()[1:]]
    assert rows.count(str(good)) == 7 and rows.count(str(half)) == 4


def test_stdin_in_a_format_only_ffmpeg_reads(
    fake_ffmpeg: Path, stereo: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m4a = write_fake(tmp_path / "song.m4a", stereo, 44100)
    code, want, _ = cli("analyze", str(m4a))
    with m4a.open("rb") as f:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(f))  # `rtmer analyze - < song.m4a`
        code, out, err = cli("analyze", "-")
    assert code == EXIT_OK, err
    assert [r.split(",")[:6] for r in out.splitlines()] == [r.split(",")[:6] for r in want.splitlines()]
    assert not list(Path(tempfile.gettempdir()).glob("rtmer-stdin-*"))  # the copy is gone
