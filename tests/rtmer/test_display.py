"""The terminal display: plain lines when piped, one line a stream rewritten in place on a terminal."""

from __future__ import annotations

import io

from rtmer.display import Display
from rtmer.update import Update


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def update(stream: str, seq: int, valence: float, arousal: float) -> Update:
    return Update(stream, seq, 0.5 * (seq + 1), 0.0, valence, arousal, valence, arousal, "calm")


def test_piped_output_gets_one_plain_line_an_update() -> None:
    out = io.StringIO()
    display = Display(["a"], out)
    display([update("a", 0, 0.5, -0.25), update("b", 0, 2.0, -3.0)])  # out of range: the bar is clamped
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\x1b" not in out.getvalue()
    assert lines[0].split()[:4] == ["a", "t=", "0.5s", "V"] and "+0.50" in lines[0] and "-0.25" in lines[0]
    assert "[.....:....|]" in lines[1] and "[|....:.....]" in lines[1]  # valence at +1, arousal at -1; ":" marks 0
    assert display.streams == ["a", "b"]  # a stream not named at the start joins the display


def test_a_terminal_gets_one_row_a_stream_rewritten_in_place() -> None:
    out = FakeTerminal()
    display = Display(["a", "b"], out)
    display([update("a", 0, 0.0, 0.0)])
    first = out.getvalue()
    assert first.count("\n") == 1 and "(waiting)" in first  # b has no value yet
    display([update("b", 0, 0.1, 0.1)])
    second = out.getvalue()[len(first) :]
    assert second.startswith("\x1b[F\r")  # back up over the two rows drawn before
    assert "(waiting)" not in second and second.count("\x1b[2K") == 2
    display.close()
    assert out.getvalue().endswith("\n")
