"""Stage tables: whole in a log, whatever its 80-column default."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from cvspec.tables import print_table

HEADS = ["point", "train.optimizer.lr", "val_accuracy", "val_loss", "train_loss", "run"]
ROW = ["point-000 (best)", "0.001", "0.9876", "0.0512", "0.0321", "9e77c6ccefe5"]


def _table() -> Table:
    table = Table(title="sweep")
    for head in HEADS:
        table.add_column(head)
    table.add_row(*ROW)
    return table


def test_a_log_gets_the_whole_table_and_the_console_keeps_its_width() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80)
    assert not console.is_terminal
    print_table(console, _table())
    text = out.getvalue()
    assert "…" not in text
    row = next(line for line in text.splitlines() if "point-000" in line)
    assert [cell.strip() for cell in row.strip("│").split("│")] == ROW
    assert all(head in text for head in HEADS)
    assert console.width == 80


def test_a_terminal_folds_the_table_to_its_window() -> None:
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    print_table(console, _table())
    assert max(len(line) for line in out.getvalue().splitlines()) <= 80
