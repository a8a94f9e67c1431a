"""`cvspec generators`: list the installed generators and where each comes from."""

from __future__ import annotations

from cvspec.generate.registry import broken, replacements, scan_generators


def command() -> None:
    """List every generator (built-in or plugin) with its version and source.

    A generator that another one replaces (its 'replaces') is listed with the name of its
    replacement: it does not run. A plugin that fails to load is reported after the list, and
    the command exits 2.
    """
    found, problems = scan_generators()
    replaced = replacements(found)
    rows = [
        (
            r.generator.name,
            r.generator.version,
            "built-in" if r.builtin else "plugin",
            f"{r.module} ({r.distribution}){_note(r.generator.name, r.replaces, replaced)}",
        )
        for r in found
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)] if rows else [0, 0, 0]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    if problems:
        raise broken(problems)


def _note(name: str, replaces: tuple[str, ...], replaced: dict[str, str]) -> str:
    """`  replaced by 'x': does not run`, `  replaces 'a', 'b'`, or nothing."""
    notes = []
    if name in replaced:
        notes.append(f"replaced by '{replaced[name]}': does not run")
    if replaces:
        notes.append("replaces " + ", ".join(f"'{n}'" for n in replaces))
    return "".join(f"  {n}" for n in notes)
