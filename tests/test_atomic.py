"""Atomic writes: a build killed with SIGKILL leaves the previous tree whole; parallel writers of
one file never collide; a failed write keeps the old file."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import MINIMAL_SPEC, cvspec, project, snapshot, write_tree

from cvspec.atomic import SUFFIX, staged, write_bytes, write_text

# A plugin that makes the write phase long: 300 files of 100 kB whose content follows the spec.
BULKY = """
from cvspec.generate.api import Artifact

class Bulky:
    name = "bulky"
    version = "1"

    def plan(self, spec, ctx):
        block = (f"epochs={spec.train.epochs}\\n" * 10_000)
        for i in range(300):
            yield Artifact(f"bulk/{i:03d}.txt", self.name, "text", data=block)
"""


def _tree(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in snapshot(root / "generated").items() if ".cvspec-stage" not in k}


def test_kill_9_during_build_leaves_old_or_new_tree(tmp_path: Path) -> None:
    site = write_tree(
        tmp_path / "site",
        {
            "bulky_plugin.py": BULKY,
            "bulky_plugin-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: bulky\n"
            "Version: 1.0\n",
            "bulky_plugin-1.0.dist-info/entry_points.txt": "[cvspec.generators]\n"
            "bulky = bulky_plugin:Bulky\n",
        },
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    root = project(tmp_path / "repo", MINIMAL_SPEC + "train: {epochs: 1}\n")
    assert cvspec("build", cwd=root, env=env).code == 0
    old = _tree(root)
    spec = root / "specs/demo.yaml"
    states = []
    for attempt in range(6):
        spec.write_text(MINIMAL_SPEC + f"train: {{epochs: {attempt + 2}}}\n")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cvspec", "build"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not list((root / "generated").glob(".demo.cvspec-stage-*")):
            assert proc.poll() is None, "the build finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        time.sleep(0.03 * attempt)  # later and later into the write phase, past the swap
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        now = _tree(root)
        if now != old:  # the swap happened: then it must be the whole new tree
            assert cvspec("check", cwd=root, env=env).code == 0, f"attempt {attempt}: torn tree"
        states.append("old" if now == old else "new")
        old = now
    assert "old" in states
    # the next build cleans up the killed builds' stages and lands whole
    assert cvspec("build", cwd=root, env=env).code == 0
    assert not list((root / "generated").glob(".*cvspec-stage*"))
    assert cvspec("check", cwd=root, env=env).code == 0


# Writers of one file in parallel, as parallel sweep points all setting current.json.
WRITER = """
import json, sys
from pathlib import Path
from cvspec.train.runs import write_json
for i in range(300):
    write_json(Path(sys.argv[1]), {"writer": sys.argv[2], "i": i})
"""


def test_parallel_writers_of_one_file_never_collide(tmp_path: Path) -> None:
    target = tmp_path / "current.json"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target), str(n)], stderr=subprocess.PIPE, text=True
        )
        for n in range(4)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    data = json.loads(target.read_text())
    assert data["i"] == 299 and data["writer"] in {"0", "1", "2", "3"}
    assert [p.name for p in tmp_path.iterdir()] == ["current.json"]  # no temporaries left


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="exporter failed"), staged(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("exporter failed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    write_bytes(target, b"new", durable=True)
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


KILLED = """
import os, sys
from pathlib import Path
from cvspec.atomic import staged
with staged(Path(sys.argv[1])) as tmp:
    tmp.write_bytes(b"half")
    os._exit(9)  # killed mid-write: no cleanup runs
"""


def test_temporaries_a_killed_writer_left_are_the_ones_cleaned(tmp_path: Path) -> None:
    from cvspec.train.checkpoint import clean_temporaries

    (tmp_path / "best.pt").write_bytes(b"whole")
    killed = subprocess.run([sys.executable, "-c", KILLED, str(tmp_path / "best.pt")], check=False)
    assert killed.returncode == 9
    assert (tmp_path / "best.pt").read_bytes() == b"whole"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "best.pt"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".best.pt.")
    assert leftovers[0].endswith(SUFFIX)
    clean_temporaries(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


def test_written_files_get_the_mode_open_would_give(tmp_path: Path) -> None:
    """A new file: 0666 less the umask (not mkstemp's 0600); an existing one keeps its mode."""
    old = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.yaml"
        write_text(fresh, "a: 1\n")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
        script = tmp_path / "run.sh"
        script.write_text("#!/bin/sh\n")
        script.chmod(0o750)
        write_text(script, "#!/bin/sh\necho hi\n")
        assert stat.S_IMODE(script.stat().st_mode) == 0o750
        os.umask(0o077)
        private = tmp_path / "private.json"
        write_text(private, "{}\n")
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_a_read_only_file_is_replaced_and_stays_read_only(tmp_path: Path) -> None:
    """The writer gets a file it can write; the mode (here 0444) is applied once it is written."""
    target = tmp_path / "ro.yaml"
    target.write_text("old\n")
    target.chmod(0o444)
    with staged(target) as tmp:
        assert stat.S_IMODE(tmp.stat().st_mode) & 0o200  # writable while the writer works
        tmp.write_text("new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o444
