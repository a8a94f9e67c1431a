"""Training output: a rich progress bar (loss, learning rate, images/s) and plain lines."""

from __future__ import annotations

from typing import Any


def make(console: Any) -> Any:
    """A Progress with the training columns, drawing on `console` (stderr)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}  {task.fields[ips]:.0f} img/s"
        ),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,  # logs get one line per epoch instead
    )


def say(console: Any, text: str) -> None:
    """Print one plain line: no rich markup or highlighting, never wrapped (logs stay greppable)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)
