"""Golden builds: the example specs compile to exactly the files under tests/golden/.

Refresh after an intended change with `make golden` (CVSPEC_UPDATE_GOLDEN=1).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import REPO, UPDATE_GOLDEN, cvspec, snapshot

GOLDEN = REPO / "tests" / "golden"
EXAMPLES = sorted(p.stem for p in (REPO / "specs").glob("*.yaml") if not p.name.startswith("_"))


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
    got = snapshot(built / "generated" / name)
    want_dir = GOLDEN / name
    if UPDATE_GOLDEN:
        shutil.rmtree(want_dir, ignore_errors=True)
        for rel, data in got.items():
            (want_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (want_dir / rel).write_bytes(data)
    want = snapshot(want_dir)
    assert sorted(got) == sorted(want)
    for rel in want:
        assert got[rel].decode() == want[rel].decode(), f"{name}/{rel} differs from golden"


def test_committed_generated_tree_matches_golden() -> None:
    for name in EXAMPLES:
        assert snapshot(REPO / "generated" / name) == snapshot(GOLDEN / name)
