"""Hostile spec strings stay inert data in Dockerfiles and CI files; identifiers are refused."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import MINIMAL_SPEC, cvspec, project, tool, write_tree
from ruamel.yaml import YAML

SPEC = """\
cvspec: 1
project:
  name: inject
  description: {description}
  owners: ["@acme/vision"]
  contacts: {{slack: "#cv"}}
task: classification
data: {{path: {path}, versioning: dvc}}
model: {{arch: timm/resnet18, image_size: 32}}
deploy: {{registry: ghcr.io/acme}}
monitor:
  alerts: [{{name: Drift, metric: brightness_drift, max: 0.2, description: {description}}}]
ci:
  providers: [github, gitlab]
  on: [pull_request, push, schedule, workflow_dispatch]
profiles: {{ci: {{train: {{epochs: 1}}}}}}
"""
BREAKS = str.maketrans({"\n": " ", "\u2028": " ", "\u2029": " "})


def payloads(marker: Path) -> list[str]:
    """The strings an attacker would try, each aimed at a different interpreter."""
    return [
        f"$(touch {marker})",
        f"`touch {marker}`",
        "${{ github.token }}",
        '"; rm -rf / #',
        "\nkey: injected\n- item: 1",
        "{{ 7*7 }}",
        "${HOME} $CI_JOB_TOKEN \\",
        "line\u2028separator\u2029paragraph",
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    root = tmp_path_factory.mktemp("repo")
    found = payloads(root / "pwned")
    description = " ".join(found)
    path = "../data/" + "".join(p for p in found if "\n" not in p)
    spec = SPEC.format(description=yaml_text(description), path=yaml_text(path))
    project(root, spec, "inject.yaml")
    clean = SPEC.format(description='"plain"', path='"../data/plain"').replace("inject", "clean")
    write_tree(root, {"specs/clean.yaml": clean})
    result = cvspec("build", cwd=root)
    assert result.code == 0, result.err
    return root, description, "data/" + path.removeprefix("../data/")


def yaml_text(value: str) -> str:
    """`value` as a YAML scalar of a spec: JSON quoting, `${` escaped from interpolation."""
    return json.dumps(value.replace("${", "\\${"))


def instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions as the parser sees them: lines split on LF only, `\\` joins."""
    out, current = [], ""
    for line in text.split("\n"):
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1]
            continue
        keyword, _, rest = (current + line).strip().partition(" ")
        out.append((keyword.upper(), rest))
        current = ""
    return out


def unquote(word: str) -> str:
    """A Dockerfile double-quoted word by BuildKit's rules; an unescaped `$` fails the test."""
    assert word.startswith('"') and word.endswith('"'), word
    body, out, i = word[1:-1], [], 0
    while i < len(body):
        char = body[i]
        assert char != "$", f"unescaped $ would expand: {word}"
        assert char != '"', f"unescaped quote ends the word early: {word}"
        if char == "\\" and i + 1 < len(body) and body[i + 1] in '"$\\':
            i += 1
            char = body[i]
        out.append(char)
        i += 1
    return "".join(out)


