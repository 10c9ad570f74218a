"""Output paths for ``rtmer analyze`` and its plots: checked before anything is analysed, then written.

- ``check_outputs`` refuses an output that cannot be written (``-o`` naming a folder or
  a file in a missing folder or on a read-only filesystem, ``--output-dir`` naming a file)
  before the model is loaded.
- ``resolve_output``: what ``-o`` names is respected. A regular file, or a name not taken
  yet, is written atomically (``write_atomically``: a temporary name in its folder, then
  renamed); a symlink is followed; a special file (a device, a FIFO, a pipe, anything
  under /proc or /sys) is never replaced, but opened and streamed into.
- ``output_names``: one file name per input in ``--output-dir`` that never collides;
  ``dedupe``: a path given twice is analysed once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from rtmer.errors import ConfigError

STDIN = "-"  # the input and the output that mean the standard streams


@dataclass
class OutputTarget:
    """Where ``-o`` writes (``resolve_output``; see the module docstring).

    ``kind`` is ``"file"`` for a regular file, written atomically at ``path`` (the
    file a symlink leads to), or what the special file is (``"FIFO"``, ``"character
    device"``, ...), streamed into through ``fd``, opened by ``resolve_output``, or at
    ``write`` when a FIFO had no reader then.
    """

    given: str
    path: Path
    kind: str = "file"
    fd: int | None = None

    @property
    def special(self) -> bool:
        return self.kind != "file"

    def write(self, write: Callable[[TextIO], None]) -> None:
        """Write through ``write``: atomically to a regular file, streamed into a special one. Raises ``OSError``."""
        if not self.special:
            write_atomically(self.path, write)
            return
        fd = self.fd if self.fd is not None else os.open(self.path, os.O_WRONLY | os.O_NOCTTY)
        self.fd = None
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            write(f)

    def close(self) -> None:
        """Close a special file that was opened and not written (nothing finished, an interruption)."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


_SPECIAL_TREES = ("/proc", "/sys")  # files there are rewritten in place, never replaced


def _under(path: str, trees: Sequence[str]) -> bool:
    return any(path == t or path.startswith(t + "/") for t in trees)


def _through_special_tree(value: str) -> bool:
    """True when ``value`` is, or leads through symlinks to, a name under /proc or /sys
    (``/dev/stdout``, ``/dev/fd/63``: magic links whose targets are not names)."""
    p = os.path.abspath(value)
    for _ in range(40):  # the kernel's own limit on links followed
        parent = os.path.realpath(os.path.dirname(p))
        if _under(parent, _SPECIAL_TREES) or _under(p, _SPECIAL_TREES):
            return True
        if not os.path.islink(p):
            return False
        p = os.path.join(parent, os.readlink(p))
    return False


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISREG, "file under /proc or /sys")):
        if test(mode):
            return name
    return "special file"


def _open_special(value: str, mode: int) -> int | None:
    """Open the special file ``value`` for writing now; None for a FIFO with no reader yet. Raises ``ConfigError``."""
    flags = os.O_WRONLY | os.O_NOCTTY
    if stat.S_ISREG(mode):  # a file behind /proc/self/fd/N (a shell's `> file` or `>> file`): after what is there
        flags |= os.O_APPEND
    try:
        if stat.S_ISFIFO(mode):  # do not wait here for a reader: signals are still held (rtmer.app.signals)
            fd = os.open(value, flags | os.O_NONBLOCK)
            os.set_blocking(fd, True)
            return fd
        return os.open(value, flags)
    except OSError as exc:
        if stat.S_ISFIFO(mode) and exc.errno == errno.ENXIO:
            return None
        raise ConfigError(f"--output={value!r} ({_kind(mode)}) cannot be opened for writing "
                          f"({exc.strerror or exc})") from None


def resolve_output(value: str) -> OutputTarget:
    """What ``-o value`` writes to (``OutputTarget``), checked; raises ``ConfigError`` naming the value."""
    try:
        st: os.stat_result | None = os.stat(value)
    except FileNotFoundError:
        st = None  # not there yet, or a symlink to a name not there yet
    except OSError as exc:  # a symlink loop, a component that is not a folder
        raise ConfigError(f"--output={value!r} cannot be resolved ({exc.strerror or exc}); expected a file "
                          "to write") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"--output={value!r} is a folder; expected a file to write "
                          f"(for one file per input use --output-dir {value})")
    special = _through_special_tree(value)
    if st is not None and (special or not stat.S_ISREG(st.st_mode)):
        return OutputTarget(value, Path(value), _kind(st.st_mode), _open_special(value, st.st_mode))
    if special:
        raise ConfigError(f"--output={value!r} does not exist, and a file under /proc or /sys cannot be created")
    target = os.path.realpath(value)
    check_writable_file("output", value, path=target)
    return OutputTarget(value, Path(target))


