"""The GitLab CI pipeline that runs the stage graph: jobs `<project>:<stage>`, after `check`.

The file is made to be included (`include: [{local: "generated/*/ci/gitlab-ci.yml"}]` in the
root .gitlab-ci.yml): every key it defines is a job named after the project, and it uses
GitLab's default stages, so several projects' files merge without clashing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cvspec.generate.api import Artifact, BuildContext
from cvspec.generate.builtin import ci_common as ci
from cvspec.generate.builtin.cuda import PYTHON_BASE

NAME = "gitlab"
DIND = "docker:29-dind"
PIPELINE_STAGE = {"test": "test", "package": "deploy"}  # GitLab stage; the rest: build
EVENTS = {
    "pull_request": '$CI_PIPELINE_SOURCE == "merge_request_event"',
    "push": '$CI_PIPELINE_SOURCE == "push"',
    "schedule": '$CI_PIPELINE_SOURCE == "schedule"',  # the schedule itself is set in GitLab
    "workflow_dispatch": '$CI_PIPELINE_SOURCE == "web"',
}
GLOB_SPECIAL = "*?[]{}\\"  # what GitLab's rules:changes reads as a pattern (Ruby's fnmatch)


class GitLabCIGenerator:
    """Plans generated/<project>/ci/gitlab-ci.yml when ci.providers lists gitlab."""

    name = NAME
    version = "1"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """The pipeline file, for the root .gitlab-ci.yml to include."""
        if "gitlab" in spec.ci.providers:
            yield Artifact("ci/gitlab-ci.yml", NAME, "yaml", data=pipeline(spec, ctx))


def literal(value: str) -> dict[str, Any]:
    """A variable GitLab passes on verbatim: no `$NAME` in it is expanded."""
    return {"value": value, "expand": False}


def pipeline(spec: Any, ctx: BuildContext) -> dict[str, Any]:
    """The pipeline as data (dumped as YAML, so no value can change its structure)."""
    base = f".{ctx.project}:base"
    variables: dict[str, Any] = {k: literal(v) for k, v in ci.common_env(spec, ctx).items()}
    variables.update(
        {
            "PIP_CACHE_DIR": "$CI_PROJECT_DIR/.cache/pip",
            "CVSPEC_IMAGE_TAG": "$CI_COMMIT_SHA",
            "CVSPEC_VCS_REF": "$CI_COMMIT_SHA",
            "CVSPEC_SOURCE_URL": "$CI_PROJECT_URL",
        }
    )
    out: dict[str, Any] = {
        base: {
            "image": PYTHON_BASE,
            "variables": variables,
            # a newer pipeline may cancel a merge request's; _rules keeps other runs going
            "interruptible": True,
            "rules": _rules(spec, ctx),
        }
    }
    if spec.ci.runner:
        out[base]["tags"] = [spec.ci.runner]
    for job in ci.jobs(spec, ctx):
        out[f"{ctx.project}:{job.name}"] = _job(spec, ctx, job, base)
    if ci.wants_slack(spec):
        names = [key for key in out if key != base]
        out[f"{ctx.project}:{ci.NOTIFY}"] = _notify(spec, ctx, base, names)
    return out


def timeout(minutes: int) -> str:
    """GitLab's duration for `minutes`: 6h, 1h 30m, 15m."""
    hours, rest = divmod(minutes, 60)
    return " ".join(([f"{hours}h"] if hours else []) + ([f"{rest}m"] if rest else []))


def _rules(
    spec: Any,
    ctx: BuildContext,
    on_default: dict[str, str] | None = None,
    when: str | None = None,
) -> list[dict[str, Any]]:
    """One rule per event of ci.on; `on_default` variables only for runs on the default branch.

    A merge request's or a push's pipeline holds the project's jobs only when it changes what
    they read (`changes`: in a monorepo, another project's change runs none of them); scheduled
    and manual pipelines have no changes to filter by.

    With `when` (on_failure, for the notifier) merge request pipelines are left out. Only a
    merge request's jobs are interruptible (a newer pipeline of the branch cancels them), as
    GitHub cancels only pull requests' runs: a default-branch, scheduled or manual run, which
    trains the model that ships and pushes it, runs to its end.
    """
    branch = f'$CI_COMMIT_BRANCH == "{spec.ci.default_branch}"'  # a Label: no quotes or $
    rules: list[dict[str, Any]] = []
    changes = ci.watched_globs(spec, ctx, GLOB_SPECIAL, "**/*")

    def add(condition: str, variables: dict[str, str] | None = None, changed: bool = False) -> None:
        rule: dict[str, Any] = {"if": condition}
        if changed:
            rule["changes"] = list(changes)
        if variables:
            rule["variables"] = dict(variables)
        if when:
            rule["when"] = when
        if condition != EVENTS["pull_request"]:
            rule["interruptible"] = False
        rules.append(rule)

    for event in spec.ci.on:
        condition = EVENTS[event]
        if event == "pull_request":
            if not when:
                profile = {"CVSPEC_PROFILE": "ci"} if ci.has_ci_profile(spec) else None
                add(condition, profile, changed=True)
        elif event == "push":  # like GitHub's push trigger: the default branch only
            add(f"{condition} && {branch}", on_default, changed=True)
        else:
            if on_default:
                add(f"{condition} && {branch}", on_default)
            add(condition)
    return rules


