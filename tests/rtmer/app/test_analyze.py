"""`rtmer analyze` as a batch job: output checks and names, stdin, interruption, progress, summary."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import build_tiny_model, cli, music_like, read_csv, stderr_until, tone
from rtmer.app.output_paths import dedupe, output_names
from rtmer.app.cli import EXIT_INPUT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

REPO = Path(__file__).resolve().parents[3]
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


# ---- what -o names is respected -------------------------------------------------------------
def _mknod_char(path: Path) -> None:
    """A character device like /dev/null (1, 3) at ``path``; skips when mknod is not permitted."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"mknod is not permitted here ({exc})")


def test_o_streams_into_a_device_and_is_never_replaced(tiny: Path, tiny_wav: Path, tmp_path: Path) -> None:
    dev = tmp_path / "fakenull"
    _mknod_char(dev)
    code, out, err = cli("analyze", str(tiny_wav), "-o", str(dev), "--model", str(tiny))
    assert code == EXIT_OK, err
    assert stat.S_ISCHR(os.lstat(dev).st_mode) and os.major(os.lstat(dev).st_rdev) == 1  # still the device
    assert not list(tmp_path.glob(".*rtmer-partial"))


def test_o_streams_into_a_fifo_whose_reader_gets_the_analysis(tiny: Path, tiny_wav: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # the reader is there first, as `cat f > got &`
    try:
        code, out, err = cli("analyze", str(tiny_wav), "-o", str(fifo), "--model", str(tiny))
        os.set_blocking(reader, True)
        got = b""
        while chunk := os.read(reader, 1 << 16):
            got += chunk
    finally:
        os.close(reader)
    assert code == EXIT_OK, err
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    rows = read_csv(got.decode())
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}


