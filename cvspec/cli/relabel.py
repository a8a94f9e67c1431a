"""`cvspec relabel`: a labeller's answers from a Label Studio JSON export, as data.relabel
entries of the spec (printed, or with --write added to the spec file, comments kept)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cvspec.cli.common import load_one
from cvspec.errors import CvspecError, SpecError, UsageError

if TYPE_CHECKING:
    from cvspec.evaluate.labelstudio import Answer
    from cvspec.spec import LoadedSpec

PATTERN = "*?["  # characters data.relabel refuses in a path (they make it a pattern)


def command(
    spec: Annotated[Path, typer.Argument(help="The spec file.", metavar="SPEC")],
    export: Annotated[
        Path, typer.Argument(help="Label Studio's export of the project (JSON).", metavar="EXPORT")
    ],
    write: Annotated[
        bool,
        typer.Option("--write", help="Add the entries to the spec file's data.relabel."),
    ] = False,
) -> None:
    """Read what labellers chose in Label Studio (the project `cvspec review` set up, exported
    as JSON) and give each image whose chosen class is not its current label a `data.relabel`
    entry: printed as YAML, or with --write added to the spec file in place (its comments and
    layout kept). Cancelled (skipped) annotations count for nothing; a task whose annotations
    disagree is named and left out. Unknown classes, images that are not the dataset's and a
    malformed export are errors naming the task, and nothing is written."""
    loaded = load_one(spec, None, None)
    if loaded.spec.task != "classification":
        raise UsageError(
            f"{spec}: data.relabel is for classification; a detector's labels are boxes "
            "(correct its label files, or leave an image out with data.exclude)"
        )
    if not export.is_file():
        raise UsageError(f"export file not found: {export}")
    from cvspec.evaluate.labelstudio import read_export

    answers, problems = read_export(export)
    fixes, agreed, conflicts, unanswered, more = _corrections(loaded, answers)
    problems += more
    if problems:
        raise CvspecError(
            f"{len(problems)} problem(s) in the export; nothing was written:\n  "
            + "\n  ".join(problems)
        )
    for line in conflicts:
        print(f"warning: {line}", file=sys.stderr)
    parts = [f"{len(fixes)} correction(s)", f"{agreed} image(s) keep their label"]
    if unanswered:
        parts.append(f"{unanswered} task(s) without an answer")
    if conflicts:
        parts.append(f"{len(conflicts)} left out: the annotations disagree")
    summary = ", ".join(parts)
    if not fixes:
        print(f"{summary}: nothing to add to data.relabel", file=sys.stderr)
        return
    if write:
        where = write_relabel(loaded, fixes)
        print(f"{summary}: added to data.relabel in {where}", file=sys.stderr)
        return
    from cvspec.evaluate.review import _yaml_key

    print("data:\n  relabel:")
    for path, cls in fixes.items():
        print(f"    {_yaml_key(path)}: {_yaml_key(cls)}")
    print(
        f"{summary}: the data.relabel entries above go in {spec} "
        "(or run again with --write to add them)",
        file=sys.stderr,
    )


def _corrections(
    loaded: LoadedSpec, answers: list[Answer]
) -> tuple[dict[str, str], int, list[str], int, list[str]]:
    """image path -> the class chosen where it is not the current label; how many answers
    agree with the label; the disagreements; tasks without an answer; the problems."""
    from cvspec.data.files import nfc
    from cvspec.data.index import read_layout
    from cvspec.spec.load import display_path as shown

    data_root = (loaded.path.parent / str(loaded.spec.data.path)).resolve()
    layout = read_layout(loaded.spec, data_root)
    classes = list(layout.classes)
    current = {nfc(e.path): e for e in layout.entries if e.label is not None}
    fixes: dict[str, str] = {}
    agreed = unanswered = 0
    conflicts: list[str] = []
    problems: list[str] = []
    for answer in answers:
        where = f"{answer.task}"
        path = answer.path.removeprefix("./")
        image = data_root / path
        if os.path.isabs(path) or os.path.normpath(path).split(os.sep)[0] == "..":
            problems.append(f"{where}: the image is outside the data folder {shown(data_root)}")
            continue
        entry = current.get(nfc(path))
        if entry is None:
            why = (
                "is not one of the dataset's images (data.exclude leaves it out, or its folder "
                "is not a class)"
                if image.is_file()
                else f"no such image under {shown(data_root)}"
            )
            problems.append(f"{where}: {why}")
            continue
        if any(c in path for c in PATTERN):
            problems.append(
                f"{where}: data.relabel cannot name a path with {', '.join(PATTERN)} in it "
                "(it reads as a pattern): rename the file, or move it to its class folder"
            )
            continue
        chosen = set(answer.chosen)
        if not chosen:
            unanswered += 1
            continue
        if len(chosen) > 1:
            said = ", ".join(answer.chosen)
            conflicts.append(f"{where}: the annotations disagree ({said}); left out")
            continue
        (cls,) = chosen
        if nfc(cls) not in {nfc(c) for c in classes}:
            from cvspec.spec.messages import did_you_mean

            hint = did_you_mean(cls, classes) or f"one of: {', '.join(classes)}"
            problems.append(f"{where}: class {cls!r} is not one of the spec's classes ({hint})")
            continue
        assert entry.label is not None
        if nfc(cls) == nfc(classes[entry.label]):
            agreed += 1
            continue
        fixes[nfc(entry.path)] = next(c for c in classes if nfc(c) == nfc(cls))
    return fixes, agreed, conflicts, unanswered, problems


def write_relabel(loaded: LoadedSpec, fixes: dict[str, str]) -> str:
    """Add `fixes` to data.relabel of the spec file itself; the file's name.

    ruamel's round-trip parse finds where `data` and `relabel` are; the entries go in as new
    lines (an existing entry's value is replaced on its line), so every other line of the file,
    comments and indentation included, stays byte for byte: dumping the round-trip tree would
    re-indent a file whose lists are indented differently from its mappings. The result must
    parse to the intended data.relabel and validate before it replaces the file (atomically)."""
    from cvspec.atomic import staged
    from cvspec.spec import load_spec
    from cvspec.spec.load import display_path, load_file, load_text

    path = loaded.path
    own = load_file(path).data.get("data")
    if not (isinstance(own, dict) and "relabel" in own) and ("data", "relabel") in loaded.raw.keys:
        origin = loaded.raw.keys[("data", "relabel")]
        raise UsageError(
            f"data.relabel of {display_path(path)} is set in {origin.describe()}, a file it "
            "extends: add the entries there (run without --write to print them)"
        )
    text = path.read_text(encoding="utf-8")
    before = dict((own or {}).get("relabel") or {}) if isinstance(own, dict) else {}
    edited = _edit(text, fixes, display_path(path))
    try:
        after = load_text(edited, display_path(path)).data.get("data", {}).get("relabel") or {}
    except SpecError:
        after = None
    if after != _merged(before, fixes):  # a layout the edit does not know: say so, write nothing
        raise UsageError(
            f"cannot add the entries to {display_path(path)} without rewriting its layout: "
            "add them by hand (run without --write to print them)"
        )
    with staged(path) as tmp:
        tmp.write_text(edited, encoding="utf-8")
        load_spec(tmp)  # a spec the edit broke stays as it was (staged removes the temporary)
    return display_path(path)


def _merged(before: dict[str, Any], fixes: dict[str, str]) -> dict[str, Any]:
    """data.relabel as the file should give it: `before` with each fix set, an existing key
    (the same path, NFC or with ./) keeping its spelling."""
    from cvspec.data.files import nfc

    out = dict(before)
    keys = {nfc(str(k).removeprefix("./")): k for k in before}
    for image, cls in fixes.items():
        out[keys.get(nfc(image), image)] = cls
    return out


def _edit(text: str, fixes: dict[str, str], file: str) -> str:
    """`text` with `fixes` in data.relabel, as inserted or replaced lines."""
    import re

    from ruamel.yaml import YAML

    from cvspec.data.files import nfc
    from cvspec.evaluate.review import _yaml_key

    tree = YAML(typ="rt").load(text)
    lines = text.splitlines(keepends=True)
    eol = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += eol
    step = _indent(tree) or 2

    def entries(indent: int, items: dict[str, str]) -> list[str]:
        return [f"{' ' * indent}{_yaml_key(k)}: {_yaml_key(v)}{eol}" for k, v in items.items()]

    data = tree.get("data") if hasattr(tree, "get") else None
    if data is None or not hasattr(data, "lc"):  # data comes from a file this one extends
        block = [f"data:{eol}", f"{' ' * step}relabel:{eol}", *entries(2 * step, fixes)]
        return "".join(lines + block)
    flow = data.fa.flow_style()
    relabel = data.get("relabel")
    if "relabel" in data and not relabel:  # `relabel:` or `relabel: {}`: the entries below it
        if flow:
            raise UsageError(
                f"{file}: data is a flow mapping ({{...}}) with an empty relabel: add the "
                "entries by hand (run without --write to print them)"
            )
        row, col = data.lc.key("relabel")
        comment = re.search(r"\s+#.*$", lines[row].rstrip("\r\n"))
        lines[row] = lines[row][:col] + "relabel:" + (comment.group(0) if comment else "") + eol
        lines[row + 1 : row + 1] = entries(col + step, fixes)
        return "".join(lines)
    if "relabel" not in data:
        if flow:
            return _flow_insert(lines, data, f"relabel: {_flow(fixes)}", file)
        row, col = _anchor(data, lines)
        lines[row + 1 : row + 1] = [f"{' ' * col}relabel:{eol}", *entries(col + step, fixes)]
        return "".join(lines)
    if relabel.fa.flow_style():
        new = {k: v for k, v in fixes.items() if nfc(k) not in _keys(relabel)}
        if len(new) != len(fixes):
            raise UsageError(
                f"{file}: data.relabel is a flow mapping ({{...}}) that already names some of "
                "these images: edit it by hand (run without --write to print the entries)"
            )
        return _flow_insert(lines, relabel, _flow(new)[1:-1], file)
    keys = _keys(relabel)
    first = next(iter(relabel))
    col = relabel.lc.key(first)[1]
    new = {}
    for image, cls in fixes.items():
        key = keys.get(nfc(image))
        if key is None:
            new[image] = cls
            continue
        row, vcol = relabel.lc.value(key)
        line = lines[row]
        comment = re.search(r"\s+#.*$", line[vcol:].rstrip("\r\n"))
        tail = comment.group(0) if comment else ""
        lines[row] = line[:vcol] + _yaml_key(cls) + tail + eol
    last = list(relabel)[-1]
    row = relabel.lc.value(last)[0]
    lines[row + 1 : row + 1] = entries(col, new)
    return "".join(lines)


def _keys(mapping: Any) -> dict[str, Any]:
    from cvspec.data.files import nfc

    return {nfc(str(k).removeprefix("./")): k for k in mapping}


def _flow(items: dict[str, str]) -> str:
    from cvspec.evaluate.review import _yaml_key

    return "{" + ", ".join(f"{_yaml_key(k)}: {_yaml_key(v)}" for k, v in items.items()) + "}"


def _flow_insert(lines: list[str], node: Any, text: str, file: str) -> str:
    """`text` added before the closing brace of the one-line flow mapping `node`."""
    row, col = node.lc.line, node.lc.col
    line = lines[row]
    end = _closing(line, col)
    if end is None:
        raise UsageError(
            f"{file}:{row + 1}: a flow mapping ({{...}}) over several lines: add the entries "
            "by hand (run without --write to print them)"
        )
    inner = line[col + 1 : end].strip()
    lines[row] = line[:end].rstrip() + (", " if inner else "") + text + line[end:]
    return "".join(lines)


def _closing(line: str, start: int) -> int | None:
    """The index of the brace closing the one at `start`, skipping quoted text; None when the
    mapping goes on past the line."""
    depth, quote, i = 0, "", start
    while i < len(line):
        c = line[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i
        elif c == "#" and line[i - 1] in " \t":
            return None
        i += 1
    return None


def _anchor(data: Any, text: list[str]) -> tuple[int, int]:
    """The line after which a new data.relabel goes (data.path's, the required one-line key;
    else before data's first key) and the column of data's keys."""
    first = data.lc.key(next(iter(data)))
    if "path" in data and not hasattr(data["path"], "lc"):
        row, col = data.lc.value("path")
        if text[row][col : col + 1] not in ("|", ">"):  # not a block scalar's first line
            return data.lc.key("path")[0], first[1]
    return first[0] - 1, first[1]


def _indent(tree: Any) -> int:
    """The file's mapping indentation: the column of the first nested key found."""
    for key in tree:
        value = tree[key]
        if hasattr(value, "lc") and hasattr(value, "keys") and value and not value.fa.flow_style():
            return int(value.lc.key(next(iter(value)))[1])
    return 2
