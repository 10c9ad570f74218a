"""The ``rtmer`` command line: ``run``, ``analyze``, ``devices``, ``demo``.

Exit codes
----------
0    ok
1    some inputs failed (an unreadable file, a stream that broke, a truncated file: analysed
     as far as it goes, ``--stream stdin`` with stdin closed); the rest were processed. Also:
     stdout's reader went away, an ``-o`` special file refused the data, ``analyze`` had hops
     the model failed on (flagged), ``run``'s every OSC datagram failed
2    usage or configuration error (bad flag, bad config file, bad value, an output that cannot
     be written: checked before anything is analysed, ``run --ndjson`` or ``--csv`` with stdout
     closed; ``--plot`` without matplotlib, the ``plot`` extra)
3    model error (missing, corrupt, or breaks the contract, at load or at run time: outputs
     of another shape, or failing on every hop)
4    device or port error (no such input device, cannot open it, WebSocket port in use)
130  interrupted (Ctrl-C, SIGTERM or SIGHUP: ``rtmer.app.signals``) after a clean shutdown, also
     when the signal came while the command was starting; ``analyze`` keeps the files it
     finished. A signal the parent ignores (``nohup``: SIGHUP) stays ignored

Options come from flags and from a TOML file (``--config rtmer.toml``); a flag given
on the command line wins over the file, which wins over the built-in default. See
``rtmer.app.config.CONFIG_KEYS`` for the file's keys.
"""

from __future__ import annotations

import argparse
import errno
import io
import json
import logging
import math
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO, cast

from rtmer.errors import (
    AudioInputError,
    ConfigError,
    DeviceNotFoundError,
    ModelContractError,
    PortInUseError,
    RtmerError,
)
from rtmer.app.config import DEFAULTS, load_config
from rtmer.app.display import Display, print_summary, printable
from rtmer.outputs.hosts import host_port
from rtmer.core.model import DEFAULT_MODEL, shipped_models  # light: no numpy yet
from rtmer.core.update import Sink, Update

# numpy, onnxruntime and the pipeline are imported where they are used: the command
# must be able to say "interrupted" for a Ctrl-C in its first moments, which it can
# only do once main() runs.
if TYPE_CHECKING:
    from rtmer.core.engine import Engine
    from rtmer.app.runner import RunSummary
    from rtmer.outputs.web import WebPageServer

EXIT_OK = 0
EXIT_INPUT_FAILED = 1
EXIT_USAGE = 2
EXIT_MODEL = 3
EXIT_DEVICE = 4
EXIT_INTERRUPTED = 130

log = logging.getLogger("rtmer")

MAX_THREADS = 64  # onnxruntime intra-op threads: more never helps one hop, and each costs memory
LIVE_STDOUT_QUEUE = 256  # lines queued for stdout with a live input before the oldest is dropped
TOKEN_ENV = "RTMER_WS_TOKEN"

# ---- argument parsing ---------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # no sys.exit inside a library call
        raise ConfigError(f"{self.prog}: {message}")


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and engine")
    g.add_argument("--config", metavar="FILE", help="TOML config file; flags win over it")
    g.add_argument(
        "--model", metavar="NAME|PATH",
        help=f"NAME of a shipped model ({', '.join(shipped_models())}) or PATH of an .onnx model file "
        f"(default: the shipped {DEFAULT_MODEL!r})",
    )
    d = DEFAULTS
    g.add_argument("--threads", type=int, metavar="N", help=f"onnxruntime intra-op threads (default: {d['threads']})")
    from rtmer.core.smoothing import SMOOTHING_KINDS

    g.add_argument("--smoothing", choices=SMOOTHING_KINDS, help=f"smoother (default: {d['smoothing']})")
    g.add_argument("--min-cutoff", type=float, metavar="HZ",
                   help=f"One-Euro cutoff at rest [Hz] (default: {d['min_cutoff']})")
    g.add_argument("--beta", type=float, help=f"One-Euro speed coefficient (default: {d['beta']})")
    g.add_argument("--d-cutoff", type=float, metavar="HZ", help=f"One-Euro speed cutoff [Hz] (default: {d['d_cutoff']})")
    g.add_argument("--time-constant", type=float, metavar="S",
                   help=f"EMA time constant [s] (default: {d['time_constant']})")
    g.add_argument("--neutral-radius", type=float, metavar="R",
                   help=f"mood 'neutral' radius (default: {d['neutral_radius']})")
    g.add_argument("--hysteresis", type=float, metavar="H", help=f"mood hysteresis (default: {d['hysteresis']})")
    g.add_argument("--silence-db", type=float, metavar="DB",
                   help=f"hops quieter than this are silence [dBFS] (default: {d['silence_db']:g})")


