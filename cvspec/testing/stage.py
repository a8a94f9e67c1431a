"""The test stage: run the generated data and model tests with pytest; JUnit XML for CI."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cvspec.run.context import RunContext, StageResult


def run(ctx: RunContext) -> StageResult:
    """`cvspec run SPEC --stage test`: pytest generated/<p>/tests -> runs/<p>/test/junit.xml."""
    import importlib.util

    from cvspec.errors import CvspecError
    from cvspec.run.context import StageResult

    if importlib.util.find_spec("pytest") is None:
        raise CvspecError("the test stage runs pytest, which is not installed: pip install pytest")
    tests = ctx.generated / "tests"
    if not tests.is_dir():
        raise CvspecError(f"{os.path.relpath(tests, ctx.root)} not found: run `cvspec build`")
    junit = ctx.stage_dir("test") / "junit.xml"
    from cvspec.testing.options import ENV, as_env

    env = {k: v for k, v in os.environ.items() if k != ENV}
    env.update({"CVSPEC_ROOT": str(ctx.root), **as_env(ctx.profile, ctx.sets)})
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(tests),
        "-q",
        "--tb=short",  # a failed gate or data check: its message and line, not pages of frames
        "-p",
        "no:cacheprovider",
        f"--junitxml={junit}",
        "-o",
        "junit_family=xunit2",
    ]
    proc = subprocess.run(command, cwd=ctx.root, env=env, check=False)
    counts = junit_counts(junit)
    where = os.path.relpath(junit, ctx.root)
    text = (
        f"{counts['tests']} tests: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped ({where})"
    )
    return StageResult(proc.returncode == 0, text)


def junit_counts(path: object) -> dict[str, int]:
    """tests, failed (failures + errors), skipped and passed from a JUnit XML report."""
    import xml.etree.ElementTree as ET
    from pathlib import Path

    counts = {"tests": 0, "failed": 0, "skipped": 0}
    report = Path(str(path))
    if report.is_file():
        for suite in ET.parse(report).getroot().iter("testsuite"):
            counts["tests"] += int(suite.get("tests", 0))
            counts["failed"] += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            counts["skipped"] += int(suite.get("skipped", 0))
    counts["passed"] = counts["tests"] - counts["failed"] - counts["skipped"]
    return counts
