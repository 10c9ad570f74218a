"""OSC over UDP: one bundle per update, sent to one or more ``host:port`` targets.

Each update becomes one OSC bundle whose timetag is the update's unix time
(``Update.time``), holding five messages (``<p>`` is the prefix, ``/rtmer`` by default;
with ``per_stream_prefix`` it is ``<prefix>/<stream id>``, e.g. ``/rtmer/deck1``):

===================  =====  ==========================================
address              types  value
===================  =====  ==========================================
``<p>/valence``      f      smoothed valence
``<p>/arousal``      f      smoothed arousal
``<p>/va``           ff     smoothed valence, arousal
``<p>/mood``         s      mood label (excited, tense, sad, calm, neutral)
``<p>/raw/va``       ff     unsmoothed (model) valence, arousal
===================  =====  ==========================================

Values are in [-1, 1], or in [0, 1] with ``unit_range`` (``(x + 1) / 2``, clipped).

Notes
-----
The bundle is encoded once per update and the same bytes go to every target. Each
target has its own non-blocking *connected* UDP socket, so that the kernel reports an
ICMP "port unreachable" for a datagram as a pending socket error (``ECONNREFUSED``).
IPv4 sockets have ``SO_BROADCAST`` set, so a target may be a broadcast address
(``255.255.255.255:9000``, or a subnet's, such as ``192.168.1.255:9000``) to reach every
machine on a stage network.
Such errors, an unresolvable host or an unreachable network never stop the sink: the
first error of each target is logged once as a warning, and the sink keeps sending (a
receiver that starts later gets the next bundles). A host name is resolved once, in
the constructor; a name that does not resolve there is logged once and that target is
skipped for the sink's lifetime. ``publish`` never blocks: a send that would block
(full socket buffer) is dropped. Nothing is buffered between calls apart from the
address cache.

Counting. UDP gives no delivery receipt, so each target counts what it knows, in
datagrams: ``sent`` is datagrams the kernel accepted and that no refusal came back for;
``failed`` is datagrams that could not be sent (unresolved host, unreachable network,
full buffer) plus those refused by the receiving host. Before each send (and at
``close``) the socket's pending error is read (``SO_ERROR``); a refusal found there is
the previous datagram's, which moves from ``sent`` to ``failed``. On loopback the
refusal is pending at once, so the counts are exact; a remote host may rate-limit its
ICMP replies (Linux: about one a second), so there ``sent`` is an upper bound.
``OscSink.all_failed`` says that datagrams were sent and none succeeded, which
``rtmer run`` reports as a failed output (exit 1).
"""

from __future__ import annotations

import errno
import logging
import math
import os
import re
import socket
import struct
from dataclasses import dataclass

from pythonosc.parsing import ntp

from rtmer.errors import ConfigError
from rtmer.core.update import Update

log = logging.getLogger(__name__)

