"""The terminal display: plain lines when piped, one line a stream rewritten in place on a terminal."""

from __future__ import annotations

import io

from rtmer.app.display import Display, print_summary, printable
from rtmer.core.engine import StreamStats
from rtmer.app.runner import RunSummary
from rtmer.core.update import Update


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


def test_printable_escapes_what_a_terminal_would_act_on() -> None:
    assert printable("deck 1: Süße 日本") == "deck 1: Süße 日本"
    assert printable("a\x1b[2Jb\x07\n\t\u202ec\x7f") == "a\\x1b[2Jb\\x07\\n\\t\\u202ec\\x7f"


def test_names_with_control_characters_are_escaped_in_the_display_and_the_summary() -> None:
    out = io.StringIO()
    Display(["a\x1b[2J"], out)([update("a\x1b[2J", 0, 0.5, -0.25)])
    summary = RunSummary(streams={"a\x1b[2J": StreamStats()}, failed_inputs={"file x\x1b]0;t\x07.wav": "no such file"})
    print_summary(summary, [], out)
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text
    assert "a\\x1b[2J t=" in text and "stream a\\x1b[2J: 0 hops" in text and "FAILED file x\\x1b]0;t\\x07.wav" in text


def test_a_terminals_rows_escape_a_stream_that_is_still_waiting() -> None:
    term = FakeTerminal()
    Display(["x\x1b[2J", "b"], term)([update("b", 0, 0.0, 0.0)])
    assert "x\\x1b[2J (waiting)" in term.getvalue() and "\x1b[2J" not in term.getvalue().replace("\x1b[2K", "")