def test_o_follows_a_symlink_and_keeps_it(tiny: Path, tiny_wav: Path, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    link = tmp_path / "l.csv"
    link.symlink_to(Path("sub") / "t.csv")  # relative, and the target does not exist yet
    code, out, err = cli("analyze", str(tiny_wav), "-o", str(link), "--model", str(tiny))
    assert code == EXIT_OK, err
    assert link.is_symlink() and len(read_csv((tmp_path / "sub" / "t.csv").read_text())) == 6


def test_o_into_a_pipe_through_proc_loses_nothing(tiny: Path, tiny_wav: Path, tmp_path: Path) -> None:
    """`-o >(gzip > x.gz)` names /dev/fd/63: a magic link to a pipe, under /proc."""
    r, w = os.pipe()
    link = tmp_path / "fd"
    link.symlink_to(f"/proc/self/fd/{w}")
    try:
        code, out, err = cli("analyze", str(tiny_wav), "-o", str(link), "--model", str(tiny))
        os.close(w)
        w = -1
        with os.fdopen(r, "rb") as f:
            got = f.read().decode()
    finally:
        if w >= 0:
            os.close(w)
    assert code == EXIT_OK, err
    assert link.is_symlink() and len(read_csv(got)) == 6


def test_o_into_a_device_that_fails_is_exit_1_and_said(tiny: Path, tiny_wav: Path) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    code, out, err = cli("analyze", str(tiny_wav), "-o", "/dev/full", "--model", str(tiny))
    assert code == EXIT_INPUT_FAILED, err
    assert "cannot write '/dev/full' (character device) (No space left on device)" in err
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_o_on_a_read_only_filesystem_says_so(tiny: Path, tiny_wav: Path, tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        for args in (["-o", str(ro / "x.csv")], ["--output-dir", str(ro / "out")]):
            code, out, err = cli("analyze", str(tiny_wav), *args, "--model", str(tiny))
            assert code == EXIT_USAGE, err
            assert "read-only filesystem" in err and "permission denied" not in err, err
    finally:
        subprocess.run(["umount", str(ro)], check=True)


# ---- every gap counted and flagged ------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture(scope="module")
def tiny_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s at the tiny model's 16 kHz: six hops."""
    path = tmp_path_factory.mktemp("audio") / "a.wav"
    sf.write(path, music_like(3.0, 16000, seed=3), 16000, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def flaky(tiny: Path) -> Path:
    """The tiny model, but its output is NaN for a hop whose peak is above 0.5."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(tiny))
    g = model.graph
    for node in g.node:
        if node.output[0] == "va":
            node.output[0] = "va_ok"
    g.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "limit"))
    g.initializer.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
    g.node.extend([helper.make_node("Sub", ["limit", "peak"], ["room"]),
                   helper.make_node("Log", ["room"], ["nan_if_loud"]),  # log of a negative number: NaN
                   helper.make_node("Mul", ["nan_if_loud", "zero"], ["poison"]),
                   helper.make_node("Add", ["va_ok", "poison"], ["va"])])
    path = tiny.with_name("flaky.onnx")
    onnx.save(model, str(path))
    return path


def test_hops_the_model_fails_on_are_flagged_counted_and_exit_1(flaky: Path, tmp_path: Path) -> None:
    """16 of 120 hops loud enough to fail: each row says so, the summary counts them, exit 1."""
    loud = {i for i in range(120) if i % 8 == 3} | {0}
    assert len(loud) == 16
    x = np.concatenate([tone(440, 0.5, 16000, amplitude=0.9 if i in loud else 0.2) for i in range(120)])
    wav = tmp_path / "long.wav"
    sf.write(wav, x, 16000, subtype="FLOAT")
    for fmt in ("csv", "json"):
        code, out, err = cli("analyze", str(wav), "--to", fmt, "--model", str(flaky))
        assert code == EXIT_INPUT_FAILED, err
        rows = read_csv(out) if fmt == "csv" else json.loads(out)["files"][0]["updates"]
        assert len(rows) == 120
        assert {i for i, r in enumerate(rows) if r["status"] == "failed"} == loud
        assert {r["status"] for i, r in enumerate(rows) if i not in loud} == {"ok"}
        assert f"the model failed on 16 hops (raw 0, status 'failed' in their rows): {wav} 16 of 120" in err


def test_non_finite_samples_are_counted_and_huge_finite_ones_are_not(tiny: Path, tmp_path: Path) -> None:
    x = np.stack([music_like(3.0, 16000, seed=4)] * 2, axis=1)
    x[100:112, 0] = np.nan
    x[5000:5003, 1] = np.inf
    x[20000:22000] = 3.4e38  # finite: it used to overflow in the downmix and count 16,000 a hop
    wav = tmp_path / "bad.wav"
    sf.write(wav, x, 16000, subtype="FLOAT")
    code, out, err = cli("analyze", str(wav), "--model", str(tiny))
    assert code == EXIT_OK, err
    assert f"non-finite samples (NaN, inf) replaced by 0: {wav} 15" in err
    assert len(read_csv(out)) == 6


@pytest.mark.parametrize("ext", ["flac", "ogg", "mp3", "wav"])
def test_every_decoder_reports_a_truncated_file_the_same_way(tiny: Path, tmp_path: Path, ext: str,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    whole = tmp_path / f"n.{ext}"
    sf.write(whole, (0.1 * rng.standard_normal((16000 * 6, 2))).astype(np.float32), 16000)
    cut = tmp_path / f"t.{ext}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    code, out, err = cli("analyze", str(cut), "--model", str(tiny))
    assert code == EXIT_INPUT_FAILED, err
    assert re.search(rf"WARNING file .*t\.{ext}: is truncated.*; what is there was analysed", err), err
    assert 4 <= len(read_csv(out)) <= 7  # about half of the 12 hops: what is there
    assert capfd.readouterr().err == ""  # no raw libmpg123 lines on the real stderr
    code, out, err = cli("analyze", str(whole), "--model", str(tiny))
    assert code == EXIT_OK and "truncated" not in err and len(read_csv(out)) == 12, err


def test_a_file_truncated_while_it_is_read_is_warned(tmp_path: Path) -> None:
    from rtmer.inputs.files import open_file

    wav = tmp_path / "a.wav"
    sf.write(wav, music_like(20.0, 16000, seed=5), 16000)
    inp = open_file(wav, stream="a", model_rate=16000)
    inp.start()
    first = inp.poll()  # the first 6.4 s (64 blocks)
    os.truncate(wav, 44 + 2 * 16000 * 10)  # 10 s left of 20
    samples = sum(b.samples.shape[0] for b in first)
    while not inp.finished:
        samples += sum(b.samples.shape[0] for b in inp.poll())
    inp.close()
    assert samples < 16000 * 11
    assert inp.warning and "is truncated: its header promises 20.00 s of audio, the file holds 10.00 s" in inp.warning


# ---- no tracebacks, and limits on input --------------------------------------------------------
def test_stdin_that_cannot_be_spooled_is_named(tiny: Path) -> None:
    """A full temporary folder, made real with a file size limit: copyfileobj's OSError, not a traceback."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    proc = subprocess.run([sys.executable, "-m", "rtmer", "analyze", "-", "--model", str(tiny)],
                          input=b"RIFF" + bytes(1_000_000), capture_output=True, cwd=REPO, preexec_fn=limit,
                          timeout=60)
    err = proc.stderr.decode()
    assert proc.returncode == EXIT_INPUT_FAILED and "Traceback" not in err, err
    assert "stdin" in err and "cannot be copied to a temporary file in" in err and "TMPDIR" in err, err


@pytest.mark.parametrize("closed", ["stdout", "stderr", "stdin"])
def test_closed_standard_streams_give_no_traceback(tiny: Path, tiny_wav: Path, closed: str) -> None:
    redirect = {"stdout": ">&-", "stderr": "2>&-", "stdin": "<&-"}[closed]
    files = "-" if closed == "stdin" else f"'{tiny_wav}'"
    script = f"exec '{sys.executable}' -m rtmer analyze {files} --model '{tiny}' {redirect}"
    proc = subprocess.run(["sh", "-c", script], capture_output=closed != "stdout",
                          stderr=subprocess.PIPE if closed == "stdout" else None, cwd=REPO, timeout=60)
    err = (proc.stderr or b"").decode()
    if closed == "stderr":
        assert proc.returncode == EXIT_OK and len(read_csv(proc.stdout.decode())) == 6
        return
    assert proc.returncode == EXIT_USAGE and "Traceback" not in err, err
    assert ("stdout is closed" if closed == "stdout" else "stdin, which is closed") in err and "analysed" not in err


@pytest.mark.parametrize(("flag", "value", "expected"),
                         [("--rate", "1", r"stdin rate=1 must be an integer in 1000\.\.768000 \[Hz\]"),
                          ("--rate", "10000000", r"rate=10000000 must be an integer in 1000\.\.768000"),
                          ("--channels", "1000000000", r"stdin channels=1000000000 must be an integer in 1\.\.64"),
                          ("--channels", "0", r"channels=0 must be an integer in 1\.\.64")])
def test_raw_pcm_rate_and_channels_are_bounded(tmp_path: Path, flag: str, value: str, expected: str) -> None:
    code, out, err = cli("analyze", "-", "--format", "s16le", flag, value, "--model", str(tmp_path / "none.onnx"))
    assert code == EXIT_USAGE and re.search(expected, err), err  # before the (missing) model is loaded


def test_a_model_folder_is_named_as_a_folder(tiny_wav: Path, tmp_path: Path) -> None:
    code, out, err = cli("analyze", str(tiny_wav), "--model", str(tmp_path))
    assert code == 3 and "is a folder; expected an .onnx file" in err and "does not exist" not in err, err


def test_no_speed_when_no_file_was_analysed(tiny: Path, tiny_wav: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that fails after 2 s of audio: 0 analysed, so no "Nx real time" of nothing."""
    import rtmer.inputs.decode
    from rtmer.inputs.files import PacedInput

    def failing(path: str, *, stream: str, model_rate: int, realtime: bool = False) -> PacedInput:
        left = [2]

        def read(frames: int) -> np.ndarray:
            left[0] -= 1
            if left[0] < 0:
                raise OSError("Input/output error")
            return np.full((frames, 1), 0.3, np.float32)

        return PacedInput(f"file {path}", stream, read=read, rate=model_rate, model_rate=model_rate, realtime=False)

    monkeypatch.setattr(rtmer.inputs.decode, "open_audio", failing)
    code, out, err = cli("analyze", str(tiny_wav), "--model", str(tiny))
    assert code == EXIT_INPUT_FAILED and "read failed after 2.00 s" in err, err
    assert "analysed 0 of 1 file," in err and "real time" not in err, err
