"""`rtmer analyze` as a batch job: output checks and names, stdin, interruption, progress, summary."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import cli, read_csv, stderr_until
from rtmer.analyze import dedupe, output_names
from rtmer.cli import EXIT_INPUT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

REPO = Path(__file__).resolve().parents[2]
VALUES = ("valence", "arousal", "valence_raw", "arousal_raw")


@pytest.fixture(scope="module")
def clip_csv(clip: Path) -> str:
    code, out, err = cli("analyze", str(clip))
    assert code == EXIT_OK, err
    return out


# ---- outputs are checked before anything is analysed ------------------------------------
@pytest.mark.parametrize(
    ("kind", "expected"),
    [("dir", r"--output='.*' is a folder; expected a file"),
     ("missing", r"--output='.*x\.csv': folder '.*missing' does not exist"),
     ("file-as-dir", r"--output-dir='.*taken\.txt' is a file; expected a folder"),
     ("both", r"give --output or --output-dir, not both")],
)
def test_unwritable_outputs_are_refused_before_the_model_loads(
    clip: Path, tmp_path: Path, kind: str, expected: str
) -> None:
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    args = {"dir": ["-o", str(tmp_path)], "missing": ["-o", str(tmp_path / "missing" / "x.csv")],
            "file-as-dir": ["--output-dir", str(taken)],
            "both": ["-o", str(tmp_path / "a.csv"), "--output-dir", str(tmp_path / "d")]}[kind]
    # a model that does not exist: had the model been loaded (or anything analysed) first, this would exit 3
    code, out, err = cli("analyze", str(clip), *args, "--model", str(tmp_path / "none.onnx"))
    assert code == EXIT_USAGE, err
    assert re.search(expected, err), err
    assert out == "" and "analysed" not in err and "Traceback" not in err
    assert taken.read_text() == "keep me" and not (tmp_path / "missing").exists()


# ---- names that never collide -------------------------------------------------------------
def test_output_names_keep_the_extension_and_add_parents_when_names_collide(tmp_path: Path) -> None:
    paths = ["x/song.ogg", "y/song.wav", "z/song.wav", "-", "a/b/deep.flac", "c/b/deep.flac"]
    names = output_names(paths, "csv")
    assert names == {"x/song.ogg": "song.ogg.csv", "y/song.wav": "y_song.wav.csv", "z/song.wav": "z_song.wav.csv",
                     "-": "stdin.csv", "a/b/deep.flac": "a_b_deep.flac.csv", "c/b/deep.flac": "c_b_deep.flac.csv"}
    # a name that equals another input's name with its parent, and names equal but for case
    tricky = output_names(["y_song.wav", "y/song.wav", "q/song.wav", "Song.WAV"], "json")
    assert len({n.casefold() for n in tricky.values()}) == 4
    assert tricky["y_song.wav"] == "y_song.wav.json"


def test_dedupe_names_the_repeats(tmp_path: Path) -> None:
    f = tmp_path / "a.wav"
    f.write_bytes(b"")
    other = tmp_path / "sub" / ".." / "a.wav"
    (tmp_path / "sub").mkdir()
    paths, notes = dedupe([str(f), str(f), str(other), "-", "-"])
    assert paths == [str(f), "-"]
    assert len(notes) == 3 and f"{str(other)!r} is the same file as {str(f)!r}" in notes[1]


def test_inputs_that_share_a_stem_or_a_path_get_their_own_outputs(clip: Path, clip_csv: str, tmp_path: Path) -> None:
    for folder, name in (("x", "song.ogg"), ("y", "song.wav"), ("z", "song.wav")):
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / name, sf.read(clip)[0], 44100)
    (tmp_path / "x" / "clip.wav").write_bytes(clip.read_bytes())
    xs, ys, zs = (str(tmp_path / f) for f in ("x/song.ogg", "y/song.wav", "z/song.wav"))
    out = tmp_path / "out"
    code, _, err = cli("analyze", xs, ys, zs, ys, str(clip), str(tmp_path / "x" / "clip.wav"), "--output-dir",
                       str(out))
    assert code == EXIT_OK, err  # was: ValueError: stream id ... is used twice
    assert {p.name for p in out.iterdir()} == {"song.ogg.csv", "x_clip.wav.csv", "y_song.wav.csv",
                                               "z_song.wav.csv", f"{clip.parent.name}_clip.wav.csv"}
    assert f"{ys!r} is given more than once; it is analysed once" in err
    assert {r["stream"] for r in read_csv((out / "y_song.wav.csv").read_text())} == {ys}
    assert {r["stream"] for r in read_csv((out / "z_song.wav.csv").read_text())} == {zs}
    assert (out / f"{clip.parent.name}_clip.wav.csv").read_text() == clip_csv
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


# ---- stdin -------------------------------------------------------------------------------
@pytest.fixture
def stdin_from(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], None]]:
    """Make sys.stdin read a file, as `rtmer analyze - < FILE` would."""
    opened: list[io.TextIOWrapper] = []

    def use(path: Path) -> None:
        opened.append(io.TextIOWrapper(path.open("rb")))
        monkeypatch.setattr(sys, "stdin", opened[-1])

    yield use
    for f in opened:
        f.close()


def test_stdin_raw_pcm_with_format_equals_the_file(
    clip: Path, clip_csv: str, tmp_path: Path, stdin_from: Callable[[Path], None]
) -> None:
    pcm = tmp_path / "clip.s16"
    pcm.write_bytes(sf.read(clip, dtype="int16")[0].astype("<i2").tobytes())
    stdin_from(pcm)
    code, out, err = cli("analyze", "-", "--format", "s16le", "--rate", "44100", "--channels", "2")
    assert code == EXIT_OK, err
    rows, offline = read_csv(out), read_csv(clip_csv)
    assert [r["time_s"] for r in rows] == [r["time_s"] for r in offline] and {r["stream"] for r in rows} == {"-"}
    for a, b in zip(offline, rows, strict=True):
        for k in VALUES:
            assert float(a[k]) == pytest.approx(float(b[k]), abs=1e-6)


def test_stdin_file_format_equals_the_file(clip: Path, clip_csv: str, stdin_from: Callable[[Path], None]) -> None:
    stdin_from(clip)  # `cat clip.wav | rtmer analyze -`
    code, out, err = cli("analyze", "-", "--to", "json")
    assert code == EXIT_OK, err
    doc = json.loads(out)
    assert doc["files"][0]["file"] == "-"
    offline = read_csv(clip_csv)
    assert [u["valence"] for u in doc["files"][0]["updates"]] == [float(r["valence"]) for r in offline]


def test_stdin_that_is_no_file_format_says_how_to_read_raw_pcm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stdin_from: Callable[[Path], None]
) -> None:
    raw = tmp_path / "raw"
    raw.write_bytes(np.zeros(8000, "<i2").tobytes())
    stdin_from(raw)
    monkeypatch.setenv("PATH", str(tmp_path))  # no ffmpeg
    code, out, err = cli("analyze", "-")
    assert code == EXIT_INPUT_FAILED and out == ""
    assert "audio input 'stdin': not an audio file format" in err and "give --format s16le|s32le|f32le" in err


# ---- interruption keeps what finished ------------------------------------------------------
@pytest.mark.parametrize("mode", ["--output-dir", "-o"])
def test_ctrl_c_keeps_the_finished_files_and_names_the_others(clip: Path, clip_csv: str, tmp_path: Path,
                                                               mode: str) -> None:
    """clip.wav finishes at once; stdin stays open, so its analysis is running when SIGINT comes."""
    target = tmp_path / ("out" if mode == "--output-dir" else "all.csv")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtmer", "analyze", str(clip), "-", "--format", "s16le", "--rate", "16000",
         "--channels", "1", mode, str(target), "-v"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )
    try:
        assert proc.stdin is not None and proc.stderr is not None
        proc.stdin.write((np.zeros(16000, "<i2") + 100).tobytes())  # 1 s, and the pipe stays open
        proc.stdin.flush()
        before = stderr_until(proc, f"finished {clip}")  # -v says when a file is done
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = "".join(before) + stderr.decode()
    assert proc.returncode == EXIT_INTERRUPTED, text
    if mode == "--output-dir":
        assert sorted(p.name for p in target.iterdir()) == ["clip.wav.csv"]  # nothing for the unfinished stdin
        assert (target / "clip.wav.csv").read_text() == clip_csv
    else:
        assert target.read_text() == clip_csv  # the finished file only
    assert "interrupted; 1 of 2 files not done, nothing written for them: -" in text
    assert "analysed 1 of 2 files" in text and "Traceback" not in text and stdout == b""


# ---- progress and summary --------------------------------------------------------------------
def test_progress_bar_only_when_asked_or_on_a_terminal_and_a_summary(clip: Path) -> None:
    code, _, err = cli("analyze", str(clip), "--progress")
    assert code == EXIT_OK
    assert "analyze:" in err and "s/s" in err  # tqdm's bar: seconds of audio per second
    code, _, err = cli("analyze", str(clip))  # stderr is no terminal here
    assert code == EXIT_OK and "analyze:" not in err
    assert re.search(r"rtmer: analysed 1 of 1 file, 3\.3 s of audio in \d+\.\d s, \d+x real time", err), err
    code, _, err = cli("analyze", str(clip), "-q")
    assert code == EXIT_OK and err == ""


def test_summary_counts_hours_of_the_files_analysed(tmp_path: Path) -> None:
    long = tmp_path / "long.flac"
    sf.write(long, np.zeros(16000 * 400, dtype=np.float32), 16000)  # 400 s (silent, so fast): said in hours
    code, _, err = cli("analyze", str(long), "-o", str(tmp_path / "long.csv"))
    assert code == EXIT_OK, err
    assert re.search(rf"analysed 1 of 1 file to {re.escape(str(tmp_path / 'long.csv'))}, 0\.11 h of audio", err), err


def test_an_output_that_is_one_of_the_inputs_is_refused(clip: Path, tmp_path: Path) -> None:
    """`rtmer analyze song.wav -o song.wav` replaced the audio with its CSV, exit 0."""
    song = tmp_path / "song.wav"
    song.write_bytes(clip.read_bytes())
    for output in (str(song), str(tmp_path / "sub" / ".." / "song.wav")):
        (tmp_path / "sub").mkdir(exist_ok=True)
        code, out, err = cli("analyze", str(clip), str(song), "-o", output)
        assert code == EXIT_USAGE, err
        assert f"--output={output!r} is the input {str(song)!r}; expected another file" in err
        assert out == "" and "analysed" not in err
    assert song.read_bytes() == clip.read_bytes()
