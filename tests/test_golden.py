"""Golden builds: the example specs compile to exactly the files under tests/golden/<name>/.

Files are stored by their path from the repository root, so fixed-path outputs (a GitHub
workflow) are pinned too. Refresh after an intended change with `make golden`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import REPO, UPDATE_GOLDEN, cvspec, snapshot

GOLDEN = REPO / "tests" / "golden"
EXAMPLES = sorted(p.stem for p in (REPO / "specs").glob("*.yaml") if not p.name.startswith("_"))


def outputs(root: Path, name: str) -> dict[str, bytes]:
    """Every file a project's build owns (per its manifest), plus the manifest."""
    lock = root / "generated" / name / "cvspec.lock"
    paths = [*json.loads(lock.read_text())["files"], f"generated/{name}/cvspec.lock"]
    return {p: (root / p).read_bytes() for p in sorted(paths)}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    (root / ".git").mkdir()
    shutil.copytree(REPO / "specs", root / "specs")
    result = cvspec("build", cwd=root)
    assert result.code == 0, result.err
    return root


@pytest.mark.parametrize("name", EXAMPLES)
def test_golden_build(built: Path, name: str) -> None:
    got = outputs(built, name)
    want_dir = GOLDEN / name
    if UPDATE_GOLDEN:
        shutil.rmtree(want_dir, ignore_errors=True)
        for rel, data in got.items():
            (want_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (want_dir / rel).write_bytes(data)
    want = snapshot(want_dir)
    assert sorted(got) == sorted(want)
    for rel in want:
        assert got[rel].decode() == want[rel].decode(), f"{name}: {rel} differs from golden"


@pytest.mark.parametrize("name", EXAMPLES)
def test_committed_output_matches_golden(name: str) -> None:
    assert outputs(REPO, name) == snapshot(GOLDEN / name)
