"""The render cache: what a spec rendered to, replayed while nothing it was made from changed.

A render is a pure function of the spec files it read (extends included), the composition
options, the template folders and the code that ran (cvspec, generator plugins, the libraries
in site-packages). An entry records each of those as a dependency with its signature; a lookup
replays the entry only when every signature still matches, so a hit is byte-identical to a
fresh render. Spec files are compared by content (sha256), code and template folders by the
size and mtime of every file in them (as make and ninja do), installed distributions by the
mtime of each sys.path folder (an install or upgrade adds and removes dist-info folders there).

Only the CLI uses it (`build`, `check`); the library API always renders. `CVSPEC_NO_CACHE=1`
turns it off, `CVSPEC_CACHE_DIR` moves it (default: `$XDG_CACHE_HOME/cvspec/renders`).
Anything wrong with an entry (unreadable, corrupt, a digest that does not match) is a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from cvspec import __version__
from cvspec.atomic import write_bytes
from cvspec.generate.render import RenderedFile, sha256

FORMAT = 2
MAX_ENTRIES = 1024  # past this, the least recently used tenth is removed
SUFFIX = ".json.z"  # JSON, zlib-compressed: the examples render ~70 KB of text, ~12 KB here
_PACKAGE = Path(__file__).resolve().parent.parent  # cvspec/


class Dep(NamedTuple):
    """Something a render read: a spec file (by content) or a folder of files (by stat)."""

    kind: str  # "text": sha256 of a file's UTF-8 text | "tree": signature of a folder or file
    path: str  # absolute
    sig: str


class Rendered(NamedTuple):
    """One spec's render as the cache keeps it."""

    project: str
    spec_file: str
    out_dir: str
    files: list[RenderedFile]
    warnings: tuple[str, ...] = ()  # what the render warned of (replayed with it)


def text_dep(path: str | Path, text: str) -> Dep:
    """A spec file read as `text` (the text the render used, not what the disk holds now)."""
    return Dep("text", str(Path(path).resolve()), sha256(text.encode("utf-8")))


def tree_dep(path: str | Path) -> Dep:
    """A folder (or one file) of code or templates, signed by each file's path, size, mtime."""
    path = Path(path).resolve()
    return Dep("tree", str(path), tree_signature(path))


def code_deps() -> list[Dep]:
    """The code a render runs: cvspec itself and the package of every generator plugin.

    Taken before the generators load, so an edit made during a build is never cached as seen.
    """
    roots = {_PACKAGE}
    from importlib.metadata import entry_points

    from cvspec.generate.registry import GROUP

    for ep in entry_points(group=GROUP):
        roots.update(_code_roots(ep.value.split(":")[0]))
    return [tree_dep(r) for r in sorted(roots)]


def _code_roots(module: str) -> list[Path]:
    """The files of the package that holds `module`: a regular package's folder, a top-level
    module's file. A namespace package (no __init__.py: `acme.cvspec_notes`) has no file of
    its own and may be spread over folders that hold other distributions' code too, so the
    name is followed down to its first regular package or module. Nothing runs: a namespace
    package has no code, and the search stops before importing a regular one."""
    from importlib.util import find_spec

    parts = module.split(".")
    for depth in range(1, len(parts) + 1):
        try:
            spec = find_spec(".".join(parts[:depth]))
        except (ImportError, ValueError):
            return []  # loading it fails too, with a clear error; nothing is cached then
        if spec is None or spec.origin in ("built-in", "frozen"):
            return []
        if spec.origin is not None:
            origin = Path(spec.origin).resolve()
            return [origin.parent if spec.submodule_search_locations else origin]
        if depth == len(parts):  # the entry point names a namespace package itself
            return [Path(p).resolve() for p in spec.submodule_search_locations or ()]
    return []


def tree_signature(path: Path) -> str:
    """sha256 over (relative path, size, mtime) of every file under path; '' when missing."""
    lines: list[str] = []
    try:
        if path.is_file():
            st = path.stat()
            return sha256(f"{st.st_size} {st.st_mtime_ns}".encode())
        _walk(path, "", lines)
    except OSError:
        return ""
    lines.sort()
    return sha256("\n".join(lines).encode("utf-8", "surrogateescape"))


def _walk(folder: Path | str, prefix: str, lines: list[str]) -> None:
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name == "__pycache__":
                continue
            if entry.is_dir(follow_symlinks=True):
                _walk(entry.path, f"{prefix}{entry.name}/", lines)
            else:
                st = entry.stat()
                lines.append(f"{prefix}{entry.name}\0{st.st_size}\0{st.st_mtime_ns}")