def test_docker_payloads_are_quoted_label_data(built: tuple[Path, str, str]) -> None:
    root, description, _ = built
    files = [
        root / f"generated/{p}/docker/Dockerfile.{k}"
        for p in ("inject", "clean")
        for k in ("train", "serve")
    ]
    proc = subprocess.run([tool("hadolint"), *map(str, files)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout
    for purpose in ("train", "serve"):
        hostile = instructions((root / f"generated/inject/docker/Dockerfile.{purpose}").read_text())
        plain = instructions((root / f"generated/clean/docker/Dockerfile.{purpose}").read_text())
        assert [k for k, _ in hostile] == [k for k, _ in plain]
        labels = [rest for k, rest in hostile if k == "LABEL" and ".description=" in rest]
        assert len(labels) == 1
        key, _, word = labels[0].partition("=")
        assert key == "org.opencontainers.image.description"
        assert unquote(word) == description.translate(BREAKS)


EXPRESSIONS = {
    "'${{'": "${{",
    "github.token": None,  # must never be evaluated
    "github.sha": "0123abc",
    "github.server_url": "https://github.example",
    "github.repository": "acme/repo",
    "github.ref": "refs/pull/7/merge",
    "github.ref_name": 'feat/"; $(touch pwned)',
    "github.run_id": "1",
    "github.actor": "bot",
    "runner.os": "Linux",
    "github.event_name == 'pull_request'": "true",
    "github.event_name == 'pull_request' && 'ci' || ''": "ci",
}


def gh_eval(value: str) -> str:
    """What GitHub makes of a string: each `${{ expr }}` replaced, all else verbatim."""

    def one(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        if expr.startswith("secrets."):
            return ""
        assert EXPRESSIONS.get(expr) is not None, f"unexpected expression: {expr}"
        return str(EXPRESSIONS[expr])

    return re.sub(r"\$\{\{(.*?)\}\}", one, value)


def stubs(root: Path) -> tuple[Path, Path]:
    """A bin folder of `python`, `cvspec`, `dvc` that log their argv (NUL-separated fields)."""
    folder, log = root / "stub-bin", root / "argv.log"
    folder.mkdir(exist_ok=True)
    for name in ("python", "cvspec", "dvc"):
        script = folder / name
        script.write_text(
            f"#!/bin/sh\nprintf '%s\\0' {name} \"$@\" >> '{log}'\nprintf '\\036' >> '{log}'\n"
        )
        script.chmod(0o755)
    return folder, log


def calls(log: Path) -> list[list[str]]:
    """The argv of every stub call, in order."""
    records = log.read_bytes().decode().split("\x1e")
    return [record.split("\0")[:-1] for record in records if record]


def run_script(script: str, env: dict[str, str], root: Path, folder: Path) -> None:
    full = {**os.environ, **env, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "-c", script], env=full, cwd=root, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_github_steps_get_payloads_only_as_arguments(built: tuple[Path, str, str]) -> None:
    root, _, data = built
    path = root / ".github/workflows/cvspec-inject.yml"
    text = path.read_text()
    for expr in re.findall(r"\$\{\{(.*?)\}\}", text):  # every expression is one we wrote
        assert expr.strip() in EXPRESSIONS or expr.strip().startswith("secrets."), expr
    workflow: Any = YAML(typ="safe", pure=True).load(text)
    env = {k: gh_eval(v) for k, v in workflow["env"].items()}
    assert env["CVSPEC_DATA"] == data
    folder, log = stubs(root)
    for job in workflow["jobs"].values():
        job_env = {**env, **{k: gh_eval(v) for k, v in job.get("env", {}).items()}}
        for step in job["steps"]:
            if "run" in step:
                step_env = {k: gh_eval(v) for k, v in step.get("env", {}).items()}
                run_script(step["run"], {**job_env, **step_env}, root, folder)
    made = calls(log)
    assert ["dvc", "pull", data] in made
    assert ["cvspec", "run", "specs/inject.yaml", "--stage", "train", "--profile", "ci"] in made
    assert not (root / "pwned").exists() and not list(root.glob("**/pwned"))


def test_gitlab_scripts_get_payloads_only_as_arguments(built: tuple[Path, str, str]) -> None:
    root, _, data = built
    pipeline: Any = YAML(typ="safe", pure=True).load(
        (root / "generated/inject/ci/gitlab-ci.yml").read_text()
    )
    variables = pipeline[".inject:base"]["variables"]
    assert variables["CVSPEC_DATA"] == {"value": data, "expand": False}
    env = {k: v["value"] for k, v in variables.items() if isinstance(v, dict)}
    env.update(CVSPEC_PROFILE="ci", CI_COMMIT_SHA="0123abc")
    folder, log = stubs(root)
    log.unlink(missing_ok=True)
    for name, job in pipeline.items():
        if not name.startswith(".") and name != "inject:notify":
            for line in job["script"]:
                run_script(line, env, root, folder)
    assert ["dvc", "pull", data] in calls(log)
    assert not list(root.glob("**/pwned"))


def test_path_filters_watch_the_folder_above_a_path_with_a_dollar(
    built: tuple[Path, str, str],
) -> None:
    """GitHub reads `${{` in a path filter as an expression, GitLab expands `$NAME` in
    rules:changes: the data folder named with one is watched as the folder above it."""
    root, _, _ = built
    workflow: Any = YAML(typ="safe", pure=True).load(
        (root / ".github/workflows/cvspec-inject.yml").read_text()
    )
    pipeline: Any = YAML(typ="safe", pure=True).load(
        (root / "generated/inject/ci/gitlab-ci.yml").read_text()
    )
    changes = [r["changes"] for r in pipeline[".inject:base"]["rules"] if "changes" in r]
    for paths, folder in [
        (workflow["on"][e]["paths"], "data/**") for e in ("push", "pull_request")
    ]:
        assert folder in paths and not any("$" in p for p in paths), paths
    for paths in changes:
        assert "data/**/*" in paths and not any("$" in p for p in paths), paths
    assert len(changes) == 2


def test_payloads_never_reach_other_delivery_files(built: tuple[Path, str, str]) -> None:
    root, _, _ = built
    for rel in (
        "generated/inject/CODEOWNERS",
        "generated/inject/docker/Dockerfile.serve.dockerignore",
    ):
        text = (root / rel).read_text()
        assert not any(s in text for s in ("pwned", "$", "`", "{{", "rm -rf", "\u2028"))


def test_a_cron_that_is_not_a_schedule_is_refused(tmp_path: Path) -> None:
    cron = "  cron: '${{github.token}} `id` $(id) \";rm #'\n"
    spec = SPEC.format(description='"x"', path='"../d"').replace("profiles:", cron + "profiles:")
    root = project(tmp_path, spec, "inject.yaml")
    result = cvspec("build", cwd=root)
    assert result.code == 2
    assert "error[bad-value]: ci.cron: must be a 5-field cron expression like '0 4 * * 1'" in (
        result.err
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("project.name=x; rm -rf /", "project.name: must be a lowercase name"),
        ("deploy.image=app$(id)", "deploy.image: must be an image name without tag"),
        ("deploy.registry=ghcr.io/${{ github.token }}", "deploy.registry: must be a registry"),
        ("ci.runner=ubuntu; rm -rf /", "ci.runner: must be one token"),
        ('ci.default_branch="main\\nx: 1"', "ci.default_branch: must be one token"),
        ("data.classes=['`id`', b]", "data.classes[0]: must be a class name"),
        ("project.owners=['@a b']", "project.owners[0]: must be '@org/team', '@user' or an email"),
        (
            "monitor.notify.slack_webhook_secret=X }}",
            "monitor.notify.slack_webhook_secret: must be an UPPER_SNAKE_CASE secret name",
        ),
    ],
)
def test_identifiers_are_checked_by_the_spec_language(
    tmp_path: Path, override: str, message: str
) -> None:
    root = project(tmp_path, MINIMAL_SPEC)
    result = cvspec("validate", "specs/demo.yaml", "--set", override, cwd=root)
    assert result.code == 2, result.out
    assert f"error[bad-value]: {message}" in result.err
