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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

# CSI sequences (colours, erase line, cursor moves) and the two-character escapes.
ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")
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
        self.line = ""  # the frame being drawn since the last newline or carriage return
        self.logged_at = clock()

    def write(self, text: str) -> int:
        """Write `text`: complete lines go out, a carriage return discards the frame before it."""
        for piece in re.split(r"(\r\n|\r|\n)", ESCAPES.sub("", text)):
            if piece in ("\n", "\r\n"):
                self._emit()
            elif piece == "\r":
                self.line = ""
            else:
                self.line += piece
        if self.line.strip() and self.clock() - self.logged_at >= self.every_s:
            self._emit()  # a long bar: log where it stands, once a minute
        return len(text)

    def _emit(self) -> None:
        self.stream.write(self.line + "\n")
        self.line = ""
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
            if isinstance(current, PlainLog) and current.line:
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
