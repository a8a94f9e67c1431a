"""The build manifest `generated/<project>/cvspec.lock`: what cvspec wrote, with digests."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from cvspec.errors import CvspecError
from cvspec.generate.api import LOCK_NAME, path_problem
from cvspec.generate.render import RenderedFile, sha256

SCHEMA_VERSION = 1
__all__ = ["LOCK_NAME", "Manifest", "make_manifest", "parse_manifest", "read_manifest"]


class Manifest(NamedTuple):
    """The record of one build: inputs, options and every written file with its digest."""

    project: str
    spec: str
    spec_sha256: str
    inputs: Mapping[str, str]  # every spec file read (extends included) -> sha256
    profile: str | None
    sets: tuple[str, ...]
    cvspec: str
    files: Mapping[str, tuple[str, str]]  # path from repo root -> (sha256, generator)
    templates: str | None = None  # --templates DIR of the build, from the repository root
    replaced: Mapping[str, str] = {}  # generator another one `replaces` -> its replacement
    # A lock with git merge-conflict markers: the other side's digest of each file that
    # differs, so a file as either branch built it counts as cvspec's, not as edited by hand.
    merged: Mapping[str, str] = {}

    @property
    def options(self) -> dict[str, Any]:
        """The build options `check` repeats: profile, --set, and --templates when given."""
        options: dict[str, Any] = {"profile": self.profile, "set": list(self.sets)}
        if self.templates is not None:
            options["templates"] = self.templates
        return options

    def to_bytes(self) -> bytes:
        """Deterministic JSON bytes (sorted keys, LF, trailing newline)."""
        body = {
            "schema": SCHEMA_VERSION,
            "cvspec": self.cvspec,
            "project": self.project,
            "spec": self.spec,
            "spec_sha256": self.spec_sha256,
            "inputs": dict(sorted(self.inputs.items())),
            "options": self.options,
            "files": {p: {"sha256": s, "generator": g} for p, (s, g) in sorted(self.files.items())},
        }
        if self.replaced:  # only then: the locks of builds without replacements stay as they were
            body["replaced"] = dict(sorted(self.replaced.items()))
        return (json.dumps(body, indent=2, sort_keys=True) + "\n").encode("utf-8")

    def as_rendered(self, out_dir: str) -> RenderedFile:
        """The manifest as one more output file, so check and write treat it like the rest."""
        data = self.to_bytes()
        return RenderedFile(f"{out_dir}/{LOCK_NAME}", data, sha256(data), "cvspec")


def make_manifest(
    project: str,
    spec: str,
    inputs: Mapping[str, str],
    profile: str | None,
    sets: Sequence[str],
    version: str,
    files: Sequence[RenderedFile],
    templates: str | None = None,
    replaced: Mapping[str, str] | None = None,
) -> Manifest:
    """Build the manifest for a rendered project."""
    return Manifest(
        project,
        spec,
        inputs.get(spec, ""),
        inputs,
        profile,
        tuple(sets),
        version,
        {f.path: (f.sha256, f.generator) for f in files},
        templates,
        dict(replaced or {}),
    )


def read_manifest(path: Path) -> Manifest | None:
    """Read a manifest; None when there is none; a corrupt one is an error naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CvspecError(
            f"{path}: the build manifest is unreadable ({exc}); restore it from git "
            "or delete it and rebuild with --force"
        ) from None
    return parse_manifest(text, str(path))


# git's conflict markers: <<<<<<< ours, ||||||| base (diff3 style), =======, >>>>>>> theirs
CONFLICT = re.compile(r"^<{7}(?: .*)?$.*?^>{7}(?: .*)?$", re.MULTILINE | re.DOTALL)


def has_conflict(text: str | bytes) -> bool:
    """Whether `text` holds an unresolved git merge conflict."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return CONFLICT.search(text) is not None


def conflict_side(text: str, theirs: bool) -> str:
    """`text` with each conflict resolved to one side: ours (HEAD's) or theirs."""
    out, side = [], None
    for line in text.splitlines(keepends=True):
        if line.startswith("<<<<<<<"):
            side = "ours"
        elif line.startswith("|||||||") and side:
            side = "base"
        elif line.startswith("=======") and side:
            side = "theirs"
        elif line.startswith(">>>>>>>") and side:
            side = None
        elif side is None or side == ("theirs" if theirs else "ours"):
            out.append(line)
    return "".join(out)


def parse_manifest(text: str | bytes, source: str) -> Manifest:
    """A manifest from its JSON text; a corrupt one is an error naming `source`.

    A lock a git merge left conflicted is read as the merged branch's (ours) with the other
    side's files and digests beside it (`merged`): the next build rewrites it whole.
    """
    if has_conflict(text):
        body = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        ours, theirs = (_parse(conflict_side(body, side), source) for side in (False, True))
        files = {**theirs.files, **ours.files}
        other = {p: s for p, (s, _) in theirs.files.items() if files[p][0] != s}
        return ours._replace(files=files, merged=other)
    return _parse(text, source)


def _parse(text: str | bytes, source: str) -> Manifest:
    try:
        body: Any = json.loads(text)
    except ValueError as exc:
        raise CvspecError(
            f"{source}: the build manifest is unreadable ({exc}); restore it from git "
            "or delete it and rebuild with --force"
        ) from None
    try:
        options = body.get("options") or {}
        manifest = Manifest(
            project=str(body["project"]),
            spec=str(body["spec"]),
            spec_sha256=str(body["spec_sha256"]),
            inputs=dict(body.get("inputs", {})),
            profile=options.get("profile"),
            sets=tuple(options.get("set", ())),
            cvspec=str(body["cvspec"]),
            files={p: (str(v["sha256"]), str(v["generator"])) for p, v in body["files"].items()},
            templates=options.get("templates"),
            replaced={str(k): str(v) for k, v in body.get("replaced", {}).items()},
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise CvspecError(
            f"{source}: the build manifest is malformed (missing {exc}); restore it "
            "from git or delete it and rebuild with --force"
        ) from None
    for path in manifest.files:  # a build removes the files a lock names: only its own
        if not owns(manifest.project, path):
            raise CvspecError(
                f"{source}: the build manifest names {json.dumps(path)}, a file no build of "
                f"project '{manifest.project}' writes (only generated/{manifest.project}/ and "
                "files at the repository root outside .git/, generated/ and specs/); restore it "
                "from git or delete it and rebuild with --force"
            )
    return manifest


def owns(project: str, path: str) -> bool:
    """Whether a lock of `project` may name `path`: a file in its own generated/<project>/, or
    one at the repository root outside .git/, generated/ and specs/ (where an Artifact may
    write), so a crafted lock cannot make a build remove a file anywhere else."""
    own = f"generated/{project}/"
    if path == own + LOCK_NAME:
        return True
    if path.startswith(own):
        return path_problem(path.removeprefix(own), at_root=False) is None
    return path_problem(path, at_root=True) is None
