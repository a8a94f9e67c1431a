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
    junit.unlink(missing_ok=True)  # a report of an earlier run must not pass for this one's
    proc = subprocess.run(command, cwd=ctx.root, env=env, check=False)
    counts = junit_counts(junit)
    where = os.path.relpath(junit, ctx.root)
    text = (
        f"{counts['tests']} tests: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped ({where})"
    )
    from cvspec.atomic import write_text

    write_text(junit.parent / SUMMARY, summary_markdown(ctx.project, junit, counts))
    return StageResult(proc.returncode == 0, text)


SUMMARY = "summary.md"  # what CI shows a reviewer (GitHub's job summary)
MAX_LISTED = 50


def summary_markdown(project: str, junit: object, counts: dict[str, int]) -> str:
    """The counts, and each failed test with the first line of its message, as Markdown."""
    import xml.etree.ElementTree as ET
    from pathlib import Path

    lines = [
        f"## {project}: tests\n",
        f"{counts['tests']} tests: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped.",
    ]
    report = Path(str(junit))
    failed: list[tuple[str, str]] = []
    if report.is_file():
        for case in ET.parse(report).getroot().iter("testcase"):
            problem = case.find("failure")
            problem = case.find("error") if problem is None else problem
            if problem is not None:
                message = (problem.get("message") or problem.text or "").strip()
                failed.append((case.get("name", "?"), message.splitlines()[0] if message else ""))
    else:
        lines.append("\nNo JUnit report: pytest stopped before writing one (see the log).")
    if failed:
        lines += ["", "| failed test | message |", "|---|---|"]
        for name, message in failed[:MAX_LISTED]:
            lines.append(f"| `{name}` | {_cell(message)} |")
        if len(failed) > MAX_LISTED:
            lines.append(f"\n... {len(failed) - MAX_LISTED} more in the JUnit report.")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text that stays inside one Markdown table cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|")[:300]


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
