"""The CI pipelines: valid by the providers' schemas, the stage graph, least privilege."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from helpers import MINIMAL_SPEC, build_repo, cvspec, project, tool
from ruamel.yaml import YAML

from cvspec.generate.builtin.ci_common import CI_STAGES, NOTIFY_SCRIPT
from cvspec.run.graph import BY_NAME, STAGES

FULL = """\
cvspec: 1
project: {name: full, contacts: {slack: '#cv'}}
task: classification
data:
  path: ../data/demo
  versioning: dvc
  remote_secrets: [AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY]
model: {arch: timm/resnet18, image_size: 32}
deploy: {registry: ghcr.io/acme}
monitor: {notify: {slack_webhook_secret: CV_SLACK_HOOK}}
ci:
  providers: [github, gitlab]
  on: [pull_request, push, schedule, workflow_dispatch]
  cron: '0 3 * * 1'
  default_branch: trunk
  runner: self-hosted
  gpu_runner: gpu-a100
  dvc_remote: s3
profiles: {ci: {train: {epochs: 1}}}
"""
SPECS = {
    "demo.yaml": MINIMAL_SPEC,
    "full.yaml": FULL,
    "quay.yaml": MINIMAL_SPEC.replace("demo", "quay")
    + "deploy: {registry: quay.io/acme}\nci: {providers: [github, gitlab]}\n",
    "lab.yaml": MINIMAL_SPEC.replace("demo", "lab") + "ci: {providers: [gitlab]}\n",
    "none.yaml": MINIMAL_SPEC.replace("demo", "none") + "ci: {providers: []}\n",
    "wide.yaml": MINIMAL_SPEC.replace("demo", "wide").replace(
        "../data/wide}", "../data/demo, versioning: dvc}"
    )
    + "train: {distributed: {engine: slurm, nodes: 4, gpus_per_node: 8}}\n"
    + "ci: {providers: [github, gitlab]}\n",
    "boxes.yaml": "cvspec: 1\nproject: {name: boxes}\ntask: detection\n"
    + "data: {path: ../data/boxes, classes: [cat]}\n"
    + "model: {arch: ultralytics/yolov8n.yaml, image_size: 64}\nci: {providers: [gitlab]}\n",
}
PINNED = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+@v[0-9]+")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_repo(tmp_path_factory.mktemp("repo"), SPECS)


def load(path: Path) -> Any:
    return YAML(typ="safe", pure=True).load(path.read_text())


def github(root: Path, name: str) -> Any:
    return load(root / f".github/workflows/cvspec-{name}.yml")


def gitlab(root: Path, name: str) -> Any:
    return load(root / f"generated/{name}/ci/gitlab-ci.yml")


def test_pipelines_validate_against_the_providers_schemas(built: Path) -> None:
    workflows = sorted(str(p) for p in built.glob(".github/workflows/*.yml"))
    pipelines = sorted(str(p) for p in built.glob("generated/*/ci/gitlab-ci.yml"))
    assert [Path(p).name for p in workflows] == [
        "cvspec-demo.yml",
        "cvspec-full.yml",
        "cvspec-quay.yml",
        "cvspec-wide.yml",
    ]
    assert [Path(p).parent.parent.name for p in pipelines] == [
        "boxes", "full", "lab", "quay", "wide",
    ]  # fmt: skip
    for schema, files in (("vendor.github-workflows", workflows), ("vendor.gitlab-ci", pipelines)):
        proc = subprocess.run(
            [tool("check-jsonschema"), "--builtin-schema", schema, *files],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_github_job_graph_is_the_stage_graph(built: Path) -> None:
    for name in ("demo", "full"):
        jobs = github(built, name)["jobs"]
        assert "needs" not in jobs["check"]
        for stage in CI_STAGES:
            assert jobs[stage.name]["needs"] == (list(stage.needs) or ["check"])
            runs = [s["run"] for s in jobs[stage.name]["steps"] if "run" in s]
            assert (
                f'cvspec run "$CVSPEC_SPEC" --stage {stage.name} '
                '${CVSPEC_PROFILE:+--profile "$CVSPEC_PROFILE"}'
            ) in runs
    assert {s.name for s in STAGES} - {s.name for s in CI_STAGES} == {"serve"}
    assert list(github(built, "demo")["jobs"]) == ["check", *(s.name for s in CI_STAGES)]


def closure(needs: dict[str, list[str]]) -> dict[str, set[str]]:
    """Every job's transitive needs."""
    out: dict[str, set[str]] = {}
    for job in needs:
        seen, todo = set(), list(needs[job])
        while todo:
            item = todo.pop()
            if item not in seen:
                seen.add(item)
                todo.extend(needs[item])
        out[job] = seen
    return out


