"""Render planned artifacts to bytes with one sandboxed Jinja environment; pure, no writes."""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from cvspec.errors import CvspecError, Diagnostic, Origin
from cvspec.generate.api import COMMENT_PREFIX, Artifact, BuildContext

BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# First lines that must stay first: the header goes right after them.
_KEEP_FIRST = ("#!", "# syntax=", "# yaml-language-server:", "# escape=", "# @package")


class RenderedFile(NamedTuple):
    """One output file: its path from the repository root, bytes, digest and generator."""

    path: str
    content: bytes
    sha256: str
    generator: str


def sha256(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def to_json(value: Any, indent: int | None = None) -> str:
    """Deterministic JSON: sorted keys, ASCII only (so any reader parses it the same)."""
    return json.dumps(value, sort_keys=True, indent=indent, ensure_ascii=True)


def to_yaml_flow(value: Any) -> str:
    """A value as one line of YAML that no content can break out of (JSON is YAML 1.2)."""
    return json.dumps(value, ensure_ascii=True)


def dump_yaml(data: Any) -> str:
    """Block-style YAML for structured artifacts, fast (libyaml) and safe for YAML 1.1 readers.

    Key order is the generator's (deterministic); non-ASCII and U+2028-style separators come
    out escaped; strings YAML 1.1 would read as booleans (`on`, `yes`) come out quoted;
    multi-line strings without surprises (scripts) are literal blocks, for reviewers.
    """
    import yaml

    return str(
        yaml.dump(
            data,
            Dumper=_dumper(),
            sort_keys=False,
            default_flow_style=False,
            allow_unicode=False,
            width=4096,
            indent=2,
        )
    )


_DUMPER: list[Any] = []


def _dumper() -> Any:
    if _DUMPER:
        return _DUMPER[0]
    import yaml

    base = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class Dumper(base):  # type: ignore[misc,valid-type]
        """libyaml's safe dumper, writing scripts as literal blocks and never an alias."""

        def ignore_aliases(self, data: Any) -> bool:  # a repeated value is written out again
            return True

    def represent_str(dumper: Any, value: str) -> Any:
        style = "|" if _literal_ok(value) else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, represent_str)
    _DUMPER.append(Dumper)
    return Dumper


def _literal_ok(value: str) -> bool:
    """A multi-line printable-ASCII string with no trailing spaces can be a `|` block."""
    if "\n" not in value.rstrip("\n") or value.startswith((" ", "\n")):
        return False
    if value.endswith("\n\n"):
        return False
    lines = value.split("\n")
    return all(line == line.rstrip() and all(32 <= ord(c) < 127 for c in line) for line in lines)


def make_environment(template_dirs: Sequence[Path]) -> Any:
    """The one Jinja environment: sandboxed, strict about undefined names, with safe filters.

    One per set of template folders per process, so templates compile once for many specs.
    """
    key = tuple(str(d) for d in template_dirs)
    if key not in _ENVIRONMENTS:
        _ENVIRONMENTS[key] = _new_environment(key)
    return _ENVIRONMENTS[key]


_ENVIRONMENTS: dict[tuple[str, ...], Any] = {}


def _new_environment(template_dirs: tuple[str, ...]) -> Any:
    from jinja2 import FileSystemLoader, StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(
        loader=FileSystemLoader(list(template_dirs)),
        bytecode_cache=_bytecode_cache(),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["yaml"] = to_yaml_flow
    env.filters["json"] = to_json
    env.filters["shquote"] = lambda v: shlex.quote(str(v))
    return env


def _bytecode_cache() -> Any:
    """Compiled templates kept in the user's cache folder (checked against each source's hash)."""
    import os

    from jinja2 import FileSystemBytecodeCache

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "cvspec", "jinja")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None  # a read-only home: compile every time
    return FileSystemBytecodeCache(folder)


def header_line(ctx: BuildContext) -> str:
    """The one-line note every generated file with comments starts with."""
    spec, options = ctx.spec_file, ctx.options
    if not all(32 <= ord(c) < 127 for c in spec):  # a file name can hold a newline: escape it
        spec = json.dumps(spec)
    if not options:
        return f"generated by cvspec from {spec}; edit the spec, then run cvspec build"
    if not all(32 <= ord(c) < 127 for c in options):
        options = json.dumps(options)
    return f"generated by cvspec from {spec} with {options}; edit the spec, then run cvspec build"


