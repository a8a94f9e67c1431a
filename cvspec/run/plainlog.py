"""Logs without terminal control: what a stage prints reads the same in a file or a CI log.

Libraries that draw progress bars (ultralytics) redraw one line with carriage returns and
colour it with escape codes whether or not anyone watches a terminal, so a redirected run or a
GitLab job log fills with `\\x1b[34m` and frames joined on one line. When the output is not a
terminal, `cvspec run` writes through `PlainLog`: escape codes go, and of the frames a carriage
return redraws only the last one reaches the log (or one a minute on a long bar, so a log still
shows progress).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

# CSI sequences (colours, erase line, cursor moves) and the two-character escapes.
ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")
# An escape sequence still open at the end of a write (ESC, or CSI without its final byte).
PARTIAL_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*)?$")
FRAME_EVERY_S = 60.0  # a redrawn line still unfinished after this long is logged as it stands


class PlainLog:
    """A text stream that strips escape codes and keeps, of a redrawn line, its last frame."""

    def __init__(
        self,
        stream: TextIO,
        every_s: float = FRAME_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.every_s = every_s
        self.clock = clock
        self.line = ""  # the line (or frame) written since the last newline
        self.redrawn = False  # a carriage return came since the last newline: a progress bar
        self.returned = False  # the last thing written was a carriage return
        self.carry = ""  # an escape sequence cut off at the end of the last write
        self.logged_at = clock()

    def write(self, text: str) -> int:
        """Write `text`: complete lines go out; the text before a carriage return is dropped
        when more of the line follows it (a redraw), kept when a newline does."""
        joined = self.carry + text
        self.carry = ""
        cut = PARTIAL_ESCAPE.search(joined)
        if cut:  # wait for the rest of the sequence before stripping it
            joined, self.carry = joined[: cut.start()], joined[cut.start() :]
        for piece in re.split(r"(\r\n|\r|\n)", ESCAPES.sub("", joined)):
            if piece in ("\n", "\r\n"):
                self._emit()
            elif piece == "\r":
                self.returned = self.redrawn = True
            elif piece:
                if self.returned:
                    self.line, self.returned = "", False
                self.line += piece
        if self.redrawn and self.line.strip() and self.clock() - self.logged_at >= self.every_s:
            self._emit()  # a long bar: log where it stands, once a minute
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each of `lines` (no newlines added, as io does)."""
        for line in lines:
            self.write(line)

    def _emit(self) -> None:
        self.stream.write(self.line + "\n")
        self.line, self.redrawn, self.returned = "", False, False
        self.logged_at = self.clock()

    def flush(self) -> None:
        """Flush the stream (an unfinished frame waits for its line to end)."""
        self.stream.flush()

    def isatty(self) -> bool:
        """Never a terminal: what writes here draws no bars."""
        return False

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, buffer: the stream's own
        return getattr(self.stream, name)


@contextmanager
def plain_output() -> Iterator[None]:
    """Route stdout and stderr (and logging handlers that write to them) through PlainLog
    while the body runs, unless they are terminals."""
    swaps: list[tuple[Any, str, Any]] = []
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if not stream.isatty() and not isinstance(stream, PlainLog):
            swaps.append((sys, name, stream))
            setattr(sys, name, PlainLog(stream))
    replaced = {id(original): getattr(sys, name) for _, name, original in swaps}
    handlers = [
        h
        for logger in _loggers()
        for h in logger.handlers
        if isinstance(h, logging.StreamHandler) and id(h.stream) in replaced
    ]
    for handler in handlers:
        swaps.append((handler, "stream", handler.stream))
        handler.setStream(replaced[id(handler.stream)])
    try:
        yield
    finally:
        for owner, attr, original in reversed(swaps):
            current = getattr(owner, attr)
            if isinstance(current, PlainLog) and current.line and not current.returned:
                current._emit()  # what was left unfinished still reaches the log
            if owner is sys:
                setattr(sys, attr, original)
            else:
                owner.setStream(original)


def _loggers() -> list[logging.Logger]:
    manager = logging.Logger.manager
    found = [logging.getLogger()]
    found += [lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    return found