def _add_output_options(p: argparse.ArgumentParser, *, demo: bool = False) -> None:
    g = p.add_argument_group("outputs")
    d = DEFAULTS
    g.add_argument("--osc", action="append", metavar="HOST:PORT",
                   help="send OSC to this target (repeatable)" + (" (default: 127.0.0.1:9000)" if demo else ""))
    g.add_argument("--osc-prefix", metavar="PREFIX", help=f"OSC address prefix (default: {d['osc_prefix']})")
    g.add_argument("--osc-unit-range", action="store_true", default=None,
                   help="send values in [0, 1] (default: [-1, 1])")
    g.add_argument(
        "--osc-stream-ids", dest="osc_stream_ids", choices=("auto", "always"),
        help="put the stream id in the OSC address (/rtmer/deck1/valence): 'always', or 'auto': only with "
        f"more than one stream, so one stream sends /rtmer/valence (default: {d['osc_stream_ids']})",
    )
    if not demo:
        g.add_argument("--ws", action=argparse.BooleanOptionalAction, default=None,
                       help="serve WebSocket (default: off)")
    g.add_argument("--ws-host", metavar="HOST", help=f"WebSocket bind address (default: {d['ws_host']})")
    g.add_argument("--ws-port", type=int, metavar="PORT", help=f"WebSocket port, 0 picks a free one "
                   f"(default: {d['ws_port']})")
    g.add_argument("--ws-token", metavar="TOKEN",
                   help=f"secret WebSocket clients must present ('Authorization: Bearer TOKEN' or ?token=TOKEN), "
                   f"at least 16 characters; needed to listen on anything but loopback (default: ${TOKEN_ENV}, "
                   "which, unlike a flag, other users cannot see in the process list)")
    g.add_argument("--ws-origin", dest="ws_origins", action="append", metavar="ORIGIN",
                   help="a browser origin allowed besides localhost and this host, e.g. https://show.example "
                   "(repeatable; '*' allows any)")
    g.add_argument("--ws-max-clients", type=int, metavar="N",
                   help=f"WebSocket clients at once; one more is closed with code 1013 (default: {d['ws_max_clients']})")
    g.add_argument("--ws-cert", metavar="PEM", help="TLS certificate (chain): serve wss:// (with --ws-key)")
    g.add_argument("--ws-key", metavar="PEM", help="TLS private key (with --ws-cert)")
    g.add_argument("--web", action=argparse.BooleanOptionalAction, default=None,
                   help="serve the live web page (circumplex, trails, time series) and print its URL; "
                   + ("it reads the WebSocket server (default: on)" if demo else "turns --ws on (default: off)"))
    g.add_argument("--web-host", metavar="HOST", help=f"web page bind address (default: {d['web_host']})")
    g.add_argument("--web-port", type=int, metavar="PORT", help=f"web page port, 0 picks a free one "
                   f"(default: {d['web_port']})")
    if not demo:
        g.add_argument("--ndjson", dest="stdout_format", action="store_const", const="ndjson", help="NDJSON on stdout")
        g.add_argument("--csv", dest="stdout_format", action="store_const", const="csv", help="CSV on stdout")
    g.add_argument(
        "--display", action=argparse.BooleanOptionalAction, default=None,
        help="live one-line display per stream (default: when stdout is a terminal)",
    )
    g.add_argument("--seconds", type=float, metavar="S", help="stop after S seconds of audio: every stream's "
                   "updates up to S s (5: ten updates of 0.5 s) (default: run until the inputs end or Ctrl-C)")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples in the epilogs as written."""


_EPILOGS: dict[str, str] = {
    "rtmer": """\
examples:
  rtmer demo --seconds 30                     the shipped music: OSC to 127.0.0.1:9000, WebSocket :8765,
                                              the live page on http://127.0.0.1:8766/
  rtmer run --osc 127.0.0.1:9000 --ws         the default input device to OSC and WebSocket
  rtmer analyze a.wav b.m4a --output-dir out  one CSV per file, as fast as possible
  rtmer devices                               the input devices
  rtmer COMMAND --help                        the options of a command, with examples

-q and -v work before or after the command. Every option can also come from a TOML file
(--config FILE); flags win over it, and it over the defaults.

exit codes: 0 ok; 1 some inputs failed, the rest were processed (or stdout's reader went
away); 2 usage or config error (also an output that cannot be written); 3 model error;
4 device or port error; 130 interrupted (Ctrl-C, SIGTERM, SIGHUP).""",
    "run": """\
