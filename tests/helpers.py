"""Test helpers: write a project tree from a dict, run the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parent.parent
UPDATE_GOLDEN = bool(os.environ.get("CVSPEC_UPDATE_GOLDEN"))

MINIMAL_SPEC = """\
cvspec: 1
project: {name: demo}
task: classification
data: {path: ../data/demo}
model: {arch: timm/resnet18, image_size: 32}
"""


def tool(name: str, install: str = "pip install -e '.[dev]'") -> str:
    """An external tool's path; missing fails the test in CI and skips it elsewhere."""
    import shutil

    import pytest

    search = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    found = shutil.which(name, path=search)
    if found:
        return found
    message = f"{name} is missing: {install}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def write_tree(root: Path, tree: Mapping[str, Any]) -> Path:
    """Write {relative path: text | bytes | nested dict} under root; text is dedented."""
    for name, content in tree.items():
        path = root / name
        if isinstance(content, Mapping):
            path.mkdir(parents=True, exist_ok=True)
            write_tree(path, content)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content), encoding="utf-8")
    return root


class Result(NamedTuple):
    """A finished CLI run."""

    code: int
    out: str
    err: str


def cvspec(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60
) -> Result:
    """Run `python -m cvspec ARGS` in a fresh process, the way a user runs it."""
    full_env = {**os.environ, "PYTHONHASHSEED": "random", **(env or {})}
    full_env.pop("CVSPEC_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "cvspec", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root (relative POSIX path -> bytes)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def project(
    tmp_path: Path,
    spec: str = MINIMAL_SPEC,
    name: str = "demo.yaml",
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """A repository with specs/NAME and a .git marker, ready for `cvspec build`."""
    (tmp_path / ".git").mkdir(parents=True, exist_ok=True)
    write_tree(tmp_path, {f"specs/{name}": spec, **(extra or {})})
    return tmp_path


def slow_upload(port: int, body: bytes, pieces: int = 4, gap_s: float = 0.15) -> int:
    """POST body to 127.0.0.1:port/predict in `pieces` parts `gap_s` apart, as a client on a
    slow link does; the answer's status code."""
    import socket
    import time

    head = (
        "POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    size = -(-len(body) // pieces)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        for start in range(0, len(body), size):
            if start:
                time.sleep(gap_s)
            sock.sendall(body[start : start + size])
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            assert chunk, f"the server closed the connection after {answer!r}"
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def health_once_load_failed(port: int, proc: subprocess.Popen[bytes]) -> Any:
    """GET /health until the server says its model failed to load (or 60 s pass, or the
    process ends); the last answer, or None when none came."""
    import time

    import httpx

    deadline, health = time.monotonic() + 60, None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/health")
            if health.json()["status"] == "failed":
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return health


def fill_drift_window(url: str, body: bytes) -> None:
    """POST body to url/predict as often as a drift window holds images: the server publishes
    its drift gauges only over a full window."""
    import httpx

    from cvspec.serve.drift import WINDOW

    with httpx.Client() as client:
        for _ in range(WINDOW):
            answer = client.post(
                f"{url}/predict", content=body, headers={"content-type": "image/png"}
            )
            assert answer.status_code == 200, answer.text


def build_repo(root: Path, specs: Mapping[str, str]) -> Path:
    """A repository with each of `specs` (file name -> text) under specs/, built."""
    first, *rest = specs.items()
    project(root, first[1], first[0], extra={f"specs/{n}": text for n, text in rest})
    result = cvspec("build", cwd=root)
    assert result.code == 0, result.err
    return root


def solid_png(colour: tuple[int, int, int] = (0, 200, 0), side: int = 8) -> bytes:
    """A PNG of one colour: a valid image for a server to answer."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(buf, "PNG")
    return buf.getvalue()