def render_artifacts(
    artifacts: Iterable[Artifact], ctx: BuildContext, template_dirs: Sequence[Path]
) -> list[RenderedFile]:
    """Render every artifact, sorted by output path; two artifacts for one path is an error."""
    env = None
    out: dict[str, RenderedFile] = {}
    for art in artifacts:
        if art.template is not None and env is None:
            env = make_environment(template_dirs)
        text = _render_one(art, env)
        text = _with_header(text, art, ctx)
        path = art.path if art.at_root else f"{ctx.out_dir}/{art.path}"
        if path in out:
            first = out[path].generator
            raise CvspecError(
                f"generators '{first}' and '{art.generator}' both make {path}; a generator "
                f"that takes over another's files says so: replaces = ('{first}',) in "
                f"'{art.generator}' (or the other way round)"
            )
        data = text.encode("utf-8")
        out[path] = RenderedFile(path, data, sha256(data), art.generator)
    for path, file in out.items():  # one path cannot be a file and a folder
        parts = path.split("/")
        for parent in ("/".join(parts[:n]) for n in range(1, len(parts))):
            if parent in out:
                raise CvspecError(
                    f"generator '{out[parent].generator}' makes the file {parent}, but "
                    f"generator '{file.generator}' needs a folder there for {path}"
                )
    return [out[p] for p in sorted(out)]


def _render_one(art: Artifact, env: Any) -> str:
    if art.template is None:
        try:
            if art.format == "json":
                return to_json(art.data, indent=2) + "\n"
            if art.format == "yaml" and not isinstance(art.data, str):
                return dump_yaml(art.data)
        except Exception as exc:  # a value JSON or YAML cannot hold: the generator's mistake
            raise CvspecError(
                f"generator '{art.generator}': cannot write {art.path} as {art.format}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        if not isinstance(art.data, str):  # bytes or a dict would be written as their repr
            raise CvspecError(
                f"generator '{art.generator}': cannot write {art.path} as {art.format}: data "
                f"must be text (str), not {type(art.data).__name__} (only yaml and json dump "
                "structured data)"
            )
        return art.data
    from jinja2 import TemplateNotFound, TemplateSyntaxError

    try:
        template = env.get_template(art.template)
        return str(template.render(**art.context))
    except TemplateNotFound as exc:
        folders = ", ".join(shown(f) for f in getattr(env.loader, "searchpath", ()))
        missing = f"template '{exc.name}' not found (searched {folders})"
        if exc.name == art.template:
            raise CvspecError(f"generator '{art.generator}': {missing}") from None
        file, line = _template_frame(exc, env, art.template)  # an include, import or extends
        raise CvspecError(
            f"template {art.template} (generator '{art.generator}') failed",
            [Diagnostic("template", missing, Origin("file", file, line, 1))],
        ) from None
    except TemplateSyntaxError as exc:
        where = Origin("file", shown(exc.filename or exc.name or art.template), exc.lineno or 0, 1)
        raise CvspecError(
            f"template {art.template} is broken",
            [Diagnostic("template", exc.message or "syntax error", where)],
        ) from None
    except Exception as exc:  # undefined names, sandbox refusals, 1/0, bad bytes: all the author's
        file, line = _template_frame(exc, env, art.template)
        raise CvspecError(
            f"template {art.template} (generator '{art.generator}') failed",
            [Diagnostic("template", f"{type(exc).__name__}: {exc}", Origin("file", file, line, 1))],
        ) from None


def _template_frame(exc: BaseException, env: Any, name: str) -> tuple[str, int]:
    """The template file and line an error was raised at (an included one, if so).

    Jinja maps the frames of rendered code back to template files and lines; before any code
    ran (the file could not be read), the file is the one the loader picked for `name`.
    """
    import traceback

    folders = [str(Path(d)) for d in getattr(env.loader, "searchpath", ())]
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if any(frame.filename.startswith(f + "/") for f in folders):
            return shown(frame.filename), frame.lineno or 0
    for folder in folders:
        if (Path(folder) / name).is_file():
            return shown(str(Path(folder) / name)), 0
    return name, 0


def shown(path: str | Path) -> str:
    """A path as messages show it: from the working folder when it lies below it."""
    try:
        return Path(path).relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


def _with_header(text: str, art: Artifact, ctx: BuildContext) -> str:
    text = text.replace("\r\n", "\n")
    if text and not text.endswith("\n"):
        text += "\n"
    comment = COMMENT_PREFIX.get(art.format)
    if not art.header or comment is None:
        return text
    line = f"{comment[0]}{header_line(ctx)}{comment[1]}\n"
    first, sep, rest = text.partition("\n")
    if first.startswith(_KEEP_FIRST):
        return f"{first}{sep}{line}{rest}"
    return line + text
