"""Every error rtmer raises on purpose.

    RtmerError
    ├── ModelContractError   the model file is missing, corrupt, or breaks the contract
    ├── AudioInputError      an audio file or stream that cannot be read or is malformed
    ├── DeviceNotFoundError  no input device matches (or several do); lists the available ones
    ├── PortInUseError       a server port cannot be bound
    ├── ConfigError          a bad option value or config file
    │   └── MissingExtraError  an option that needs an optional extra that is not installed
    ├── DatasetError         a training dataset that is missing or malformed
    └── ServerConnectionError  an rtmer WebSocket server that cannot be reached or was lost
"""

from __future__ import annotations


class RtmerError(Exception):
    """Base class of all rtmer errors."""


class ModelContractError(RtmerError):
    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"model file {path!r}: {reason}")


class AudioInputError(RtmerError):
    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"audio input {source!r}: {reason}")


class DeviceNotFoundError(RtmerError):
    """No input device matches ``query``, or (``matches`` not empty) more than one does."""

    def __init__(self, query: str, available: list[str], *, hint: str = "", matches: list[str] | None = None) -> None:
        self.query = query
        self.available = available
        self.hint = hint
        self.matches = list(matches or [])
        listing = "\n".join(f"  {name}" for name in available) or "  (none)"
        more = f"\n({hint})" if hint else ""
        if self.matches:
            what = (f"input device {query!r} is ambiguous: {len(self.matches)} devices match: "
                    f"{', '.join(self.matches)}; give more of the name")
        else:
            what = f"no input device matches {query!r}"
        super().__init__(f"{what}; available input devices:\n{listing}{more}")


class PortInUseError(RtmerError):
    def __init__(self, host: str, port: int, *, option: str = "--ws-port") -> None:
        self.host = host
        self.port = port
        self.option = option
        super().__init__(f"port {port} on {host} is already in use; choose another with {option}")


class ConfigError(RtmerError):
    """A bad option value; the message names the option, the value and what was expected."""


class MissingExtraError(ConfigError):
    """An option needs a package of an optional extra that is not installed, e.g. ``--plot`` and matplotlib."""

    def __init__(self, option: str, module: str, extra: str) -> None:
        self.option = option
        self.module = module
        self.extra = extra
        super().__init__(f"{option} needs {module}, which is not installed; install it with: "
                         f"pip install 'rtmer[{extra}]'")


class DatasetError(RtmerError):
    """A training dataset that is missing or malformed; the message names the file or value."""


class ServerConnectionError(RtmerError):
    """``rtmer.client``: the server cannot be reached, is not an rtmer server, or went away."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"rtmer server {url!r}: {reason}")