examples:
  rtmer run --osc 127.0.0.1:9000 --ws                  the default input device, to OSC and WebSocket
  rtmer run --stream song.flac --ndjson --no-display   a file, paced in real time, NDJSON on stdout
  rtmer run --stream song.flac --web                   the live page on http://127.0.0.1:8766/ (and --ws)
  rtmer run --stream deck1=device:NAME:1-2 --stream deck2=device:NAME:3-4 --osc 127.0.0.1:9000
  rtmer run --stream deck1=device:NAME --osc 127.0.0.1:9000 --osc-stream-ids always
  ffmpeg -i song.mp3 -f s16le -ac 2 -ar 44100 - | rtmer run --stream stdin --format s16le --rate 44100 --channels 2 --csv

At start, rtmer says on stderr what it serves: the OSC targets and addresses, the
WebSocket URL, the web page's URL, stdout's format (not with -q). Files that libsndfile cannot read (m4a/AAC
and others) are decoded by ffmpeg when `ffmpeg` is on the PATH. Ctrl-C stops cleanly and
prints a summary; a second Ctrl-C aborts.""",
    "analyze": """\
examples:
  rtmer analyze song.wav > song.csv
  rtmer analyze a.wav b.flac --to json -o out.json
  rtmer analyze song.wav --plot song.png > song.csv    and a figure (needs: pip install 'rtmer[plot]')
  rtmer analyze music/*.m4a --output-dir out           m4a/AAC needs `ffmpeg` on the PATH
  cat song.flac | rtmer analyze -                      a file format on stdin
  ffmpeg -i song.mp3 -f s16le -ac 2 -ar 44100 - | rtmer analyze - --format s16le --rate 44100 --channels 2

stdin (-): a file format (wav, flac, ogg...; through ffmpeg when it is on the PATH), read to
its end first; with --format, raw PCM as `rtmer run --stream stdin` reads it.
--output-dir names: the input's file name with its extension, then .csv or .json
(song.ogg -> song.ogg.csv); inputs that share a file name get their parent folders,
joined with '_' (x/song.wav -> x_song.wav.csv, y/song.wav -> y_song.wav.csv), and -2, -3...
if still equal; stdin is stdin.csv. A path given twice is analysed once.
Outputs are checked before anything is analysed (exit 2). Ctrl-C keeps what is finished:
each --output-dir file is written when its input is done, -o and stdout get the finished
files; the others are named on stderr (exit 130). A progress bar [s of audio] shows on
stderr when it is a terminal, then a summary line: files, hours of audio, speed.""",
    "devices": """\
examples:
  rtmer devices
  rtmer devices --json""",
    "demo": """\
examples:
  rtmer demo --seconds 30
  rtmer demo --osc 127.0.0.1:7000 --ws-port 9001 --section-seconds 5
  rtmer demo --no-web                        without the live page (default: on, http://127.0.0.1:8766/)""",
}


def _finish_subparser(name: str, p: argparse.ArgumentParser) -> None:
    """What every subcommand shares: -q and -v after the command, examples, the help layout."""
    p.formatter_class = _HelpFormatter
    if p.epilog is None:
        p.epilog = _EPILOGS.get(name)
    p.add_argument("-v", "--verbose", dest="sub_verbose", action="count", default=0,
                   help="more log output (-vv: debug)")
    p.add_argument("-q", "--quiet", dest="sub_quiet", action="store_true", default=False,
                   help="only errors on stderr: no summary, no progress")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rtmer", description="Real-time music emotion tracker (valence/arousal every hop).",
                     epilog=_EPILOGS["rtmer"], formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="store_true", help="print rtmer's version and exit")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = sub.add_parser("run", help="track live input, a file or stdin; send to OSC/WebSocket/stdout")
    run.add_argument(
        "--stream", dest="streams", action="append", metavar="[ID=]SPEC",
        help="an input: device:NAME|INDEX[:CHANNELS], file:PATH[:CHANNELS] (or a path), stdin[:CHANNELS] "
        "(or -); repeatable, e.g. --stream deck1=device:SOURCE:1-2 --stream deck2=device:SOURCE:3-4 "
        "for a four-channel SOURCE named by `rtmer devices` "
        "(default: the default input device)",
    )
    run.add_argument(
        "--file", dest="streams", action="append", type=lambda path: f"file:{path}", metavar="PATH",
        help="an audio file: the same as --stream file:PATH (repeatable; ids s1, s2, ... in order with --stream)",
    )
    run.add_argument("--device-rate", type=int, metavar="HZ", help="capture rate (default: the device's)")
    run.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=None,
                     help="pace files in real time (default) or --no-realtime: as fast as possible")
    run.add_argument("--format", dest="pcm_format", choices=("s16le", "s32le", "f32le"),
                     help=f"stdin PCM format (default: {DEFAULTS['pcm_format']})")
    run.add_argument("--rate", dest="pcm_rate", type=int, metavar="HZ",
                     help=f"stdin PCM rate (default: {DEFAULTS['pcm_rate']})")
    run.add_argument("--channels", dest="pcm_channels", type=int, metavar="N",
                     help=f"stdin PCM channels (default: {DEFAULTS['pcm_channels']})")
    _add_engine_options(run)
    _add_output_options(run)

    an = sub.add_parser("analyze", help="analyse audio files as fast as possible through the same stages")
    an.add_argument("files", nargs="+", metavar="FILE", help="audio files; - is stdin (see below)")
    an.add_argument("-o", "--output", metavar="PATH", help="write every file's updates to this one file; - is "
                    "stdout (default: stdout)")
    an.add_argument("--output-dir", metavar="DIR", help="one output file per input in DIR, created if missing "
                    "(names: see below)")
    an.add_argument("--to", dest="out_format", choices=("csv", "json"), default="csv",
                    help="output format (default: csv)")
    an.add_argument("--format", dest="pcm_format", choices=("s16le", "s32le", "f32le"),
                    help="stdin holds raw PCM in this format (default: stdin holds a file format)")
    an.add_argument("--rate", dest="pcm_rate", type=int, metavar="HZ",
                    help=f"raw PCM rate on stdin (default: {DEFAULTS['pcm_rate']})")
    an.add_argument("--channels", dest="pcm_channels", type=int, metavar="N",
                    help=f"raw PCM channels on stdin (default: {DEFAULTS['pcm_channels']})")
    an.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                    help="progress bar on stderr (default: when stderr is a terminal, not with -q)")
    an.add_argument("--plot", metavar="PATH", help="draw valence and arousal over time (raw and smoothed, mood "
                    "bands) and the path on the circumplex: PATH.png|.svg|.pdf for one input, else a folder of "
                    "one PNG per input; needs matplotlib (pip install 'rtmer[plot]')")
    _add_engine_options(an)

    dev = sub.add_parser("devices", help="list the input devices and PulseAudio/PipeWire sources (monitors too)")
    dev.add_argument("--json", action="store_true", help="as JSON")

    demo = sub.add_parser("demo", help="the full live pipeline on the music that ships with rtmer, OSC and WebSocket on")
    demo.add_argument("--section-seconds", type=float, metavar="S",
                      help="length of each mood section [s] (default: 7.5, four sections in 30 s)")
    _add_engine_options(demo)
    _add_output_options(demo, demo=True)
    for name, p in sub.choices.items():
        _finish_subparser(name, p)
    return parser


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Defaults, then the config file, then flags given on the command line."""
    merged = dict(DEFAULTS)
    merged.update(load_config(getattr(args, "config", None)))
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            merged[key] = value
    return merged


# ---- building the pipeline ----------------------------------------------------------
def _engine(s: dict[str, Any]) -> Engine:
    from rtmer.core.engine import Engine
    from rtmer.core.model import StreamingModel
    from rtmer.core.smoothing import SmoothingConfig

    threads = s["threads"]
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= MAX_THREADS:
        raise ConfigError(f"threads={threads!r} must be an integer in 1..{MAX_THREADS} (onnxruntime threads; "
                          f"this machine has {os.cpu_count() or 1} CPUs)")
    smoothing = SmoothingConfig(
        kind=s["smoothing"], min_cutoff=s["min_cutoff"], beta=s["beta"],
        d_cutoff=s["d_cutoff"], time_constant=s["time_constant"],
    )
    model = StreamingModel(s["model"], intra_op_threads=s["threads"])
    return Engine(
        model, smoothing=smoothing, neutral_radius=s["neutral_radius"],
        hysteresis=s["hysteresis"], silence_db=s["silence_db"],
    )


def _sinks(s: dict[str, Any], *, engine: Engine, streams: list[str], stdout: TextIO,
           live: bool = False) -> list[Sink]:
    """The outputs. stdout's text sink writes inline (blocking, never dropping) unless
    ``live``: a sound card cannot wait, so there a queue of ``LIVE_STDOUT_QUEUE`` lines
    drops the oldest when the reader is slower, counted in the summary."""
    sinks: list[Sink] = []
    try:
        if s["osc"]:
            from rtmer.outputs.osc import OscSink, parse_target

            ids = s["osc_stream_ids"]
            if ids not in ("auto", "always"):
                raise ConfigError(f"osc.stream_ids={ids!r} must be 'auto' (the id only with several streams) "
                                  "or 'always'")
            sinks.append(
                OscSink(
                    [parse_target(t) for t in s["osc"]], prefix=s["osc_prefix"],
                    per_stream_prefix=ids == "always" or len(streams) > 1, unit_range=bool(s["osc_unit_range"]),
                )
            )
        if s["ws"]:
            from rtmer.outputs.websocket import WebSocketSink

            hello = {"model": engine.model.info.public() if hasattr(engine.model.info, "public") else {},
                     "streams": streams, "hop_seconds": engine.info.hop_seconds}
            token = s["ws_token"] if s["ws_token"] is not None else (os.environ.get(TOKEN_ENV) or None)
            sinks.append(WebSocketSink(
                s["ws_host"], s["ws_port"], hello=hello, queue_size=s["ws_queue"], token=token,
                allowed_origins=list(s["ws_origins"] or []), max_clients=s["ws_max_clients"],
                certfile=s["ws_cert"], keyfile=s["ws_key"],
            ))
        if s["stdout_format"] == "ndjson":
            from rtmer.outputs.textout import NdjsonSink

            sinks.append(NdjsonSink(stdout, queue_size=LIVE_STDOUT_QUEUE if live else 0))
        elif s["stdout_format"] == "csv":
            from rtmer.outputs.textout import CsvSink

            sinks.append(CsvSink(stdout, queue_size=LIVE_STDOUT_QUEUE if live else 0))
        elif s["stdout_format"] is not None:
            raise ConfigError(f"output.stdout={s['stdout_format']!r} must be 'ndjson' or 'csv'")
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


def _inputs(s: dict[str, Any], engine: Engine) -> tuple[list[Any], list[str]]:
    """Open every ``--stream``; returns (inputs, failures). Device errors propagate."""
    from rtmer.inputs.decode import open_audio  # libsndfile, or ffmpeg for the formats it cannot read
    from rtmer.inputs.base import parse_stream_spec
    from rtmer.inputs.live import LiveInput
    from rtmer.inputs.pcm import PcmInput

    specs = [parse_stream_spec(t, index=i) for i, t in enumerate(s["streams"] or ["device:default"])]
    ids = [sp.id for sp in specs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ConfigError(f"stream ids must be unique; repeated: {', '.join(dupes)}")
    rate = engine.info.sample_rate
    inputs: list[Any] = []
    failures: list[str] = []
    devices: dict[str, dict[str, list[int] | None]] = {}
    for sp in specs:
        if sp.kind == "device":
            devices.setdefault(sp.target or "default", {})[sp.id] = sp.channels
        elif sp.kind == "file":
            try:
                inputs.append(open_audio(sp.target or "", stream=sp.id, model_rate=rate,
                                         channels=sp.channels, realtime=bool(s["realtime"])))
            except AudioInputError as exc:
                failures.append(str(exc))
        else:
            if sum(1 for x in specs if x.kind == "stdin") > 1:
                raise ConfigError("only one stream can read stdin")
            if sys.stdin is None:  # the process started with it closed (<&-)
                failures.append(f"stream {sp.id} reads stdin, which is closed; pipe raw PCM into rtmer "
                                "(ffmpeg ... -f s16le - | rtmer run --stream stdin ...)")
                continue
            inputs.append(PcmInput(sp.id, fmt=s["pcm_format"], rate=s["pcm_rate"], channels=s["pcm_channels"],
                                   model_rate=rate, pick=sp.channels))
    for device, streams in devices.items():
        dev: str | int | None = None if device == "default" else device
        inputs.append(LiveInput(dev, streams=streams, model_rate=rate, device_rate=s["device_rate"]))
    return inputs, failures


# ---- running ------------------------------------------------------------------------
def _serving(inputs: Sequence[Any], sinks: Sequence[Sink], *, display: bool, web_url: str | None = None) -> list[str]:
    """What a live run reads and serves, one line each, for stderr at start."""
    from rtmer.outputs.osc import OscSink
    from rtmer.outputs.textout import CsvSink, NdjsonSink
    from rtmer.outputs.websocket import WebSocketSink

    streams = [sid for inp in inputs for sid in inp.streams]
    lines = [f"rtmer: input {', '.join(inp.streams)} <- {inp.name}" for inp in inputs]
    for sink in sinks:
        if isinstance(sink, OscSink):
            targets = ", ".join(host_port(t.host, t.port) for t in sink.targets)
            bases = ", ".join(f"{sink.base_address(sid)}/..." for sid in streams)
            lines.append(f"rtmer: OSC to {targets}: {bases} (valence, arousal, va, mood, raw/va)")
        elif isinstance(sink, WebSocketSink):
            lines.append(f"rtmer: WebSocket on {'wss' if sink.tls else 'ws'}://{host_port(sink.host, sink.port)}")
            guard = "clients must present the token" if sink.has_token else "loopback only, no token"
            lines.append(f"rtmer: WebSocket access: {guard}; at most {sink.max_clients} clients")
            if web_url:
                token = " (add ?token=TOKEN: the page hands it to the WebSocket server)" if sink.has_token else ""
                lines.append(f"rtmer: web page on {web_url}{token}")
        elif isinstance(sink, NdjsonSink | CsvSink):
            lines.append(f"rtmer: {'NDJSON' if isinstance(sink, NdjsonSink) else 'CSV'} on stdout")
    if len(lines) == len(inputs):
        lines.append("rtmer: no outputs" + (" but the display" if display else "")
                     + "; add --osc HOST:PORT, --ws, --ndjson or --csv")
    return lines


def _web_page(s: dict[str, Any], sinks: list[Sink]) -> WebPageServer | None:
    """The live page's HTTP server (``rtmer.outputs.web``) when ``s["web"]``, told where the WebSocket
    sink listens; the sinks are closed if it cannot start."""
    if not s["web"]:
        return None
    from rtmer.outputs.web import WebPageServer
    from rtmer.outputs.websocket import WebSocketSink

    try:
        ws = next((x for x in sinks if isinstance(x, WebSocketSink)), None)
        if ws is None:
            raise ConfigError("web.enabled=true needs the WebSocket server: websocket.enabled=true or --ws")
        return WebPageServer(s["web_host"], s["web_port"], ws_host=ws.host, ws_port=ws.port, ws_tls=ws.tls,
                             ws_has_token=ws.has_token, ssl_context=ws.ssl_context)
    except BaseException:
        for sink in sinks:
            sink.close()
        raise


def _run_pipeline(
    s: dict[str, Any],
    engine: Engine,
    inputs: list[Any],
    *,
    stdout: TextIO,
    stderr: TextIO,
    annotate: Callable[[Update], str] | None = None,
    force_display: bool = False,
    quiet: bool = False,
) -> RunSummary:
    from rtmer.app.runner import Runner
    from rtmer.app.signals import stop_on_signals
    from rtmer.inputs.live import RingInput
    from rtmer.outputs.textout import CsvSink, NdjsonSink

    seconds = s["seconds"]
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int | float)
                                or not math.isfinite(seconds) or seconds <= 0):
        raise ConfigError(f"seconds={seconds!r} must be a positive number [s] (leave it out to run until the "
                          "inputs end or Ctrl-C)")
    streams = [sid for inp in inputs for sid in inp.streams]
    live = any(isinstance(inp, RingInput) for inp in inputs)  # a sound card: it cannot wait for stdout
    sinks = _sinks(s, engine=engine, streams=streams, stdout=stdout, live=live)
    web = _web_page(s, sinks)
    text = next((x for x in sinks if isinstance(x, NdjsonSink | CsvSink)), None)
    # stdout's reader gone (`rtmer run --csv | head`): that ends a run whose only output it was
    end_when = (lambda: text.failed) if text is not None and len(sinks) == 1 else None
    display_on = s["display"]
    if display_on is None:
        display_on = force_display or (s["stdout_format"] is None and stdout.isatty())
    display = None
    if display_on:
        display = Display(streams, stderr if s["stdout_format"] or _closed(stdout) else stdout, annotate=annotate)
    if not quiet:
        lines = _serving(inputs, sinks, display=display is not None, web_url=web.url if web else None)
        stderr.write("".join(printable(line) + "\n" for line in lines))
        stderr.flush()
    stop = threading.Event()
    runner = Runner(engine, inputs, sinks, stop=stop, on_updates=display, max_seconds=seconds, end_when=end_when)
    try:
        with stop_on_signals(stop):
            summary = runner.run()
    finally:
        if display is not None:
            display.close()
        for sink in sinks:
            try:
                sink.close()
            except Exception as exc:
                log.warning("closing %s: %s", type(sink).__name__, exc)
        if web is not None:
            web.close()
    if text is not None and text.failed:
        gone = "the run stopped" if end_when is not None else "the other outputs went on"
        summary.failed_outputs["stdout"] = f"stopped after {text.updates_written} updates ({text.error}); {gone}"
    from rtmer.outputs.osc import OscSink

    osc = next((x for x in sinks if isinstance(x, OscSink)), None)
    if osc is not None and osc.all_failed:  # a stage that gets nothing is not a success
        summary.failed_outputs["osc"] = (f"every datagram failed ({osc.failed}, none sent): is the target address "
                                         "right, and does something listen there?")
    if not quiet:
        print_summary(summary, sinks, stderr)
    engine.raise_if_broken()
    return summary


def _cmd_run(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    s = _settings(args)
    rate = s["device_rate"]
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0):
        raise ConfigError(f"device_rate={rate!r} must be a positive integer [Hz] (leave it out for the device's "
                          "own rate)")
    fmt = s["stdout_format"]
    if fmt is not None and _closed(stdout):
        raise ConfigError(f"output.stdout={fmt!r} (--{fmt}) writes every update to stdout, which is closed; "
                          f"send it to a file (> out.{fmt}) or leave --{fmt} out")
    if s["web"]:  # the page reads the WebSocket server
        if args.ws is False:
            raise ConfigError("--web needs the WebSocket server, which --no-ws turns off; drop one of them")
        s["ws"] = True
    from rtmer.outputs.websocket import check_max_clients

    check_max_clients(s["ws_max_clients"])  # also when --ws is off, rather than ignoring a bad value
    engine = _engine(s)
    inputs, failures = _inputs(s, engine)
    for why in failures:
        stderr.write(f"rtmer: {printable(why)}\n")
    if not inputs:
        return EXIT_INPUT_FAILED
    log.info("declared latency [s]: %s", {k: round(v, 4) for k, v in engine.latency.items()})
    summary = _run_pipeline(s, engine, inputs, stdout=stdout, stderr=stderr, quiet=args.quiet)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if failures or summary.failed_inputs or summary.warnings or summary.failed_outputs:
        return EXIT_INPUT_FAILED
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from rtmer.app.demo import FADE_SECONDS, SECTION_SECONDS, SynthMusic
    from rtmer.inputs.files import PacedInput

    section_seconds = SECTION_SECONDS if args.section_seconds is None else args.section_seconds

    s = _settings(args)
    if not s["osc"]:
        s["osc"] = ["127.0.0.1:9000"]
    s["ws"] = True
    s["web"] = args.web is not False  # the live page, unless --no-web
    engine = _engine(s)
    if not math.isfinite(section_seconds) or section_seconds <= 2 * FADE_SECONDS:  # a fade in and out
        raise ConfigError(f"--section-seconds={section_seconds!r} must be more than {2 * FADE_SECONDS:g} [s]")
    synth = SynthMusic(rate=engine.info.sample_rate, section_seconds=section_seconds)
    source = PacedInput("demo music", "demo", read=synth.read, rate=synth.rate,
                        model_rate=engine.info.sample_rate, realtime=True)
    length = "until Ctrl-C" if s["seconds"] is None else f"{s['seconds']:g} s"
    if not args.quiet:
        stderr.write(
            printable(f"rtmer demo: model {engine.info.name} {engine.info.version} on {engine.model.provider}; {length}")
            + "\n"
        )

    def annotate(u: Update) -> str:
        return f"(playing: {synth.section_at(max(0.0, u.t - 1e-6))})"

    summary = _run_pipeline(s, engine, [source], stdout=stdout, stderr=stderr, annotate=annotate,
                            force_display=True, quiet=args.quiet)
    return EXIT_INTERRUPTED if summary.interrupted else EXIT_OK


def _cmd_devices(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    from rtmer.inputs.devices import describe_input_devices, input_devices_json

    if args.json:
        stdout.write(json.dumps(input_devices_json(), indent=2) + "\n")
    else:
        stdout.write("\n".join(printable(line) for line in describe_input_devices().split("\n")))
    return EXIT_OK


def _cmd_analyze(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """``rtmer analyze``: outputs checked first, then the job (``rtmer.app.analyze``) under Ctrl-C handling."""
    from rtmer.app.analyze import AnalyzeJob, run_analysis
    from rtmer.app.output_paths import check_outputs

    s = _settings(args)
    if args.pcm_format is None:
        given = [flag for flag, value in (("--rate", args.pcm_rate), ("--channels", args.pcm_channels))
                 if value is not None]
        if given:
            raise ConfigError(f"{' and '.join(given)} only {'applies' if len(given) == 1 else 'apply'} with "
                              "--format (raw PCM on stdin); without it stdin holds a file format, which says its "
                              "own rate and channels")
    pcm = None
    if args.pcm_format is not None:  # raw PCM on stdin; else stdin holds a file format
        from rtmer.inputs.base import check_layout

        check_layout(rate=s["pcm_rate"], channels=s["pcm_channels"], what="stdin ")
        pcm = (str(s["pcm_format"]), int(s["pcm_rate"]), int(s["pcm_channels"]))
    if "-" in args.files and sys.stdin is None:
        raise ConfigError("FILE '-' reads stdin, which is closed; give a file's path, or pipe audio in")
    if not args.output_dir and args.output in (None, "-") and getattr(stdout, "closed", False):
        raise ConfigError("stdout is closed, and the analysis goes there; give -o PATH or --output-dir DIR")
    target = check_outputs(output=args.output, output_dir=args.output_dir, inputs=args.files)
    try:
        if args.plot:
            from rtmer.app.plot import check_plot

            check_plot(args.plot, list(args.files))  # matplotlib installed, the image writable
        job = AnalyzeJob(files=list(args.files), out_format=args.out_format, output=args.output,
                         output_dir=args.output_dir, pcm=pcm, progress=args.progress, quiet=args.quiet,
                         plot=args.plot, target=target)
        engine = _engine(s)
        stop = threading.Event()
        from rtmer.app.signals import stop_on_signals

        with stop_on_signals(stop):
            return run_analysis(engine, job, stdout=stdout, stderr=stderr, stop=stop)
    finally:
        if target is not None:
            target.close()


def main(argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Entry point of the ``rtmer`` command; returns the exit code (see the module doc).

    A signal that comes before the command can stop cleanly waits for it
    (``rtmer.app.signals``); one that no command took (``rtmer devices``) makes an otherwise
    successful exit 130.
    """
    from rtmer.app.signals import hold_stop_signals, take_held_signals

    out = stdout or sys.stdout or cast(TextIO, _ClosedStream("stdout"))
    err = stderr or sys.stderr or open(os.devnull, "w", encoding="utf-8")  # 2>&-: nowhere to say anything
    try:
        with hold_stop_signals():  # until the command is ready for them (rtmer.app.signals)
            code = _main_or_closed_stdout(argv, out, err)
            if take_held_signals() and code == EXIT_OK:  # a signal that no command took
                _say(err, "rtmer: interrupted\n")
                code = EXIT_INTERRUPTED
    except KeyboardInterrupt:  # a second signal while starting (abort), or during a run
        _say(err, "rtmer: interrupted\n")
        code = EXIT_INTERRUPTED
    _settle_stdout(out)
    return code


class _ClosedStream(io.TextIOBase):
    """stdout when the process started without it (``>&-``; Python made it None): writes fail."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, f"{self.name} is closed")

    @property
    def closed(self) -> bool:
        return True


def _closed(stream: TextIO) -> bool:
    return isinstance(stream, _ClosedStream)


def _say(err: TextIO, text: str) -> None:
    """Write to stderr; nothing more to do when it is gone (a closed terminal, ``2>&-``)."""
    try:
        err.write(text)
        err.flush()
    except (OSError, ValueError):
        pass


def _settle_stdout(out: TextIO) -> None:
    """Flush stdout; when its reader has gone, point it at /dev/null so that Python's own
    flush at exit does not print "Exception ignored ... BrokenPipeError"."""
    try:
        out.flush()
    except (OSError, ValueError):
        if out is sys.stdout or out is sys.__stdout__:
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, out.fileno())
                os.close(devnull)
            except (OSError, ValueError):
                pass


class _PrintableFormatter(logging.Formatter):
    """Log lines with control characters escaped (``display.printable``): a message can hold
    a model's name from its metadata, a file or a device name."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


def _main_or_closed_stdout(argv: list[str] | None, out: TextIO, err: TextIO) -> int:
    """``_main``; a command that writes to a stdout the process started without is a usage error."""
    try:
        return _main(argv, out, err)
    except OSError as exc:
        if not _closed(out) or exc.errno != errno.EBADF:
            raise
        _say(err, f"rtmer: cannot write the output: {exc}; send it to a file (> out.txt) or /dev/null\n")
        return EXIT_USAGE


def _main(argv: list[str] | None, out: TextIO, err: TextIO) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except ConfigError as exc:
        err.write(f"{printable(str(exc))}\n")
        return EXIT_USAGE
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    if args.version:
        from rtmer import __version__

        out.write(f"rtmer {__version__}\n")
        return EXIT_OK
    if args.command is None:
        parser.print_help(err)
        return EXIT_USAGE
    # -q and -v may come before or after the command
    args.verbose += getattr(args, "sub_verbose", 0)
    args.quiet = bool(args.quiet or getattr(args, "sub_quiet", False))
    level = logging.ERROR if args.quiet else (logging.DEBUG if args.verbose > 1 else logging.INFO if args.verbose else logging.WARNING)
    if not logging.getLogger().handlers:
        handler = logging.StreamHandler(err)
        handler.setFormatter(_PrintableFormatter("rtmer: %(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=level, handlers=[handler])
    logging.getLogger("rtmer").setLevel(level)
    if args.command in ("run", "demo") and not args.quiet:
        logging.getLogger("rtmer.core.model").setLevel(min(level, logging.INFO))
    commands = {"run": _cmd_run, "analyze": _cmd_analyze, "devices": _cmd_devices, "demo": _cmd_demo}
    try:
        return commands[args.command](args, out, err)
    except ModelContractError as exc:
        err.write(f"rtmer: model error: {printable(str(exc))}\n")
        return EXIT_MODEL
    except (DeviceNotFoundError, PortInUseError) as exc:
        err.write(f"rtmer: {printable(str(exc))}\n")
        return EXIT_DEVICE
    except AudioInputError as exc:
        err.write(f"rtmer: {printable(str(exc))}\n")
        return EXIT_DEVICE
    except ConfigError as exc:
        err.write(f"rtmer: {printable(str(exc))}\n")
        return EXIT_USAGE
    except RtmerError as exc:
        err.write(f"rtmer: {printable(str(exc))}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        err.write("rtmer: interrupted\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
