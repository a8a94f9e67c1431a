"""The pre-commit hooks, run by pre-commit itself from a clone of this repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import MINIMAL_SPEC, REPO, cvspec, tool, write_tree

GIT = [
    "-c",
    "user.name=cvspec tests",
    "-c",
    "user.email=tests@cvspec.invalid",
    "-c",
    "commit.gpgsign=false",
]


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        [tool("git"), *GIT, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def hook_repo(dest: Path) -> str:
    """A git clone of what pre-commit installs from this repository; returns its commit."""
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(REPO / "cvspec", dest / "cvspec", ignore=shutil.ignore_patterns("__pycache__"))
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "hooks")
    return git(dest, "rev-parse", "HEAD")


@pytest.mark.slow
def test_pre_commit_runs_validate_and_check_from_the_hook_repository(tmp_path: Path) -> None:
    hooks, user = tmp_path / "cvspec", tmp_path / "user"
    hooks.mkdir()
    rev = hook_repo(hooks)
    write_tree(
        user,
        {
            "specs/demo.yaml": MINIMAL_SPEC,
            ".pre-commit-config.yaml": f"""\
                repos:
                  - repo: {hooks}
                    rev: {rev}
                    hooks: [{{id: cvspec-validate}}, {{id: cvspec-check}}]
                """,
        },
    )
    git(user, "init", "-q")
    assert cvspec("build", cwd=user).code == 0
    git(user, "add", "-A")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"), "NO_COLOR": "1"}

    def pre_commit(*hook: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tool("pre-commit"), "run", "--all-files", *hook],
            cwd=user,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    passed = pre_commit()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    results = re.findall(r"^(cvspec \w+)\.+(\w+)$", passed.stdout, re.MULTILINE)
    assert results == [("cvspec validate", "Passed"), ("cvspec check", "Passed")]

    config = user / "generated/demo/train/config.yaml"
    config.write_text(config.read_text() + "# tuned by hand\n")
    git(user, "add", "-A")
    tampered = pre_commit("cvspec-check")
    assert tampered.returncode == 1
    assert "  tamper  generated/demo/train/config.yaml: edited by hand" in tampered.stdout

    (user / "specs/demo.yaml").write_text(MINIMAL_SPEC + "train: {epoch: 3}\n")
    git(user, "add", "-A")
    invalid = pre_commit("cvspec-validate")
    assert invalid.returncode == 1
    assert (
        "specs/demo.yaml:6:9: error[unknown-key]: unknown key 'epoch' in 'train'" in invalid.stdout
    )