def current_sig(dep: Dep) -> str | None:
    """The signature `dep` has now; None when it cannot be read."""
    if dep.kind == "tree":
        return tree_signature(Path(dep.path))
    try:
        return sha256(Path(dep.path).read_text(encoding="utf-8-sig").encode("utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


class RenderCache:
    """Entries under one folder, one per (spec, options, working folder, toolchain)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._pruned = False  # once per process is enough
        self._trees: dict[str, str | None] = {}  # folder -> signature, for lookups

    @classmethod
    def default(cls) -> RenderCache | None:
        """The user's cache, or None when `CVSPEC_NO_CACHE` is set."""
        if os.environ.get("CVSPEC_NO_CACHE", "") not in ("", "0"):
            return None
        folder = os.environ.get("CVSPEC_CACHE_DIR")
        if not folder:
            base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
                os.path.expanduser("~"), ".cache"
            )
            folder = os.path.join(base, "cvspec", "renders")
        return cls(Path(folder))

    def lookup(self, root: Path, spec: Path, options: Sequence[Any]) -> Rendered | None:
        """The cached render of `spec` under `options`, or None unless every dependency holds."""
        path = self._entry_path(root, spec, options)
        try:
            body: Any = json.loads(zlib.decompress(path.read_bytes()))
            if body.get("format") != FORMAT:
                return None
            deps = [Dep(*d) for d in body["deps"]]
            if any(self._seen_sig(d) != d.sig or not d.sig for d in deps):
                return None
            files = []
            for name, generator, digest, text in body["files"]:
                data = text.encode("utf-8")
                if sha256(data) != digest:
                    return None  # a damaged entry: render instead
                files.append(RenderedFile(name, data, digest, generator))
            warnings = tuple(str(w) for w in body.get("warnings", ()))
            rendered = Rendered(
                body["project"], body["spec_file"], body["out_dir"], files, warnings
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError, zlib.error):
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: pruning keeps it
        return rendered

    def _seen_sig(self, dep: Dep) -> str | None:
        """current_sig, with folders signed once per command: cvspec's own code is a
        dependency of every entry, and a 200-spec check should walk it once, not 200 times."""
        if dep.kind != "tree":
            return current_sig(dep)
        if dep.path not in self._trees:
            self._trees[dep.path] = current_sig(dep)
        return self._trees[dep.path]

    def store(
        self,
        root: Path,
        spec: Path,
        options: Sequence[Any],
        rendered: Rendered,
        deps: Iterable[Dep],
    ) -> None:
        """Record a render; a dependency that changed while rendering means nothing is kept."""
        deps = list(deps)
        if any(not d.sig or current_sig(d) != d.sig for d in deps):
            return
        try:
            texts = [f.content.decode("utf-8") for f in rendered.files]
        except UnicodeDecodeError:
            return  # not text: not worth a cache format of its own
        body = {
            "format": FORMAT,
            "project": rendered.project,
            "spec_file": rendered.spec_file,
            "out_dir": rendered.out_dir,
            "deps": [list(d) for d in deps],
            "warnings": list(rendered.warnings),
            "files": [
                [f.path, f.generator, f.sha256, text]
                for f, text in zip(rendered.files, texts, strict=True)
            ],
        }
        try:
            payload = zlib.compress(json.dumps(body, ensure_ascii=False).encode("utf-8"), 1)
        except UnicodeEncodeError:
            return  # a path that is not valid UTF-8 (undecodable bytes): render it each time
        path = self._entry_path(root, spec, options)
        try:
            write_bytes(path, payload)  # readers see the old entry or the new, never half
        except OSError:
            return  # a read-only or full disk: the build itself is unaffected
        if not self._pruned:
            self._pruned = True
            self._prune()

    def _entry_path(self, root: Path, spec: Path, options: Sequence[Any]) -> Path:
        key = json.dumps(
            [
                FORMAT,
                __version__,
                sys.version,
                sys.executable,
                _import_path(),
                str(root.resolve()),
                os.getcwd(),
                str(spec.resolve()),
                [str(Path(o).resolve()) if isinstance(o, Path) else o for o in options],
            ],
            default=str,
        )
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
        return self.folder / digest[:2] / f"{digest[2:]}{SUFFIX}"

    def _prune(self) -> None:
        try:
            entries = [(p.stat().st_mtime_ns, p) for p in self.folder.glob(f"*/*{SUFFIX}")]
        except OSError:
            return
        if len(entries) <= MAX_ENTRIES:
            return
        entries.sort()
        for _, old in entries[: len(entries) - MAX_ENTRIES * 9 // 10]:
            old.unlink(missing_ok=True)


def _import_path() -> list[tuple[str, int]]:
    """Each sys.path folder with its mtime: installing, upgrading or removing a distribution
    (a plugin too) adds or removes a dist-info folder there. The working folder is left out:
    it is part of the key already, and a build changes it."""
    found = []
    cwd = os.getcwd()
    for entry in sys.path:
        if not entry or os.path.abspath(entry) == cwd:
            continue
        try:
            found.append((entry, os.stat(entry).st_mtime_ns))
        except OSError:
            found.append((entry, -1))
    return found
