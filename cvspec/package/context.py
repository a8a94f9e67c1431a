"""The build context the package stage sends: the image's allow-listed files, as a tar."""

from __future__ import annotations

import fnmatch
import io
import os
import tarfile
from pathlib import Path
from typing import IO

from cvspec.package.images import CONTEXT_EXCLUDES, PIP_CACHE_MOUNT, Image

_EXCLUDED_NAMES = tuple(p.removeprefix("**/") for p in CONTEXT_EXCLUDES)


def excluded(rel: str) -> bool:
    """True when a path matches CONTEXT_EXCLUDES (each pattern is `**/<name glob>`)."""
    return any(fnmatch.fnmatchcase(part, pat) for part in rel.split("/") for pat in _EXCLUDED_NAMES)


def context_files(root: Path, image: Image) -> list[str]:
    """Every file the context holds, relative to root, sorted; a missing path is skipped."""
    found: set[str] = set()
    for entry in image.context:
        path = root / entry
        if path.is_file() or path.is_symlink():
            found.add(entry)
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            rel_dir = Path(dirpath).relative_to(root).as_posix()
            dirnames[:] = sorted(d for d in dirnames if not excluded(f"{rel_dir}/{d}"))
            found.update(f"{rel_dir}/{name}" for name in filenames)
    return sorted(f for f in found if not excluded(f))


def classic_dockerfile(text: str) -> str:
    """The Dockerfile as the classic builder (the Engine API's /build) accepts it.

    The Docker SDK speaks only the classic builder, which rejects BuildKit's cache mount;
    without it pip caches inside the deps stage, which the final image never copies.
    """
    return text.replace(f"{PIP_CACHE_MOUNT} ", "")


def write_context(root: Path, image: Image, out: IO[bytes]) -> int:
    """Write the context of `image` as a tar to `out`; return how many files it holds."""
    files = context_files(root, image)
    with tarfile.open(fileobj=out, mode="w") as tar:
        for rel in files:
            if rel == image.dockerfile:
                continue
            tar.add(root / rel, arcname=rel, recursive=False, filter=_normalise)
        dockerfile = classic_dockerfile((root / image.dockerfile).read_text(encoding="utf-8"))
        data = dockerfile.encode("utf-8")
        info = tarfile.TarInfo(image.dockerfile)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    out.seek(0)
    return len(files) + (image.dockerfile not in files)


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
