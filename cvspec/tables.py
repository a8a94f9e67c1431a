"""Rich tables in stage output: whole in a log, folded to the window only on a terminal."""

from __future__ import annotations

from typing import Any

LOG_MAX_WIDTH = 400  # a log has no window; this bounds one pathological cell


def print_table(console: Any, table: Any) -> None:
    """Print a rich Table. Off a terminal (CI logs, `| tee`), rich would squeeze it into 80
    columns and cut run ids and paths with `…`; there it gets the width it needs instead."""
    if console.is_terminal:
        console.print(table)
        return
    options = console.options.update_width(LOG_MAX_WIDTH)
    need = min(console.measure(table, options=options).maximum, LOG_MAX_WIDTH)
    if need <= console.width:
        console.print(table)
        return
    window = console.width
    console.width = need
    try:
        console.print(table)
    finally:
        console.width = window
