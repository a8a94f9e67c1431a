"""Logs without terminal control: escape codes stripped, a redrawn line logged once."""

from __future__ import annotations

import io
import logging
import sys

from cvspec.run.plainlog import PlainLog, plain_output


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_redrawn_bar_leaves_its_last_frame_and_colours_go() -> None:
    out, clock = io.StringIO(), Clock()
    log = PlainLog(out, every_s=60, clock=clock)
    log.write("\x1b[34m\x1b[1mtrain:\x1b[0m Scanning... 3 images\n")
    for n in range(1, 4):
        log.write(f"\r\x1b[K  1/1  {n}/3 batches")
    log.write("\n")
    log.write("\r\x1b[K")  # a bar that leaves nothing behind
    log.write("done\r\n")
    assert out.getvalue() == "train: Scanning... 3 images\n  1/1  3/3 batches\ndone\n"


def test_a_long_bar_is_logged_once_a_minute() -> None:
    out, clock = io.StringIO(), Clock()
    log = PlainLog(out, every_s=60, clock=clock)
    log.write("\r  1/100")
    clock.now = 61
    log.write("\r 50/100")
    clock.now = 90
    log.write("\r 70/100")
    log.write("\r100/100\n")
    assert out.getvalue() == " 50/100\n100/100\n"
    assert not log.isatty()


def test_plain_output_wraps_streams_and_their_logging_handlers_then_restores() -> None:
    out = io.StringIO()  # not a terminal
    logger = logging.getLogger("cvspec-test-plainlog")
    handler = logging.StreamHandler(out)
    logger.addHandler(handler)
    saved = sys.stdout
    sys.stdout = out
    try:
        with plain_output():
            assert isinstance(sys.stdout, PlainLog)
            logger.warning("\x1b[31mred\x1b[0m")
            sys.stdout.write("\rframe 1\rframe 2")  # unfinished: logged when the body ends
        assert sys.stdout is out and handler.stream is out
    finally:
        sys.stdout = saved
        logger.removeHandler(handler)
    assert out.getvalue() == "red\nframe 2\n"


def test_a_quiet_line_is_not_split_and_a_line_ending_in_a_return_is_kept() -> None:
    out, clock = io.StringIO(), Clock()
    log = PlainLog(out, every_s=60, clock=clock)
    log.write("Epoch")
    clock.now = 120  # a minute of quiet in the middle of an ordinary line
    log.write(" 3 loss 0.5\n")
    log.write("done\r")  # CRLF cut between two writes
    log.write("\n")
    log.write("\x1b[3")  # an escape sequence cut between two writes
    log.write("4mblue\x1b[0m\n")
    log.writelines(["a\n", "b\n"])
    assert out.getvalue() == "Epoch 3 loss 0.5\ndone\nblue\na\nb\n"
