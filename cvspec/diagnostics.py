"""Format diagnostics as `path:line:col: error[CODE]: message`, a caret line and a hint."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from cvspec.errors import Diagnostic


def format_diagnostic(diag: Diagnostic, sources: Mapping[str, str] | None = None) -> str:
    """Render one diagnostic the way compilers do, with the source line when it is known."""
    origin = diag.origin
    lines: list[str] = []
    head = f"{diag.severity}[{diag.code}]: {diag.message}"
    if origin is None:
        lines.append(head)
    elif origin.kind == "set":
        lines.append(f"{origin.detail}: {head}")
    else:
        where = f"{origin.file}:{origin.line}:{origin.col}" if origin.line else f"{origin.file}"
        label = f" (in profile '{origin.detail}')" if origin.kind == "profile" else ""
        lines.append(f"{where}: {head}{label}")
        source = _source_line(origin.file, origin.line, sources)
        if source is not None:
            number = str(origin.line)
            pad = " " * len(number)
            caret_col = max(origin.col - 1, 0)
            width = _quoted_width(source, caret_col) or max(diag.span, 1)
            lines.append(f"{pad} |")
            lines.append(f"{number} | {source}")
            lines.append(f"{pad} | {' ' * caret_col}{'^' * width}")
    if diag.help:
        lines.append(f"help: {diag.help}")
    return "\n".join(lines)


def format_all(diags: Iterable[Diagnostic], sources: Mapping[str, str] | None = None) -> str:
    """Render many diagnostics separated by blank lines."""
    return "\n\n".join(format_diagnostic(d, sources) for d in diags)


def _source_line(file: str | None, line: int, sources: Mapping[str, str] | None) -> str | None:
    if not file or line < 1:
        return None
    text = (sources or {}).get(file)
    if text is None:
        try:
            text = Path(file).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError):
            return None
    all_lines = text.split("\n")  # YAML breaks lines on LF (CRLF) only
    return all_lines[line - 1].rstrip("\r\n ") if line <= len(all_lines) else None


def _quoted_width(source: str, col: int) -> int:
    """The width of a quoted scalar starting at `col`, quotes included; 0 when not quoted."""
    if col >= len(source) or source[col] not in "'\"":
        return 0
    end = source.find(source[col], col + 1)
    return end - col + 1 if end > col else 0
