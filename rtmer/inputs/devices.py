"""Input devices: PortAudio's, and the PulseAudio/PipeWire sources that ``pactl`` lists.

A source (monitors of outputs included) is captured through PortAudio's ALSA ``pulse``
device, with ``PULSE_SOURCE`` naming it while the stream opens (libpulse reads it then;
``rtmer.inputs.live.LiveInput`` does the opening). ``find_input_device`` resolves what a user
typed (``device:NAME[:CHANNELS]``) to one device; ``capture_channels`` says how many
channels to open so that every stream on it gets the channels it asked for.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rtmer.errors import AudioInputError, ConfigError, DeviceNotFoundError

log = logging.getLogger(__name__)


def parse_channels(text: str) -> list[int]:
    """'1-2' -> [0, 1]; '3,4' -> [2, 3]; '1-2,5' -> [0, 1, 4]. Channels are 1-based in text."""
    out: list[int] = []
    if not re.fullmatch(r"\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*", text or ""):
        raise ConfigError(f"channels={text!r} must look like '1', '1-2' or '3,4' (1-based)")
    for part in text.split(","):
        lo_s, _, hi_s = part.partition("-")
        lo, hi = int(lo_s), int(hi_s or lo_s)
        if lo < 1 or hi < lo:
            raise ConfigError(f"channels={text!r}: range {part.strip()!r} must be ascending and start at 1")
        out.extend(range(lo - 1, hi))
    return sorted(set(out))


PACTL_TIMEOUT_S = 5.0  # longest wait for one ``pactl`` call [s]
PULSE_HOST_DEVICE = "pulse"  # the PortAudio (ALSA plugin) device that PulseAudio/PipeWire sources are captured through
_PULSE_ROUTED = ("pulse", "default")  # ALSA devices that capture the server's default source when a server runs
# Positions ALSA's pulse plugin asks for, by channel count (PA_CHANNEL_MAP_ALSA, the rest filled with aux0...)
_ALSA_POSITIONS = ("front-left", "front-right", "rear-left", "rear-right", "front-center", "lfe", "side-left", "side-right")


def sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # PortAudio library missing
        raise AudioInputError("sounddevice", f"PortAudio is not available ({exc}); install libportaudio2") from exc
    return sounddevice


def list_input_devices() -> list[dict[str, Any]]:
    """PortAudio input devices as dicts: kind ('portaudio'), index, name, hostapi,
    max_input_channels, default_samplerate [Hz]."""
    sd = sounddevice()
    devices = []
    for index, dev in enumerate(sd.query_devices()):
        if int(dev["max_input_channels"]) > 0:
            api = sd.query_hostapis(int(dev["hostapi"]))["name"]
            devices.append(
                {
                    "kind": "portaudio",
                    "index": index,
                    "name": str(dev["name"]),
                    "hostapi": str(api),
                    "max_input_channels": int(dev["max_input_channels"]),
                    "default_samplerate": float(dev["default_samplerate"]),
                }
            )
    return devices


def describe_device(dev: dict[str, Any]) -> str:
    return (
        f"{dev['index']:>3}: {dev['name']} ({dev['hostapi']}, {dev['max_input_channels']} in, "
        f"{dev['default_samplerate']:.0f} Hz)"
    )


@dataclass(frozen=True, slots=True)
class PulseSource:
    """A PulseAudio/PipeWire source as ``pactl`` lists it (monitors of outputs included).

    ``rate`` [Hz]; ``channel_map`` is None when pactl's short listing (no maps) was all there was.
    """

    name: str
    description: str
    channels: int
    rate: int
    channel_map: tuple[str, ...] | None
    monitor: bool


def _pactl(*args: str) -> str | None:
    """stdout of ``pactl ARGS`` in the C locale, or None: no pactl, no server, an old pactl, a timeout."""
    exe = shutil.which("pactl")
    if exe is None:
        return None
    try:
        done = subprocess.run(
            [exe, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=PACTL_TIMEOUT_S, env={**os.environ, "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("pactl %s: %s", " ".join(args), exc)
        return None
    if done.returncode != 0:
        log.debug("pactl %s exited with %d: %s", " ".join(args), done.returncode, done.stderr.strip())
        return None
    return done.stdout


def _spec_numbers(spec: str) -> tuple[int, int]:
    """'s16le 2ch 44100Hz' -> (2, 44100); zeros for what it does not say."""
    ch = re.search(r"(\d+)ch\b", spec)
    hz = re.search(r"(\d+)\s*Hz\b", spec)
    return (int(ch.group(1)) if ch else 0, int(hz.group(1)) if hz else 0)


def _sources_from_json(text: str) -> list[PulseSource] | None:
    try:
        raw = json.loads(text)
        out = []
        for d in raw:
            name = str(d["name"])
            channels, rate = _spec_numbers(str(d.get("sample_specification", "")))
            cmap = d.get("channel_map")
            props = d.get("properties") or {}
            monitor_of = d.get("monitor_of_sink")
            monitor = (
                props.get("device.class") == "monitor"
                or name.endswith(".monitor")
                or (isinstance(monitor_of, str) and monitor_of not in ("", "n/a"))
            )
            out.append(
                PulseSource(
                    name=name,
                    description=str(d.get("description") or ""),
                    channels=channels,
                    rate=rate,
                    channel_map=tuple(str(cmap).split(",")) if isinstance(cmap, str) and cmap else None,
                    monitor=bool(monitor),
                )
            )
        return out
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # pactl's JSON has had bugs
        log.debug("pactl's JSON list of sources is unusable (%s); using its short list", exc)
        return None


def _sources_from_short(text: str) -> list[PulseSource]:
    """``pactl list short sources``: index, name, driver, sample spec, state (tab-separated)."""
    out = []
    for line in text.splitlines():
        cols = line.split("\t")
        if len(cols) < 4 or not cols[1]:
            continue
        channels, rate = _spec_numbers(cols[3])
        out.append(PulseSource(cols[1], "", channels, rate, None, cols[1].endswith(".monitor")))
    return out


def list_pulse_sources() -> tuple[list[PulseSource], str | None]:
    """(sources, the default source's name) of the PulseAudio or PipeWire server, from ``pactl``.

    ``pactl -f json`` (pactl 16 and later) first, else pactl's short listing. Returns
    ``([], None)`` when pactl is not installed or no server answers: PortAudio's own
    devices are then all there is.
    """
    text = _pactl("-f", "json", "list", "sources")
    sources = _sources_from_json(text) if text is not None else None
    if sources is None:
        short = _pactl("list", "short", "sources")
        if short is None:
            return [], None
        sources = _sources_from_short(short)
    default: str | None = None
    info = _pactl("-f", "json", "info")
    if info is not None:
        try:
            value = json.loads(info).get("default_source_name")
            default = str(value) if value else None
        except (ValueError, AttributeError):
            info = None
    if info is None:
        plain = _pactl("info") or ""
        found = re.search(r"^Default Source:\s*(\S+)\s*$", plain, flags=re.MULTILINE)
        default = found.group(1) if found else None
    return sources, default


def alsa_plugin_channel_map(channels: int) -> tuple[str, ...]:
    """The channel positions ALSA's pulse plugin records ``channels`` channels with.

    PulseAudio hands a record stream the source's channels matched *by position*, so
    channel k of the capture is channel k of the source only where the source's map is
    this one: mono, stereo (front-left, front-right) and quad (plus rear-left,
    rear-right) sources are; a pro-audio source (aux0, aux1, ...) is not.
    """
    if channels == 1:
        return ("mono",)
    base = max(n for n in (2, 4, 5, 6, 8) if n <= channels)
    return _ALSA_POSITIONS[:base] + tuple(f"aux{i}" for i in range(channels - base))


def describe_source(src: PulseSource, *, default: bool = False) -> str:
    tags = (["monitor"] if src.monitor else []) + [f"{src.channels} ch", f"{src.rate} Hz"]
    if src.channel_map is not None and src.channels > 2 and src.channel_map != alsa_plugin_channel_map(src.channels):
        tags.append(f"positions {','.join(src.channel_map)}: only the downmix, no channel picks")
    tags += ["default"] if default else []
    about = f"{src.description} " if src.description else ""
    return f"{src.name}: {about}({', '.join(tags)})"


def _pulse_host(devices: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The PortAudio device that PulseAudio/PipeWire sources are captured through (ALSA's 'pulse')."""
    for d in devices:
        if d["name"] == PULSE_HOST_DEVICE:
            return dict(d)
    return None


def input_devices_json() -> list[dict[str, Any]]:
    """``rtmer devices --json``: PortAudio devices, then PulseAudio/PipeWire sources (kind 'pulse')."""
    devices = list_input_devices()
    sources, default = list_pulse_sources()
    host = _pulse_host(devices)
    out: list[dict[str, Any]] = [dict(d) for d in devices]
    for s in sources:
        out.append(
            {
                "kind": "pulse",
                "index": None,
                "name": s.name,
                "description": s.description,
                "hostapi": "PulseAudio",
                "max_input_channels": s.channels,
                "default_samplerate": float(s.rate),
                "channel_map": list(s.channel_map) if s.channel_map is not None else None,
                "monitor": s.monitor,
                "default": s.name == default,
                "capture_through": host["name"] if host else None,
                "stream_spec": f"device:{s.name}",
            }
        )
    return out


def describe_input_devices() -> str:
    """``rtmer devices``: what ``device:INDEX`` and ``device:NAME`` can pick, one per line."""
    devices = list_input_devices()
    sources, default = list_pulse_sources()
    lines = ["PortAudio input devices (device:INDEX or device:NAME):"]
    lines += [f"  {describe_device(d)}" for d in devices] or ["    (none)"]
    if sources:
        host = _pulse_host(devices)
        how = (
            f"captured through PortAudio's {host['name']!r} device" if host
            else f"PortAudio has no {PULSE_HOST_DEVICE!r} device to capture them through; install libasound2-plugins"
        )
        lines.append(f"PulseAudio/PipeWire sources (device:NAME; {how}):")
        lines += [f"    {describe_source(s, default=s.name == default)}" for s in sources]
        if default is not None:
            lines.append(f"  device:pulse and device:default capture the default source ({default}).")
    return "\n".join(lines) + "\n"


def find_input_device(query: str | int | None) -> dict[str, Any]:
    """The input device by index, exact name, or case-insensitive name substring.

    PortAudio devices first, then PulseAudio/PipeWire sources by name (or description).
    None means the system's default input. Raises ``DeviceNotFoundError`` listing the
    input devices when nothing (or nothing unambiguous) matches.

    The dict is a PortAudio device's (``list_input_devices``) plus ``label`` (what
    messages call it), ``pulse_source`` (the source to capture through PortAudio's
    'pulse' device, or None), ``via_pulse`` (True when PulseAudio picks the channels:
    ALSA's pulse plugin), ``source`` (the source captured, when known) and
    ``channel_map`` (its positions, when known). For a source, and for 'pulse'/'default' while a server runs,
    ``max_input_channels`` and ``default_samplerate`` are the source's own, not the
    plugin's (which accepts any count and upmixes). Without pactl, 'pulse' and
    'default' are what PortAudio says, and channels past the source's are upmixed copies.
    """
    devices = list_input_devices()
    sources, default_source = list_pulse_sources()
    by_name = {s.name: s for s in sources}
    listing = [describe_device(d) for d in devices] + [
        f"source {describe_source(s, default=s.name == default_source)}" for s in sources
    ]
    hint = "a file is read with --file PATH or --stream file:PATH; `rtmer devices` lists the devices"

    def portaudio(d: dict[str, Any]) -> dict[str, Any]:
        out = {**d, "label": repr(d["name"]), "pulse_source": None, "via_pulse": False, "channel_map": None}
        effective = os.environ.get("PULSE_SOURCE") or default_source
        src = by_name.get(effective or "") if d["name"] in _PULSE_ROUTED and d["hostapi"] == "ALSA" else None
        if src is not None and src.channels > 0:
            out.update(
                label=f"{d['name']!r} (source {src.name})",
                max_input_channels=src.channels,
                default_samplerate=float(src.rate or d["default_samplerate"]),
                via_pulse=True,  # ALSA's default is the pulse plugin while a server runs
                channel_map=src.channel_map,
                source=src.name,
            )
        return out

    def pulse(src: PulseSource) -> dict[str, Any]:
        host = _pulse_host(devices)
        if host is None:
            raise AudioInputError(
                src.name,
                f"is a PulseAudio/PipeWire source, but PortAudio has no {PULSE_HOST_DEVICE!r} device to capture "
                "it through; install libasound2-plugins (ALSA's pulse plugin)",
            )
        return {
            **host,
            "kind": "pulse",
            "label": f"source {src.name!r}",
            "pulse_source": src.name,
            "via_pulse": src.channels > 0,  # False only when pactl did not say how many channels
            "channel_map": src.channel_map,
            "max_input_channels": src.channels or host["max_input_channels"],
            "default_samplerate": float(src.rate or host["default_samplerate"]),
            "source": src.name,
        }

    if query is None or query == "default":
        default = sounddevice().default.device[0]
        if default is not None and default >= 0:
            for d in devices:
                if d["index"] == default:
                    return portaudio(d)
        for d in devices:
            if d["name"] == "default":
                return portaudio(d)
        if devices:
            return portaudio(devices[0])
        raise DeviceNotFoundError("default", listing, hint=hint)
    text = str(query).strip()
    if text.isdigit():
        for d in devices:
            if d["index"] == int(text):
                return portaudio(d)
        raise DeviceNotFoundError(text, listing, hint=hint)
    exact = [d for d in devices if d["name"].lower() == text.lower()]
    if exact:
        return portaudio(exact[0])
    if text in by_name:
        return pulse(by_name[text])
    low = text.lower()
    some_devices = [d for d in devices if low in d["name"].lower()]
    some_sources = [s for s in sources if low in s.name.lower() or low in s.description.lower()]
    found = len(some_devices) + len(some_sources)
    if found == 1:
        return portaudio(some_devices[0]) if some_devices else pulse(some_sources[0])
    if found > 1:
        matches = [f"device {d['index']} {d['name']!r}" for d in some_devices] + [
            f"source {s.name!r}" + (f" ({s.description})" if s.description else "") for s in some_sources
        ]
        raise DeviceNotFoundError(text, listing, matches=matches)
    picked = re.fullmatch(r"(.+):\d+(-\d+)?", text)
    if picked:  # device:NAME:0 is a missing device 'NAME:0': channel 0 is no channel
        hint = f"channels are numbered from 1, e.g. device:{picked.group(1)}:1-2; {hint}"
    raise DeviceNotFoundError(text, listing, hint=hint)


def format_channels(channels: Sequence[int]) -> str:
    """[0, 1] -> '1-2'; [0, 4] -> '1,5' (0-based in, 1-based text out, as ``parse_channels`` reads)."""
    parts: list[str] = []
    chans = sorted(set(channels))
    i = 0
    while i < len(chans):
        j = i
        while j + 1 < len(chans) and chans[j + 1] == chans[j] + 1:
            j += 1
        parts.append(f"{chans[i] + 1}" if i == j else f"{chans[i] + 1}-{chans[j] + 1}")
        i = j + 1
    return ",".join(parts)


def capture_channels(info: dict[str, Any], streams: Mapping[str, Sequence[int] | None]) -> int:
    """How many channels to open ``info`` with so that each stream gets the channels it asks for.

    Raises ``ConfigError`` naming the stream and how many channels the device has when a
    stream asks for more, and, through PulseAudio, when the source's channel positions
    would not come through by number.
    """
    have = int(info["max_input_channels"])
    picks = {s: list(ch) for s, ch in streams.items() if ch is not None}
    for stream, ch in picks.items():
        if max(ch) >= have:
            raise ConfigError(
                f"stream {stream}: channels={format_channels(ch)} asked for, but {info['label']} has {have} input "
                f"channel{'s' if have != 1 else ''} ({format_channels(range(have)) if have else 'none'})"
            )
    if not info.get("via_pulse"):
        return (max(c for ch in picks.values() for c in ch) + 1) if picks else min(2, have)
    if not picks:
        return 1  # PulseAudio's own downmix of every channel of the source, whatever their positions
    cmap = info.get("channel_map")
    want = alsa_plugin_channel_map(have)
    if cmap is not None and tuple(cmap) != want:
        name = info.get("source") or "SOURCE"
        raise ConfigError(
            f"stream {next(iter(picks))}: {info['label']} has the channel positions {','.join(cmap)}, but through "
            f"ALSA's pulse plugin PulseAudio hands over channels by position ({','.join(want)}), so channel numbers "
            f"would not be the source's. Make a source with those positions, e.g. `pactl load-module "
            f"module-remap-source source_name=rtmer_{have}ch master={name} channels={have} "
            f"master_channel_map={','.join(cmap)} channel_map={','.join(want)} remix=no`, and use device:rtmer_{have}ch"
        )
    return have  # the whole source, in its own order: nothing is remixed
