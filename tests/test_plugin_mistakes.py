"""A plugin or template author's mistakes: a clear error naming the culprit, nothing lost.

Each misbehaving generator is a real installed distribution (a dist-info folder with an
entry point on PYTHONPATH), run through the real CLI.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import MINIMAL_SPEC, REPO, cvspec, project, snapshot, write_tree

PLUGIN = """
from cvspec.generate.api import Artifact

class Gen:
    name = "{name}"
    version = "1"

    def plan(self, spec, ctx):
        {body}
"""


def plugin_env(tmp_path: Path, body: str, name: str = "acme") -> dict[str, str]:
    """PYTHONPATH holding a plugin distribution whose plan() runs `body` (one line)."""
    site = write_tree(
        tmp_path / f"site-{name}",
        {
            f"{name}_gen.py": PLUGIN.format(name=name, body=body),
            f"{name}_gen-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}-gen\n"
            "Version: 1.0\n",
            f"{name}_gen-1.0.dist-info/entry_points.txt": "[cvspec.generators]\n"
            f"{name} = {name}_gen:Gen\n",
        },
    )
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path, "CVSPEC_NO_CACHE": "1"}


def _art(path: str, **kw: str) -> str:
    extra = "".join(f", {k}={v}" for k, v in kw.items())
    return f"yield Artifact({path!r}, self.name, 'text', data='x'{extra})"


MISTAKES = {
    "not an artifact": ("yield {'path': 'a.txt'}", "planned a dict, not an Artifact"),
    "dot part": (_art("./NOTES.md"), "must be a plain path"),
    "double slash": (_art("a//NOTES.md"), "must be a plain path"),
    "trailing slash": (_art("NOTES.md/"), "must be a plain path"),
    "empty path": (_art(""), "must be a non-empty string"),
    "the lock": (_art("cvspec.lock"), "cvspec.lock is cvspec's build manifest"),
    "a spec at root": (_art("specs/demo.yaml", at_root="True"), "at_root must not write under"),
    "git hooks": (_art(".git/hooks/pre-commit", at_root="True"), "at_root must not write under"),
    "another project": (_art("generated/x/a.txt", at_root="True"), "at_root must not write"),
    "a folder of another generator": (_art("docker"), "needs a folder there"),
    "someone else's name": (
        "yield Artifact('a.txt', 'docker', 'text', data='x')",
        "planned a.txt as generator 'docker'",
    ),
    "unknown format": ("yield Artifact('a.xml', self.name, 'xml', data='x')", "unknown format"),
    "not JSON": (
        "yield Artifact('a.json', self.name, 'json', data={'x': object()})",
        "cannot write a.json as json: TypeError",
    ),
    "bytes as text": (
        "yield Artifact('a.txt', self.name, 'text', data=b'x')",
        "generator 'acme': cannot write a.txt as text: data must be text (str), not bytes",
    ),
    "a dict as markdown": (
        "yield Artifact('a.md', self.name, 'markdown', data={'a': 1})",
        "cannot write a.md as markdown: data must be text (str), not dict",
    ),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_plugin_mistake_is_named_and_writes_nothing(tmp_path: Path, case: str) -> None:
    body, message = MISTAKES[case]
    root = project(tmp_path / "repo")
    assert cvspec("build", cwd=root).code == 0  # a good tree first: it must stay as it was
    before = snapshot(root)
    result = cvspec("build", cwd=root, env=plugin_env(tmp_path, body))
    assert result.code == 2, result.err
    assert message in result.err
    assert "acme" in result.err  # the culprit is named
    assert "Traceback" not in result.err and "bug in cvspec" not in result.err
    assert snapshot(root) == before
    assert not list((root / "generated").glob(".*cvspec-stage*"))


def test_a_folder_on_disk_where_a_file_goes_is_an_error_not_a_crash(tmp_path: Path) -> None:
    root = project(tmp_path / "repo", extra={"generated/demo/NOTES.md/mine.txt": "mine\n"})
    result = cvspec("build", cwd=root, env=plugin_env(tmp_path, _art("NOTES.md")))
    assert result.code == 2, result.err
    assert "generator 'acme' makes generated/demo/NOTES.md, but a folder is there" in result.err
    assert (root / "generated/demo/NOTES.md/mine.txt").read_text() == "mine\n"
    assert not list((root / "generated").glob(".*cvspec-stage*"))


def test_two_specs_cannot_make_one_file_outside_generated(tmp_path: Path) -> None:
    root = project(
        tmp_path / "repo", extra={"specs/other.yaml": MINIMAL_SPEC.replace("demo}", "other}")}
    )
    env = plugin_env(tmp_path, _art("NOTES.md", at_root="True"))
    result = cvspec("build", cwd=root, env=env)
    assert result.code == 2
    assert "specs/demo.yaml and specs/other.yaml both make NOTES.md (generator 'acme')" in (
        result.err
    )
    assert not (root / "NOTES.md").exists() and not (root / "generated").exists()


def test_force_never_overwrites_an_earlier_saved_copy(tmp_path: Path) -> None:
    root = project(tmp_path / "repo")
    assert cvspec("build", cwd=root).code == 0
    dockerfile = root / "generated/demo/docker/Dockerfile.train"
    for edit in ("first edit\n", "second edit\n"):
        dockerfile.write_text(edit)
        result = cvspec("build", "--force", cwd=root)
        assert result.code == 0, result.err
    assert (root / "generated/demo/docker/Dockerfile.train.orig").read_text() == "first edit\n"
    assert (root / "generated/demo/docker/Dockerfile.train.orig.1").read_text() == "second edit\n"
    check = cvspec("check", cwd=root)
    assert check.code == 1
    assert "Dockerfile.train.orig.1: your edited copy, saved by build --force" in check.out
    assert "2 file(s) a build leaves to you" in check.out


def test_template_runtime_errors_point_at_the_template_line(tmp_path: Path) -> None:
    root = project(
        tmp_path / "repo",
        extra={
            "over/repo/gitattributes.j2": "* text=auto\n{% include 'part.j2' %}\n",
            "over/part.j2": "ok\n{{ not_a_var }}\n",
        },
    )
    result = cvspec("build", "--templates", "over", cwd=root)
    assert result.code == 2
    assert "template repo/gitattributes.j2 (generator 'repo') failed" in result.err
    assert "over/part.j2:2:1: error[template]: UndefinedError: 'not_a_var' is undefined" in (
        result.err
    )
    (root / "over/part.j2").write_text("{{ 1 / 0 }}\n")
    result = cvspec("build", "--templates", "over", cwd=root)
    assert result.code == 2, result.err
    assert "over/part.j2:1:1: error[template]: ZeroDivisionError" in result.err
    (root / "over/part.j2").write_bytes(b"\xff\xfe not utf-8\n")
    result = cvspec("build", "--templates", "over", cwd=root)
    assert result.code == 2, result.err
    assert "UnicodeDecodeError" in result.err and "bug in cvspec" not in result.err
    assert not (root / "generated").exists()


def test_a_missing_templates_folder_is_a_located_spec_error(tmp_path: Path) -> None:
    root = project(tmp_path / "repo", MINIMAL_SPEC + "templates: nope\n")
    result = cvspec("build", cwd=root)
    assert result.code == 2
    assert "specs/demo.yaml:6:" in result.err
    assert "error[templates-missing]: templates folder 'nope' does not exist" in result.err
    assert not (root / "generated").exists()


def test_a_templates_folder_outside_the_repository_is_refused(tmp_path: Path) -> None:
    """cvspec.lock records --templates: a folder outside the repository would make every
    `check` elsewhere (CI) stop, so the build refuses it and writes nothing."""
    root = project(tmp_path / "repo")
    outside = tmp_path / "shared templates"
    (outside / "repo").mkdir(parents=True)
    (outside / "repo/gitattributes.j2").write_text("* -diff\n")
    result = cvspec("build", "--templates", str(outside), cwd=root)
    assert result.code == 2, result.err
    assert f"--templates {outside} is outside the repository" in result.err
    assert "Traceback" not in result.err
    assert not (root / "generated").exists()


def test_check_repeats_the_templates_folder_the_build_used(tmp_path: Path) -> None:
    root = project(tmp_path / "repo", extra={"over/repo/gitattributes.j2": "* -diff\n"})
    assert cvspec("build", "--templates", "over", cwd=root).code == 0
    assert (root / "generated/demo/.gitattributes").read_text().endswith("* -diff\n")
    result = cvspec("check", cwd=root)
    assert result.code == 0, result.out + result.err
    assert "--templates over" in result.out  # check says which options it repeated
    assert cvspec("check", "--templates", "over", cwd=root).code == 0
    (root / "over/repo/gitattributes.j2").write_text("* -diff -merge\n")
    result = cvspec("check", cwd=root)
    assert result.code == 1
    assert "a template, generator or plugin changed" in result.out
    result = cvspec("check", "--set", "train.epochs=3", cwd=root)
    assert "built with other options (--templates over before, now --set train.epochs=3)" in (
        result.out
    )


def test_generated_files_outside_generated_are_readable_by_others(tmp_path: Path) -> None:
    old = os.umask(0o022)  # what CI and a developer's shell use; the CLI inherits it
    try:
        root = project(tmp_path / "repo", MINIMAL_SPEC + "ci: {providers: [github]}\n")
        assert cvspec("build", cwd=root).code == 0
    finally:
        os.umask(old)
    workflow = root / ".github/workflows/cvspec-demo.yml"
    assert stat.S_IMODE(workflow.stat().st_mode) == 0o644


def test_a_plugins_own_error_is_named(tmp_path: Path) -> None:
    body = "from cvspec.errors import CvspecError; raise CvspecError('needs serve.port 80')"
    root = project(tmp_path / "repo")
    result = cvspec("build", cwd=root, env=plugin_env(tmp_path, body))
    assert result.code == 2
    assert result.err == (
        "error: generator 'acme' (acme_gen:Gen, from acme-gen 1.0): needs serve.port 80\n"
    )


def test_a_rename_keeps_a_root_file_the_renamed_project_still_makes(tmp_path: Path) -> None:
    env = plugin_env(tmp_path, _art("tools/lint.yaml", at_root="True"))
    root = project(tmp_path / "repo")
    assert cvspec("build", cwd=root, env=env).code == 0
    spec = root / "specs/demo.yaml"
    spec.write_text(spec.read_text().replace("{name: demo}", "{name: renamed}"))
    result = cvspec("build", cwd=root, env=env)
    assert result.code == 0, result.err
    assert (root / "tools/lint.yaml").is_file()
    assert not (root / "generated/demo").exists()
    assert cvspec("check", cwd=root, env=env).code == 0


def test_check_says_when_the_recorded_templates_folder_is_gone(tmp_path: Path) -> None:
    root = project(tmp_path / "repo", extra={"over/repo/gitattributes.j2": "* -diff\n"})
    assert cvspec("build", "--templates", "over", cwd=root).code == 0
    shutil.rmtree(root / "over")
    result = cvspec("check", cwd=root)
    assert result.code == 2
    assert result.err == (
        f"error: specs/demo.yaml: its last build used --templates {root / 'over'}, which is not "
        "a folder here; pass --templates DIR to check, or build without it\n"
    )


def test_a_plugins_exception_names_its_line_and_debug_prints_its_traceback(
    tmp_path: Path,
) -> None:
    root = project(tmp_path / "repo")
    env = plugin_env(tmp_path, "{}['boom']")
    source = (tmp_path / "site-acme/acme_gen.py").resolve()
    result = cvspec("build", cwd=root, env=env)
    assert result.code == 2
    assert result.err == (
        "error: generator 'acme' (acme_gen:Gen, from acme-gen 1.0) failed: KeyError: 'boom' "
        f"(at {source}:9)\n"
    )
    debug = subprocess.run(
        [sys.executable, "-m", "cvspec", "build"],
        cwd=root,
        env={**os.environ, **env, "CVSPEC_DEBUG": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert debug.returncode == 2
    assert debug.stderr.startswith("Traceback (most recent call last):\n")
    assert f'File "{source}", line 9, in plan\n' in debug.stderr
    assert debug.stderr.endswith(result.err), "then the same one-line error"
    assert not (root / "generated").exists()


def test_a_missing_include_names_the_including_line_and_the_folders_searched(
    tmp_path: Path,
) -> None:
    root = project(
        tmp_path / "repo",
        extra={"over/repo/gitattributes.j2": "* text=auto\n\n{% include 'x.j2' %}\n"},
    )
    result = cvspec("build", "--templates", "over", cwd=root)
    assert result.code == 2
    assert "error: template repo/gitattributes.j2 (generator 'repo') failed" in result.err
    assert "over/repo/gitattributes.j2:3:1: error[template]: template 'x.j2' not found " in (
        result.err
    )
    assert f"(searched over, {REPO / 'cvspec/templates'})" in result.err
    assert not (root / "generated").exists()


def test_a_nondeterministic_plan_is_named_as_such_by_check(tmp_path: Path) -> None:
    body = (
        "import random; yield Artifact('NOTES.txt', self.name, 'text', data=str(random.random()))"
    )
    env = plugin_env(tmp_path, body)  # no render cache: each check renders afresh
    root = project(tmp_path / "repo")
    assert cvspec("build", cwd=root, env=env).code == 0
    result = cvspec("check", cwd=root, env=env)
    assert result.code == 1
    assert (
        "drift  generated/demo/NOTES.txt: generator 'acme' made different output from the same "
        "inputs: its plan is not deterministic\n" in result.out
    )
    assert "drift  generated/demo/cvspec.lock: its digests follow the output above\n" in result.out
    assert "a template, generator or plugin changed" not in result.out