def test_gitlab_job_graph_has_the_stage_graphs_order(built: Path) -> None:
    pipeline = gitlab(built, "full")
    needs = {
        key.split(":", 1)[1]: [n["job"].split(":", 1)[1] for n in job["needs"]]
        for key, job in pipeline.items()
        if not key.startswith(".") and "needs" in job and key != "full:notify"
    }
    graph = {"check": [], **{s.name: list(s.needs) or ["check"] for s in CI_STAGES}}
    assert closure(needs) == closure(graph)
    assert pipeline["full:check"]["needs"] == []
    # included next to other projects' files: every key is this project's own job
    assert all(re.fullmatch(r"\.?full:[a-z]+", key) for key in pipeline)
    assert {job["stage"] for job in pipeline.values() if "stage" in job} == {
        "build",
        "test",
        "deploy",
        ".post",
    }


def test_actions_are_pinned_and_permissions_are_least_privilege(built: Path) -> None:
    for name in ("demo", "full", "quay"):
        workflow = github(built, name)
        assert workflow["permissions"] == {"contents": "read"}
        uses = [s["uses"] for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
        assert uses and all(PINNED.fullmatch(u) for u in uses), uses
        checkouts = [
            s
            for job in workflow["jobs"].values()
            for s in job["steps"]
            if "checkout" in s.get("uses", "")
        ]
        assert all(s["with"] == {"persist-credentials": False} for s in checkouts)
        granted = {
            j: job["permissions"] for j, job in workflow["jobs"].items() if "permissions" in job
        }
        expected = {"package": {"contents": "read", "packages": "write"}} if name == "full" else {}
        if name == "full":
            expected["notify"] = {}
        assert granted == expected


def test_images_are_pushed_only_from_the_default_branch_with_named_secrets(built: Path) -> None:
    on_default = (
        "github.event_name != 'pull_request' && github.ref_name == env.CVSPEC_DEFAULT_BRANCH"
    )
    steps = github(built, "full")["jobs"]["package"]["steps"]
    build, push = steps[-2], steps[-1]
    assert build["if"] == f"!({on_default})" and "env" not in build
    assert push["if"] == on_default
    assert push["env"] == {
        "CVSPEC_PUSH": "1",
        "CVSPEC_REGISTRY_USERNAME": "${{ github.actor }}",
        "CVSPEC_REGISTRY_PASSWORD": "${{ secrets.GITHUB_TOKEN }}",
    }
    assert github(built, "full")["env"]["CVSPEC_DEFAULT_BRANCH"] == "trunk"
    quay = github(built, "quay")["jobs"]["package"]["steps"][-1]["env"]
    assert quay["CVSPEC_REGISTRY_PASSWORD"] == "${{ secrets.REGISTRY_PASSWORD }}"
    demo = github(built, "demo")["jobs"]["package"]["steps"]
    stage_steps = [s for s in demo if "--stage package" in s.get("run", "")]
    assert [s.get("env") for s in stage_steps] == [None]  # no registry: build only
    rules = gitlab(built, "full")["full:package"]["rules"]
    pushing = [r for r in rules if "CVSPEC_PUSH" in r.get("variables", {})]
    assert [r["if"] for r in pushing] == [
        '$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH == "trunk"',
        '$CI_PIPELINE_SOURCE == "schedule" && $CI_COMMIT_BRANCH == "trunk"',
        '$CI_PIPELINE_SOURCE == "web" && $CI_COMMIT_BRANCH == "trunk"',
    ]
    quay_lab = gitlab(built, "quay")["quay:package"]["rules"][1]["variables"]
    assert quay_lab["CVSPEC_REGISTRY_PASSWORD"] == "$REGISTRY_PASSWORD"


def test_triggers_profile_runners_and_concurrency_follow_the_spec(built: Path) -> None:
    full = github(built, "full")
    watched = [
        "specs/full.yaml",
        "generated/full/**",
        "data/demo/**",
        "data/demo.dvc",
        ".github/workflows/cvspec-full.yml",
    ]
    assert full["on"] == {
        "pull_request": {"paths": watched},
        "push": {"branches": ["trunk"], "paths": watched},
        "schedule": [{"cron": "0 3 * * 1"}],
        "workflow_dispatch": {},
    }
    assert full["concurrency"] == {
        "group": "cvspec-full-${{ github.ref }}",
        "cancel-in-progress": "${{ github.event_name == 'pull_request' }}",
    }
    assert full["env"]["CVSPEC_PROFILE"] == (
        "${{ github.event_name == 'pull_request' && 'ci' || '' }}"
    )
    assert "CVSPEC_PROFILE" not in github(built, "demo")["env"]
    runners = {name: job["runs-on"] for name, job in full["jobs"].items()}
    assert runners == {**dict.fromkeys(runners, "self-hosted"), "train": "gpu-a100"}
    assert github(built, "demo")["jobs"]["train"]["runs-on"] == "ubuntu-latest"
    lab = gitlab(built, "full")
    assert lab[".full:base"]["rules"][0] == {
        "if": '$CI_PIPELINE_SOURCE == "merge_request_event"',
        "changes": ["specs/full.yaml", "generated/full/**/*", "data/demo/**/*", "data/demo.dvc"],
        "variables": {"CVSPEC_PROFILE": "ci"},
    }
    assert lab["full:train"]["tags"] == ["gpu-a100"] and lab[".full:base"]["tags"] == [
        "self-hosted"
    ]


MONOREPO = {
    "_team.yaml": "cvspec: 1\nci: {providers: [github, gitlab]}\n",
    "cats.yaml": "extends: _team.yaml\n"
    + MINIMAL_SPEC.replace("{name: demo}", "{name: cats, owners: ['@acme/cats']}").replace(
        "demo", "cats"
    ),
    "dogs.yaml": "extends: _team.yaml\n"
    + MINIMAL_SPEC.replace("{name: demo}", "{name: dogs, owners: ['@acme/dogs', a@b.io]}").replace(
        "../data/demo}", "../data/dogs, versioning: dvc}"
    ),
    "ocr.yaml": "cvspec: 1\nproject: {name: ocr, owners: ['@acme/ocr']}\ntask: classification\n"
    + "data: {path: '../data/o[1]*', versioning: dvc}\n"
    + "model: {arch: timm/resnet18, image_size: 32, weights: ../weights/ocr.pt}\n"
    + "ci: {providers: [github, gitlab], on: [pull_request, push, schedule]}\n",
}


@pytest.fixture(scope="module")
def monorepo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_repo(tmp_path_factory.mktemp("monorepo"), MONOREPO)


def _glob(pattern: str, gitlab: bool) -> re.Pattern[str]:
    """A path filter as its provider reads it: `*` within a folder, GitHub's `**` anything,
    GitLab's (Ruby fnmatch) `**/` any folders, `\\` escapes the next character."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out, i = out + re.escape(pattern[i + 1]), i + 2
        elif pattern.startswith("**/", i) and gitlab:
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        else:
            out, i = out + ("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c)), i + 1
    return re.compile(out)


def _runs(root: Path, changed: list[str]) -> dict[str, tuple[set[str], set[str]]]:
    """For each event, the projects whose GitHub workflow and GitLab jobs a change runs."""
    runs: dict[str, tuple[set[str], set[str]]] = {
        "pull_request": (set(), set()),
        "push": (set(), set()),
    }
    for name in ("cats", "dogs", "ocr"):
        on = github(root, name)["on"]
        rules = {r["if"].split(" ")[2]: r for r in gitlab(root, name)[f".{name}:base"]["rules"]}
        for event, source in (("pull_request", '"merge_request_event"'), ("push", '"push"')):
            hub = [_glob(p, False) for p in on[event]["paths"]]
            lab = [_glob(p, True) for p in rules[source]["changes"]]
            if any(g.fullmatch(path) for g in hub for path in changed):
                runs[event][0].add(name)
            if any(g.fullmatch(path) for g in lab for path in changed):
                runs[event][1].add(name)
    return runs


@pytest.mark.parametrize(
    ("changed", "projects"),
    [
        (["specs/cats.yaml"], {"cats"}),
        (["specs/_team.yaml"], {"cats", "dogs"}),  # the partial both extend
        (["generated/dogs/train/config.yaml"], {"dogs"}),
        (["generated/dogs/ci/gitlab-ci.yml", ".github/workflows/cvspec-dogs.yml"], {"dogs"}),
        (["data/dogs.dvc"], {"dogs"}),
        (["data/cats/cat/1.png"], {"cats"}),
        (["data/o[1]*.dvc"], {"ocr"}),
        (["data/o[1]*/a/b.png"], {"ocr"}),
        (["data/o1x/a/b.png"], set()),  # the data path is a name, not a pattern
        (["weights/ocr.pt"], {"ocr"}),
        (["README.md", "specs/new.yaml", "generated/cats2/x"], set()),
    ],
)
def test_a_monorepo_change_runs_only_the_pipelines_of_the_projects_it_touches(
    monorepo: Path, changed: list[str], projects: set[str]
) -> None:
    """Several projects in one repository: a pull request (merge request) or push runs the
    jobs of the projects whose spec, partials, data, weights or generated files it changes,
    not every project's training pipeline."""
    root = monorepo
    for event, (hub, lab) in _runs(root, changed).items():
        assert (hub, lab) == (projects, projects), event
    # scheduled runs have no changes to filter by
    assert github(root, "ocr")["on"]["schedule"] == [{"cron": "0 4 * * 1"}]
    assert all("changes" not in r for r in gitlab(root, "ocr")[".ocr:base"]["rules"][2:])


def test_each_project_owns_its_spec_data_and_outputs_in_the_shared_codeowners(
    monorepo: Path,
) -> None:
    """The fragments, appended to one CODEOWNERS as the README says (last match wins): each
    project's owners own its spec, generated files, workflow and data; no line shadows another
    project's, and a data path that is no plain path gets no line rather than a pattern."""
    pathspec = pytest.importorskip("pathspec")
    lines = [
        line.split()
        for f in sorted(monorepo.glob("generated/*/CODEOWNERS"))
        for line in f.read_text().splitlines()
        if line and not line.startswith("#")
    ]
    rules = [(pathspec.GitIgnoreSpec.from_lines([pattern]), owners) for pattern, *owners in lines]

    def owner(path: str) -> list[str]:
        return next((o for spec, o in reversed(rules) if spec.match_file(path)), [])

    dogs, cats, ocr = ["@acme/dogs", "a@b.io"], ["@acme/cats"], ["@acme/ocr"]
    assert owner("specs/dogs.yaml") == dogs and owner("specs/cats.yaml") == cats
    assert owner("data/dogs.dvc") == owner("data/dogs/x/1.png") == dogs
    assert owner("data/cats/cat/1.png") == cats
    assert owner("generated/dogs/train/config.yaml") == dogs
    assert owner(".github/workflows/cvspec-cats.yml") == cats
    assert owner("specs/ocr.yaml") == ocr and owner("data/o1/x.png") == []
    assert owner("specs/_team.yaml") == []  # a partial two teams share is neither's
    assert not any("[" in pattern or "*" in pattern for pattern, *_ in lines)


# The outputs of earlier stages each job reads: packaging copies the export into the serve
# image and checks the evaluation of it before pushing; it reads no data, weights or tests.
READS = {"package": {"export", "evaluate"}}


def test_stage_outputs_travel_as_artifacts(built: Path) -> None:
    jobs = github(built, "full")["jobs"]
    lab = gitlab(built, "full")
    for stage in CI_STAGES:
        steps = jobs[stage.name]["steps"]
        uploads = [s["with"]["path"] for s in steps if "upload-artifact" in s.get("uses", "")]
        assert uploads == [f"runs/full/{out}/" for out in stage.outputs]
        downloads = [s["with"]["name"] for s in steps if "download-artifact" in s.get("uses", "")]
        reads = READS.get(stage.name, _upstream(stage.name))
        before = [s.name for s in STAGES if s.name in reads]
        assert downloads == [f"cvspec-full-{name}" for name in before]
        # GitLab: the job waits for every earlier stage, and downloads what it reads
        needs = {n["job"].split(":")[1]: n["artifacts"] for n in lab[f"full:{stage.name}"]["needs"]}
        assert needs == {n: n in reads for n in _upstream(stage.name)} or needs == {"check": False}
    assert jobs["data"]["steps"][-3]["run"] == 'dvc pull "$CVSPEC_DATA"'
    assert lab["full:train"]["artifacts"] == {
        "paths": ["runs/full/train/"],
        "when": "always",
        "expire_in": "2 weeks",
    }


def _upstream(name: str) -> set[str]:
    found: set[str] = set()
    todo = list(BY_NAME[name].needs)
    while todo:
        item = todo.pop()
        found.add(item)
        todo.extend(BY_NAME[item].needs)
    return found


def test_providers_choose_the_files(built: Path) -> None:
    assert not (built / ".github/workflows/cvspec-lab.yml").exists()
    assert not (built / "generated/demo/ci").exists()
    assert not (built / ".github/workflows/cvspec-none.yml").exists()
    assert not (built / "generated/none/ci").exists()
    lock = json.loads((built / "generated/demo/cvspec.lock").read_text())
    assert lock["files"][".github/workflows/cvspec-demo.yml"]["generator"] == "github"
    assert cvspec("check", cwd=built).code == 0
    workflow = built / ".github/workflows/cvspec-demo.yml"
    workflow.write_text(workflow.read_text() + "# edited\n")
    result = cvspec("check", cwd=built)
    assert result.code == 1
    assert "  tamper  .github/workflows/cvspec-demo.yml: edited by hand\n" in result.out
    workflow.write_text(workflow.read_text().removesuffix("# edited\n"))


class _Slack(BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slack() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Slack)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_failures_are_posted_to_slack_through_the_named_secret(built: Path, slack: str) -> None:
    jobs = github(built, "full")["jobs"]
    notify = jobs["notify"]
    assert notify["needs"] == [j for j in jobs if j != "notify"]
    assert notify["if"] == "failure() && github.event_name != 'pull_request'"
    assert notify["env"]["CVSPEC_SLACK_WEBHOOK"] == "${{ secrets.CV_SLACK_HOOK }}"
    assert gitlab(built, "full")["full:notify"]["variables"]["CVSPEC_SLACK_WEBHOOK"] == (
        "$CV_SLACK_HOOK"
    )
    assert "notify" not in github(built, "demo")["jobs"]  # no Slack channel in the spec
    ref = 'feat/"; $(touch pwned) `id`'
    env = {
        **os.environ,
        "CVSPEC_SLACK_WEBHOOK": slack,
        "CVSPEC_PROJECT": "full",
        "CVSPEC_REF": ref,
        "CVSPEC_RUN_URL": "https://ci/run/1",
    }
    proc = subprocess.run(
        ["bash", "-c", NOTIFY_SCRIPT], env=env, cwd=built, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(_Slack.bodies[-1]) == {
        "text": f"cvspec full: pipeline failed on {ref}: https://ci/run/1"
    }
    assert not (built / "pwned").exists()
    env["CVSPEC_SLACK_WEBHOOK"] = ""
    skipped = subprocess.run(["bash", "-c", NOTIFY_SCRIPT], env=env, capture_output=True, text=True)
    assert (skipped.returncode, skipped.stdout) == (0, "no Slack webhook configured: skipped\n")


def test_a_workflow_no_longer_asked_for_is_removed(tmp_path: Path) -> None:
    root = project(tmp_path)
    assert cvspec("build", cwd=root).code == 0
    workflow = root / ".github/workflows/cvspec-demo.yml"
    assert workflow.is_file()
    (root / "specs/demo.yaml").write_text(MINIMAL_SPEC + "ci: {providers: [gitlab]}\n")
    assert cvspec("build", cwd=root).code == 0
    assert not workflow.exists()
    assert (root / "generated/demo/ci/gitlab-ci.yml").is_file()


def test_the_check_job_fails_on_stale_output_and_logs_the_diff(tmp_path: Path) -> None:
    root = project(tmp_path, MINIMAL_SPEC + "ci: {providers: [github, gitlab]}\n")
    assert cvspec("build", cwd=root).code == 0
    scripts = [
        " && ".join(gitlab(root, "demo")["demo:check"]["script"][1:]),  # after the pip install
        github(root, "demo")["jobs"]["check"]["steps"][-1]["run"],
    ]
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "CVSPEC_SPEC": "specs/demo.yaml", "PATH": f"{bindir}:/usr/bin:/bin"}
    for script in scripts:
        ok = subprocess.run(["bash", "-ec", script], cwd=root, env=env, capture_output=True)
        assert ok.returncode == 0, ok.stdout + ok.stderr
    spec = root / "specs/demo.yaml"
    spec.write_text(spec.read_text().replace("image_size: 32", "image_size: 64"))
    for script in scripts:
        stale = subprocess.run(
            ["bash", "-ec", script], cwd=root, env=env, capture_output=True, text=True
        )
        assert stale.returncode == 1
        assert "drift  generated/demo/train/config.yaml" in stale.stdout
        assert "\n-  image_size: 32\n+  image_size: 64\n" in stale.stdout


def _scripts(root: Path, name: str) -> dict[str, str]:
    """Every shell script of a project's pipelines: GitHub `run:` steps, GitLab `script:`s."""
    found = {}
    for job, body in github(root, name)["jobs"].items():
        for i, step in enumerate(body["steps"]):
            if "run" in step:
                found[f"github {job} step {i}"] = step["run"]
    for job, body in gitlab(root, name).items():
        if isinstance(body, dict) and "script" in body:
            found[f"gitlab {job}"] = "\n".join(body["script"])
    return found


def test_every_pipeline_script_passes_shellcheck(built: Path, tmp_path: Path) -> None:
    """Spec values reach scripts only through the environment: no `${{ }}` in a script, and
    each passes shellcheck as the bash the runners use."""
    scripts = {
        f"{n} {where}": text for n in ("full", "quay") for where, text in _scripts(built, n).items()
    }
    assert len(scripts) > 10
    for where, text in scripts.items():
        assert "${{" not in text, where
        path = tmp_path / "script.sh"
        path.write_text(f"#!/bin/bash\nset -eo pipefail\n{text}\n")
        proc = subprocess.run(
            [tool("shellcheck"), "--severity=style", str(path)], capture_output=True, text=True
        )
        assert proc.returncode == 0, f"{where}:\n{text}\n{proc.stdout}"


def test_a_spec_on_several_machines_trains_on_the_pipelines_one(built: Path) -> None:
    # `cvspec run` refuses nodes > 1 (the launch file starts them), so CI trains on one machine
    profile = '${CVSPEC_PROFILE:+--profile "$CVSPEC_PROFILE"}'
    one = f"--stage train {profile} --set train.distributed.nodes=1"
    (step,) = [
        s for s in github(built, "wide")["jobs"]["train"]["steps"] if "--stage" in s.get("run", "")
    ]
    assert step["run"].endswith(one)
    assert gitlab(built, "wide")["wide:train"]["script"][-1].endswith(one)
    others = [j["script"][-1] for k, j in gitlab(built, "wide").items() if "script" in j]
    assert sum("nodes=1" in line for line in others) == 1  # only training
    dvc = load(built / "generated/wide/dvc.yaml")["stages"]
    assert dvc["train"]["cmd"].endswith(" --stage train --set train.distributed.nodes=1")
    assert [n for n, stage in dvc.items() if "--set" in stage["cmd"]] == ["train"]
    demo = [
        s for s in github(built, "demo")["jobs"]["train"]["steps"] if "--stage" in s.get("run", "")
    ]
    assert "--set" not in demo[0]["run"]


def test_detection_jobs_on_gitlab_install_the_libraries_opencv_loads(built: Path) -> None:
    pipeline = gitlab(built, "boxes")
    apt = (
        "apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 "
        "&& rm -rf /var/lib/apt/lists/*"
    )
    with_apt = sorted(k.split(":")[1] for k, j in pipeline.items() if apt in j.get("script", []))
    assert with_apt == ["evaluate", "export", "test", "train"]  # the jobs that load ultralytics
    assert all(apt not in j.get("script", []) for j in gitlab(built, "full").values())


def test_the_dvc_remote_gets_its_secrets_on_github(built: Path) -> None:
    jobs = github(built, "full")["jobs"]
    pulls = {
        n: s for n, j in jobs.items() for s in j["steps"] if s.get("run", "").startswith("dvc pull")
    }
    # the jobs that read the images (export checks its ONNX model against torch on a few)
    assert sorted(pulls) == ["data", "evaluate", "export", "test", "train"]
    for step in pulls.values():
        assert step["env"] == {
            "AWS_ACCESS_KEY_ID": "${{ secrets.AWS_ACCESS_KEY_ID }}",
            "AWS_SECRET_ACCESS_KEY": "${{ secrets.AWS_SECRET_ACCESS_KEY }}",
        }
    others = [s for j in jobs.values() for s in j["steps"] if s not in pulls.values()]
    assert not any("AWS_" in str(s) for s in others)  # only the step that needs them
    wide = github(built, "wide")["jobs"]["data"]["steps"]
    assert all("env" not in s for s in wide if s.get("run", "").startswith("dvc pull"))


def test_the_train_job_hands_on_only_what_later_jobs_read(built: Path) -> None:
    handoff = 'python -m cvspec.train.handoff "runs/$CVSPEC_PROJECT/train"'
    steps = github(built, "full")["jobs"]["train"]["steps"]
    names = [s.get("name") for s in steps]
    at = names.index("keep what later jobs read")
    assert steps[at] == {"name": "keep what later jobs read", "if": "always()", "run": handoff}
    assert names[at - 1] == "train" and names[at + 1] == "upload runs/full/train/"
    lab = gitlab(built, "full")
    assert lab["full:train"]["after_script"] == [handoff]  # after a failed script too
    others = [j for k, j in lab.items() if k != "full:train"]
    assert not any("after_script" in j for j in others)


def test_gitlab_jobs_have_githubs_timeouts_and_default_branch_runs_are_not_cancelled(
    built: Path,
) -> None:
    jobs = github(built, "full")["jobs"]
    lab = gitlab(built, "full")
    for name, job in jobs.items():
        minutes = job["timeout-minutes"]
        hours, rest = divmod(minutes, 60)
        wanted = " ".join(([f"{hours}h"] if hours else []) + ([f"{rest}m"] if rest else []))
        assert lab[f"full:{name}"]["timeout"] == wanted, name
    assert lab["full:train"]["timeout"] == "6h" and lab["full:check"]["timeout"] == "15m"
    # only a merge request's pipeline may be cancelled by a newer one (GitHub: only PRs)
    assert lab[".full:base"]["interruptible"] is True
    for key in (".full:base", "full:package", "full:notify"):
        for rule in lab[key]["rules"]:
            merge_request = rule["if"] == '$CI_PIPELINE_SOURCE == "merge_request_event"'
            assert rule.get("interruptible", True) is merge_request, (key, rule)
    pushes = [r for r in lab["full:package"]["rules"] if "CVSPEC_PUSH" in r.get("variables", {})]
    assert pushes and all(r["interruptible"] is False for r in pushes)


def test_each_projects_gitlab_notifier_follows_only_its_own_jobs(built: Path) -> None:
    """Projects' files are included into one pipeline: a notifier with `needs` and
    `when: on_failure` follows the jobs it needs, so it posts on its own project's failures."""
    lab = gitlab(built, "full")
    own = [k for k in lab if not k.startswith(".") and k != "full:notify"]
    assert len(own) == 7 and all(k.startswith("full:") for k in own)
    notify = lab["full:notify"]
    assert notify["needs"] == [{"job": job, "artifacts": False} for job in own]
    assert all(r["when"] == "on_failure" for r in notify["rules"])
    assert notify["timeout"] == "5m"


def test_reviewers_get_the_model_card_and_test_results(built: Path, tmp_path: Path) -> None:
    jobs = github(built, "full")["jobs"]
    summaries = {
        name: [s for s in job["steps"] if "GITHUB_STEP_SUMMARY" in s.get("run", "")]
        for name, job in jobs.items()
    }
    assert {n for n, s in summaries.items() if s} == {"evaluate", "test"}
    for name, what, file in (
        ("evaluate", "model card", "MODEL_CARD.md"),
        ("test", "test results", "summary.md"),
    ):
        (step,) = summaries[name]
        assert step["name"] == f"{what} to the job summary"
        assert step["if"] == "always()"  # failed gates and tests are shown too
        names = [s.get("name") for s in jobs[name]["steps"]]
        assert names.index(step["name"]) == names.index(name) + 1
        # the step, run by bash as the runner does: the stage's file, or a line saying why not
        env = {**os.environ, "CVSPEC_PROJECT": "full", "GITHUB_STEP_SUMMARY": str(tmp_path / "s")}
        target = tmp_path / f"runs/full/{name}/{file}"
        for present in (False, True):
            if present:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("| gate | measured |\n|---|---|\n| accuracy | 0.5 FAIL |\n")
            (tmp_path / "s").write_text("")
            proc = subprocess.run(["bash", "-ec", step["run"]], cwd=tmp_path, env=env)
            assert proc.returncode == 0
            shown = (tmp_path / "s").read_text()
            missing = f"No runs/full/{name}/{file}: the stage stopped before writing it.\n"
            assert shown == (target.read_text() if present else missing)
    lab = gitlab(built, "full")
    assert lab["full:test"]["artifacts"]["reports"] == {"junit": "runs/full/test/junit.xml"}
    assert lab["full:test"]["artifacts"]["when"] == "always"
    assert lab["full:evaluate"]["artifacts"]["expose_as"] == "full model card and metrics"
    assert lab["full:evaluate"]["artifacts"]["paths"] == ["runs/full/evaluate/"]