def check_outputs(*, output: str | None, output_dir: str | None,
                  inputs: Sequence[str] = ()) -> OutputTarget | None:
    """Refuse outputs that cannot be written, before anything is analysed; creates ``output_dir``.

    Returns ``-o``'s ``OutputTarget`` (None for stdout or ``--output-dir``); a special
    file is opened by then. An ``output`` that is one of the ``inputs`` (the same file by
    any path) is refused too: it would replace that audio with its analysis. Raises
    ``ConfigError`` naming the value and what was expected.
    """
    if output and output_dir:
        raise ConfigError(f"give --output or --output-dir, not both (got --output={output!r}, "
                          f"--output-dir={output_dir!r})")
    target = None
    if output and output != STDIN:
        target = resolve_output(output)
        for name in inputs:
            if (not target.special and target.path.exists() and name != STDIN and os.path.exists(name)
                    and os.path.samefile(name, target.path)):
                raise ConfigError(f"--output={output!r} is the input {name!r}; expected another file "
                                  "(it would replace that audio with its analysis)")
    if output_dir:
        if Path(output_dir).exists() and not Path(output_dir).is_dir():
            raise ConfigError(f"--output-dir={output_dir!r} is a file; expected a folder (created if missing)")
        make_writable_folder("output-dir", output_dir)
    return target


def _not_writable(path: str) -> str | None:
    """Why ``path`` (a folder or a file) cannot be written, or None: a read-only filesystem, or permissions."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "it is on a read-only filesystem"
    except OSError:
        pass
    if not os.access(path, os.W_OK | (os.X_OK if os.path.isdir(path) else 0)):
        return "permission denied"
    return None


def check_writable_file(option: str, value: str, *, path: str | None = None) -> None:
    """``--option=value`` names a file that can be written: its folder exists and lets us write, and so does the
    file if it is there. ``path`` is the file ``value`` leads to, when a symlink (default: ``value``)."""
    p = Path(path or value)
    parent = p.parent
    via = f" (a symlink to {str(p)!r})" if path and os.path.abspath(value) != str(p) else ""
    if parent.exists() and not parent.is_dir():
        raise ConfigError(f"--{option}={value!r}{via}: {str(parent)!r} is not a folder")
    if not parent.exists():
        raise ConfigError(f"--{option}={value!r}{via}: folder {str(parent)!r} does not exist")
    why = _not_writable(str(parent)) or (_not_writable(str(p)) if p.exists() else None)
    if why:
        raise ConfigError(f"--{option}={value!r}{via}: cannot be written ({why})")


def make_writable_folder(option: str, value: str) -> None:
    """Create the folder ``--option=value`` if missing, and check that it can be written."""
    try:
        Path(value).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "it is on a read-only filesystem" if exc.errno == errno.EROFS else exc.strerror
        raise ConfigError(f"--{option}={value!r}: cannot create the folder ({why})") from exc
    why = _not_writable(value)
    if why:
        raise ConfigError(f"--{option}={value!r}: cannot be written ({why})")


def dedupe(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """The paths without repeats (same text, or the same file by another path), and a note per repeat."""
    seen: dict[str, str] = {}
    out: list[str] = []
    notes: list[str] = []
    for p in paths:
        key = os.path.realpath(p) if p != STDIN and os.path.exists(p) else p
        first = seen.get(key)
        if first is None:
            seen[key] = p
            out.append(p)
        elif first == p:
            notes.append(f"{p!r} is given more than once; it is analysed once")
        else:
            notes.append(f"{p!r} is the same file as {first!r}; it is analysed once")
    return out, notes


def output_names(paths: Sequence[str], ext: str) -> dict[str, str]:
    """``--output-dir`` file names for ``paths`` (unique, see the module docstring), e.g. ``song.ogg.csv``."""
    base = {p: "stdin" if p == STDIN else Path(p).name for p in paths}
    parents = {p: [] if p == STDIN else [x for x in Path(os.path.abspath(p)).parent.parts if x != os.sep]
               for p in paths}
    names: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for p in paths:
        groups.setdefault(base[p].casefold(), []).append(p)
    for members in groups.values():
        depth = 0
        most = max(len(parents[p]) for p in members)
        while True:
            cand = {p: "_".join([*parents[p][len(parents[p]) - min(depth, len(parents[p])):], base[p]])
                    for p in members}
            if len({c.casefold() for c in cand.values()}) == len(members) or depth >= most:
                break
            depth += 1
        names.update(cand)
    taken: set[str] = set()
    final: dict[str, str] = {}
    for p in paths:
        name, k = names[p], 1
        while (f"{name}.{ext}" if k == 1 else f"{name}-{k}.{ext}").casefold() in taken:
            k += 1
        chosen = f"{name}.{ext}" if k == 1 else f"{name}-{k}.{ext}"
        taken.add(chosen.casefold())
        final[p] = chosen
    return final


def write_atomically(target: Path, write: Callable[[TextIO], None]) -> None:
    """Write through a temporary name in the same folder, then rename: never a half-written file."""
    tmp = target.with_name(f".{target.name}.rtmer-partial")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            write(f)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
