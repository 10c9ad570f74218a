"""The ``rtmer`` process: ``python -m rtmer`` and the ``rtmer`` console script (``main``).

``rtmer.app.cli.main`` is the command line; ``main`` here readies the process for it before
anything heavy is imported (``rtmer.app.cli`` and what it loads take a tenth of a second):

- SIGINT, SIGTERM and SIGHUP are recorded from the first moment
  (``rtmer.app.signals.hold_stop_signals``): one that comes while rtmer starts stops the run
  as soon as it has started, with its summary and exit code 130, instead of a traceback
  from inside an import or death by the signal's default action.
- A standard file descriptor that was closed (``<&-``, ``>&-``, ``2>&-``) is opened on
  /dev/null, so that no file or socket rtmer opens later takes its number (a model file
  read as stdin, audio written to a socket as stdout). Python has set ``sys.stdin``,
  ``sys.stdout`` or ``sys.stderr`` to None for it, which is how the command knows.
"""

from __future__ import annotations

import os
import sys

from rtmer.app.signals import hold_stop_signals

EXIT_INTERRUPTED = 130  # rtmer.app.cli.EXIT_INTERRUPTED, without importing rtmer.app.cli


def main() -> int:
    """Run the ``rtmer`` command with the process's arguments; returns its exit code."""
    with hold_stop_signals():
        _open_closed_standard_fds()
        try:
            from rtmer.app.cli import main as cli_main
        except KeyboardInterrupt:  # a second signal while importing: abort
            if sys.stderr is not None:
                sys.stderr.write("rtmer: interrupted\n")
            return EXIT_INTERRUPTED
        return cli_main()


def _open_closed_standard_fds() -> None:
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
            if null != fd:  # not expected: open takes the lowest free number, and the lower ones are open
                os.dup2(null, fd)
                os.close(null)


if __name__ == "__main__":
    raise SystemExit(main())