_BUNDLE_HEAD = b"#bundle\x00"
_IMMEDIATELY = b"\x00" * 7 + b"\x01"  # the OSC timetag for "now", used if time is not finite
_PREFIX_RE = re.compile(r"^(/[A-Za-z0-9_.\-]+)+$")
_STREAM_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def parse_target(text: str) -> tuple[str, int]:
    """Parse an OSC target ``"host:port"`` (``"[::1]:9000"`` for an IPv6 literal).

    The port must be an integer in 1..65535. Raises ``ConfigError`` naming the value.
    """
    expected = "expected 'host:port' with a port in 1..65535, e.g. '127.0.0.1:9000'"
    if not isinstance(text, str):
        raise ConfigError(f"OSC target {text!r}: {expected}")
    s = text.strip()
    if s.startswith("["):
        host, sep, rest = s[1:].partition("]")
        ok = bool(sep) and rest.startswith(":")
        port_text = rest[1:]
    else:
        host, sep, port_text = s.rpartition(":")
        ok = bool(sep) and ":" not in host  # a bare IPv6 literal needs brackets
    if not ok or not host or not port_text.isdigit():
        raise ConfigError(f"OSC target {text!r}: {expected}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ConfigError(f"OSC target {text!r}: port {port} is out of range; {expected}")
    return host, port


def _osc_string(s: str) -> bytes:
    b = s.encode("utf-8") + b"\x00"
    return b + b"\x00" * (-len(b) % 4)


def _message(address: bytes, tags: bytes, args: bytes) -> bytes:
    """One OSC message, already length-prefixed as a bundle element."""
    body = address + tags + args
    return struct.pack(">i", len(body)) + body


@dataclass
class OscTargetStats:
    """Counters of one target [datagrams]: ``sent`` succeeded, ``failed`` did not.

    See the module notes for what "succeeded" can mean for UDP. ``last_error`` is the
    latest failure, as text.
    """

    host: str
    port: int
    sent: int = 0
    failed: int = 0
    last_error: str | None = None


class _Target:
    def __init__(self, host: str, port: int) -> None:
        self.stats = OscTargetStats(host, port)
        self.sock: socket.socket | None = None
        self._logged = False
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as exc:  # socket.gaierror: unresolvable host
            self.fail(exc, "cannot resolve host; this target is skipped", datagram=False)
            return
        family, type_, proto, _, addr = infos[0]
        sock = socket.socket(family, type_, proto)
        sock.setblocking(False)
        if family == socket.AF_INET:  # else connecting to a broadcast address fails (EACCES)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        try:
            sock.connect(addr)  # UDP: no packet, only fixes the peer so ICMP errors come back
        except OSError as exc:  # e.g. network unreachable: keep the socket, later sends retry
            self.fail(exc, "keeps trying", datagram=False)
        self.sock = sock

    def fail(self, exc: OSError, what: str = "keeps sending", *, datagram: bool = True) -> None:
        """Note ``exc`` (one datagram failed, unless ``datagram=False``); log the target's first failure."""
        if datagram:
            self.stats.failed += 1
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if not self._logged:
            self._logged = True
            log.warning(
                "OSC target %s:%d cannot be reached (%s); %s, logged once, failures are counted",
                self.stats.host,
                self.stats.port,
                self.stats.last_error,
                what,
            )

    def _check_refused(self) -> None:
        """Read the socket's pending error: a refusal of the previous datagram moves it to ``failed``."""
        if self.sock is None:
            return
        try:
            code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        except OSError:
            return
        if code:
            refused = self.stats.sent > 0  # the previous datagram, counted as sent until now
            if refused:
                self.stats.sent -= 1
            kind = ConnectionRefusedError if code == errno.ECONNREFUSED else OSError
            self.fail(kind(code, os.strerror(code)), datagram=refused)

    def send(self, dgram: bytes) -> None:
        if self.sock is None:
            self.stats.failed += 1
            return
        self._check_refused()
        try:
            self.sock.send(dgram)
        except OSError as exc:  # ConnectionRefusedError (a refusal raced in), ENETUNREACH, BlockingIOError, ...
            if isinstance(exc, ConnectionRefusedError) and self.stats.sent > 0:
                self.stats.sent -= 1  # the refusal was the previous datagram's ...
                self.stats.failed += 1
            self.fail(exc)  # ... and this one was not sent
        else:
            self.stats.sent += 1

    def close(self) -> None:
        if self.sock is not None:
            self._check_refused()
            self.sock.close()
            self.sock = None


class OscSink:
    """Sends each update as one OSC bundle to every target (see the module docstring).

    Parameters
    ----------
    targets
        ``(host, port)`` pairs; use ``parse_target`` for ``"host:port"`` text.
    prefix
        Address prefix, e.g. ``"/rtmer"``: one or more ``/name`` parts of letters,
        digits, ``_``, ``.`` and ``-``.
    per_stream_prefix
        Put the stream id after the prefix (``/rtmer/deck1/valence``). Characters of the
        id outside ``[A-Za-z0-9_.-]`` become ``_``.
    unit_range
        Send values mapped from [-1, 1] to [0, 1] instead of [-1, 1].
    """

    def __init__(
        self,
        targets: list[tuple[str, int]],
        *,
        prefix: str = "/rtmer",
        per_stream_prefix: bool = False,
        unit_range: bool = False,
    ) -> None:
        if not targets:
            raise ConfigError("OSC targets=[] must name at least one 'host:port'")
        for target in targets:
            if (
                not isinstance(target, tuple)
                or len(target) != 2
                or not isinstance(target[0], str)
                or not target[0]
                or isinstance(target[1], bool)
                or not isinstance(target[1], int)
                or not 1 <= target[1] <= 65535
            ):
                raise ConfigError(
                    f"OSC target {target!r} must be a (host, port) pair with a port in 1..65535"
                )
        if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
            raise ConfigError(
                f"OSC prefix={prefix!r} must look like '/rtmer': '/'-separated parts of "
                "letters, digits, '_', '.', '-', with no trailing '/'"
            )
        self.prefix = prefix
        self.per_stream_prefix = per_stream_prefix
        self.unit_range = unit_range
        self._addresses: dict[str, tuple[bytes, ...]] = {}
        self._closed = False
        self._targets = [_Target(host, port) for host, port in targets]

    @property
    def targets(self) -> list[OscTargetStats]:
        """Per-target counters (live objects; read them, do not change them)."""
        return [t.stats for t in self._targets]

    @property
    def sent(self) -> int:
        """Datagrams sent, over all targets (see the module notes)."""
        return sum(t.stats.sent for t in self._targets)

    @property
    def failed(self) -> int:
        """Datagrams that failed, over all targets."""
        return sum(t.stats.failed for t in self._targets)

    @property
    def all_failed(self) -> bool:
        """True when at least one datagram failed and none was sent (exact after ``close``)."""
        return self.sent == 0 and self.failed > 0

    def base_address(self, stream: str) -> str:
        """The address prefix of ``stream``'s messages, e.g. ``/rtmer`` or ``/rtmer/deck1``."""
        if not self.per_stream_prefix:
            return self.prefix
        return f"{self.prefix}/{_STREAM_UNSAFE.sub('_', stream) or '_'}"

    def _addresses_for(self, stream: str) -> tuple[bytes, ...]:
        addrs = self._addresses.get(stream)
        if addrs is None:
            base = self.base_address(stream)
            addrs = tuple(
                _osc_string(f"{base}/{leaf}") for leaf in ("valence", "arousal", "va", "mood", "raw/va")
            )
            self._addresses[stream] = addrs
        return addrs

    def _value(self, x: float) -> float:
        if self.unit_range:
            x = (x + 1.0) * 0.5
            if math.isfinite(x):
                x = min(1.0, max(0.0, x))
        return x

    def encode(self, update: Update) -> bytes:
        """The OSC bundle datagram for ``update`` (timetag = ``update.time``)."""
        a_val, a_aro, a_va, a_mood, a_raw = self._addresses_for(update.stream)
        v = struct.pack(">f", self._value(update.valence))
        a = struct.pack(">f", self._value(update.arousal))
        raw = struct.pack(">ff", self._value(update.valence_raw), self._value(update.arousal_raw))
        t = update.time
        timetag = ntp.system_time_to_ntp(t) if math.isfinite(t) and t > 0 else _IMMEDIATELY
        return b"".join(
            (
                _BUNDLE_HEAD,
                timetag,
                _message(a_val, b",f\x00\x00", v),
                _message(a_aro, b",f\x00\x00", a),
                _message(a_va, b",ff\x00", v + a),
                _message(a_mood, b",s\x00\x00", _osc_string(update.mood)),
                _message(a_raw, b",ff\x00", raw),
            )
        )

    def publish(self, update: Update) -> None:
        """Encode ``update`` once and send it to every target; never blocks or raises on I/O."""
        if self._closed:
            return
        dgram = self.encode(update)
        for target in self._targets:
            target.send(dgram)

    def close(self) -> None:
        """Close the sockets (UDP holds nothing to flush)."""
        if self._closed:
            return
        self._closed = True
        for target in self._targets:
            target.close()
