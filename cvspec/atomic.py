"""Write files so readers see the old file or the new one, never half of one.

Every writer gets its own temporary name in the target's folder (so the final rename stays on
one file system), and concurrent writers of the same file, such as parallel sweep points setting
current.json, never trip over each other's temporaries: the last rename wins.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

SUFFIX = ".tmp"  # temporaries are ".<name>.<random>.tmp": clean_temporaries() finds them


@contextlib.contextmanager
def staged(path: Path, *, durable: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary path beside `path`; on success rename it over `path`.

    For writers that want a file name (PIL, torch, onnx). If the body raises, the temporary
    is removed and `path` is left as it was. `durable` also fsyncs the file and its folder.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _mode_for(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp makes 0600: the file gets its usual mode, once written (it may be read-only)
        os.chmod(tmp, mode)
        if durable:
            _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        sync_dir(path.parent)


def _mode_for(path: Path) -> int:
    """The mode `path` keeps (its own, when it exists) or gets (0666 less the umask), as
    open() would give it."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it where Linux shows it (other threads may be
    creating files); elsewhere set and put back at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            return next(int(x.split()[1], 8) for x in fh if x.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        old = os.umask(0o022)
        os.umask(old)
        return old


def write_bytes(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write bytes atomically (see staged)."""
    with staged(path, durable=durable) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str, *, durable: bool = False) -> None:
    """Write UTF-8 text atomically (see staged)."""
    write_bytes(path, text.encode("utf-8"), durable=durable)


def sync_dir(folder: Path) -> None:
    """fsync a folder so a rename inside it survives a crash (best effort: not every OS can)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # a folder some platforms will not open: the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass  # a file system without fsync on folders
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    """fsync a written file; a failure (EIO, full disk) is raised, never hidden."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
