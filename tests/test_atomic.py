"""A build killed with SIGKILL at any moment leaves the previous tree whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import MINIMAL_SPEC, cvspec, project, snapshot, write_tree

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