def _job(spec: Any, ctx: BuildContext, job: ci.Job, base: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "extends": base,
        "stage": PIPELINE_STAGE.get(job.name, "build"),
        # GitLab hands a job only its needs' artifacts: it needs every stage before it, and
        # downloads the outputs of those it reads.
        "needs": [
            {"job": f"{ctx.project}:{name}", "artifacts": name in job.downloads}
            for name in (job.upstream or job.needs)
        ],
        "timeout": timeout(job.timeout),
        "variables": {"CVSPEC_REQUIREMENT": literal(job.requirement)},
        # one cache per set of packages, shared by the jobs installing it
        "cache": {"key": f"cvspec-pip-py{ci.PYTHON}-{job.cache_key}", "paths": [".cache/pip"]},
    }
    if job.gpu and spec.ci.gpu_runner:
        out["tags"] = [spec.ci.gpu_runner]
    script = []
    if job.os_packages:  # what the slim image lacks (ultralytics' OpenCV loads libGL and glib)
        script.append(
            "apt-get update && apt-get install -y --no-install-recommends "
            f"{' '.join(job.os_packages)} && rm -rf /var/lib/apt/lists/*"
        )
    script.extend(job.install)
    if job.dataset:
        script.append(ci.DVC_PULL)
    script.append(job.command)
    out["script"] = script
    if job.handoff:  # after_script runs after a failed script too, before the upload
        out["after_script"] = [job.handoff]
    if job.name == "package":
        package = _package(spec, ctx)
        out["variables"].update(package.pop("variables"))
        out.update(package)
    if job.outputs:
        out["artifacts"] = {"paths": list(job.outputs), "when": "always", "expire_in": "2 weeks"}
        if job.name == "test":  # the merge request shows the test results
            out["artifacts"]["reports"] = {"junit": f"{job.outputs[0]}{ci.JUNIT}"}
        elif job.name == "evaluate":  # and links the model card, gates and metrics
            out["artifacts"]["expose_as"] = f"{ctx.project} model card and metrics"
    return out


def _package(spec: Any, ctx: BuildContext) -> dict[str, Any]:
    """Docker-in-Docker over TLS; credentials and CVSPEC_PUSH only on the default branch."""
    out: dict[str, Any] = {
        "services": [{"name": DIND, "alias": "docker"}],
        "variables": {
            "DOCKER_HOST": "tcp://docker:2376",
            "DOCKER_TLS_CERTDIR": "/certs",
            "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": "/certs/client",
        },
    }
    host = ci.push_registry(spec, ctx)
    if host is not None:
        gitlab = host == "registry.gitlab.com"
        user = "$CI_REGISTRY_USER" if gitlab else "$REGISTRY_USERNAME"
        password = "$CI_REGISTRY_PASSWORD" if gitlab else "$REGISTRY_PASSWORD"
        push = {
            "CVSPEC_PUSH": "1",
            "CVSPEC_REGISTRY_USERNAME": user,
            "CVSPEC_REGISTRY_PASSWORD": password,
        }
        out["rules"] = _rules(spec, ctx, push)
    return out


def _notify(spec: Any, ctx: BuildContext, base: str, jobs: list[str]) -> dict[str, Any]:
    """Post to Slack when one of this project's jobs fails (a job with `needs` and
    `when: on_failure` follows the jobs it needs, not the whole pipeline, which may hold other
    projects' jobs); the webhook is a CI/CD variable named in the spec."""
    secret = spec.monitor.notify.slack_webhook_secret
    return {
        "extends": base,
        "stage": ".post",
        "needs": [{"job": name, "artifacts": False} for name in jobs],
        "timeout": timeout(ci.NOTIFY_TIMEOUT),
        "rules": _rules(spec, ctx, when="on_failure"),
        "variables": {
            "CVSPEC_SLACK_WEBHOOK": f"${secret}",
            "CVSPEC_REF": "$CI_COMMIT_REF_NAME",
            "CVSPEC_RUN_URL": "$CI_PIPELINE_URL",
        },
        "script": [ci.NOTIFY_SCRIPT],
    }
