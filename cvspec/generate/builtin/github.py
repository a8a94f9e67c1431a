"""The GitHub Actions workflow that runs the stage graph: one job per stage, after `check`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from cvspec.errors import CvspecError
from cvspec.generate.api import Artifact, BuildContext
from cvspec.generate.builtin import ci_common as ci
from cvspec.run.graph import BY_NAME, stage_dir

NAME = "github"
# Current majors, all on the Node 24 runtime (runners >= 2.327.1).
CHECKOUT = "actions/checkout@v7"
SETUP_PYTHON = "actions/setup-python@v7"
CACHE = "actions/cache@v5"
UPLOAD = "actions/upload-artifact@v7"
DOWNLOAD = "actions/download-artifact@v8"
# A push to the default branch (or a dispatch/schedule run on it): the only runs that publish.
ON_DEFAULT = "github.event_name != 'pull_request' && github.ref_name == env.CVSPEC_DEFAULT_BRANCH"
CRON = re.compile(r"[0-9A-Za-z*/,-]+( [0-9A-Za-z*/,-]+){4}")
OS = "${{ runner.os }}"
GLOB_SPECIAL = "*?+[]!\\"  # what GitHub's path filters read as a pattern
REPO_URL = "${{ github.server_url }}/${{ github.repository }}"


def gh_literal(value: str) -> str:
    """`value` as GitHub shows it verbatim: every `${{` becomes an expression yielding `${{`."""
    return value.replace("${{", "${{ '${{' }}")


class GitHubActionsGenerator:
    """Plans `.github/workflows/cvspec-<project>.yml` when ci.providers lists github."""

    name = NAME
    version = "1"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """The workflow, at its fixed path from the repository root."""
        if "github" not in spec.ci.providers:
            return
        yield Artifact(
            workflow_path(ctx),
            NAME,
            "yaml",
            data=workflow(spec, ctx),
            at_root=True,
        )


def workflow_path(ctx: BuildContext) -> str:
    """The workflow's path from the repository root."""
    return f".github/workflows/cvspec-{ctx.project}.yml"


def workflow(spec: Any, ctx: BuildContext) -> dict[str, Any]:
    """The workflow as data (dumped as YAML, so no value can change its structure)."""
    env = {k: gh_literal(v) for k, v in ci.common_env(spec, ctx).items()}
    env["CVSPEC_DEFAULT_BRANCH"] = spec.ci.default_branch
    if ci.has_ci_profile(spec):
        env["CVSPEC_PROFILE"] = "${{ github.event_name == 'pull_request' && 'ci' || '' }}"
    env["CVSPEC_IMAGE_TAG"] = "${{ github.sha }}"
    env["CVSPEC_VCS_REF"] = "${{ github.sha }}"
    env["CVSPEC_SOURCE_URL"] = REPO_URL
    jobs = {job.name: _job(spec, ctx, job) for job in ci.jobs(spec, ctx)}
    if ci.wants_slack(spec):
        jobs[ci.NOTIFY] = _notify(spec, list(jobs))
    return {
        "name": f"cvspec {ctx.project}",
        "on": _triggers(spec, ctx),
        "permissions": {"contents": "read"},
        "concurrency": {
            "group": f"cvspec-{ctx.project}-${{{{ github.ref }}}}",
            "cancel-in-progress": "${{ github.event_name == 'pull_request' }}",
        },
        "defaults": {"run": {"shell": "bash"}},
        "env": env,
        "jobs": jobs,
    }


def _triggers(spec: Any, ctx: BuildContext) -> dict[str, Any]:
    # pull requests and pushes run the workflow only when they change what it reads (in a
    # monorepo, another project's change runs none of this one's jobs); schedule and dispatch
    # runs have no changes to filter by
    paths = ci.watched_globs(spec, ctx, GLOB_SPECIAL, "**")
    paths.append(workflow_path(ctx))
    on: dict[str, Any] = {}
    for event in spec.ci.on:
        if event == "push":
            on["push"] = {"branches": [spec.ci.default_branch], "paths": list(paths)}
        elif event == "pull_request":
            on["pull_request"] = {"paths": list(paths)}
        elif event == "schedule":
            if not CRON.fullmatch(spec.ci.cron):
                raise CvspecError(
                    f"{ctx.spec_file}: ci.cron '{spec.ci.cron}' is not a schedule GitHub "
                    "accepts: five fields of digits, names, '*', ',', '-' and '/'"
                )
            on["schedule"] = [{"cron": spec.ci.cron}]
        else:
            on[event] = {}
    return on


def _runner(spec: Any, gpu: bool) -> str:
    if gpu and spec.ci.gpu_runner:
        return str(spec.ci.gpu_runner)
    return str(spec.ci.runner or "ubuntu-latest")


def _job(spec: Any, ctx: BuildContext, job: ci.Job) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if job.needs:
        out["needs"] = list(job.needs)
    out["runs-on"] = _runner(spec, job.gpu)
    out["timeout-minutes"] = job.timeout
    host = ci.push_registry(spec, ctx) if job.name == "package" else None
    if host == "ghcr.io":
        out["permissions"] = {"contents": "read", "packages": "write"}
    key = f"cvspec-pip-{OS}-py{ci.PYTHON}-{job.cache_key}"
    steps: list[dict[str, Any]] = [
        {"uses": CHECKOUT, "with": {"persist-credentials": False}},
        {"uses": SETUP_PYTHON, "with": {"python-version": ci.PYTHON}},
        {  # one cache per set of packages, shared by the jobs installing it
            "name": "pip cache",
            "uses": CACHE,
            "with": {
                "path": "~/.cache/pip",
                "key": key,
                "restore-keys": key.rsplit("-", 1)[0] + "-",
            },
        },
    ]
    for name in job.downloads:
        steps.append(_download(ctx, name))
    steps.append(
        {
            "name": "install cvspec",
            "env": {"CVSPEC_REQUIREMENT": gh_literal(job.requirement)},
            "run": "\n".join(job.install),
        }
    )
    if job.dataset:
        pull: dict[str, Any] = {"name": "pull the dataset", "run": ci.DVC_PULL}
        if spec.data.remote_secrets:  # GitHub hands a step only the secrets named in it
            pull["env"] = {name: f"${{{{ secrets.{name} }}}}" for name in spec.data.remote_secrets}
        steps.append(pull)
    if job.name == "package" and host is not None:
        steps.extend(_package_steps(host, job))
    else:
        steps.append({"name": job.name, "run": job.command})
    if job.handoff:
        steps.append({"name": "keep what later jobs read", "if": "always()", "run": job.handoff})
    if job.name in ci.SUMMARY:  # a reviewer's view of the run, failed gates and tests included
        what = ci.SUMMARY[job.name][1]
        steps.append(
            {"name": f"{what} to the job summary", "if": "always()", "run": ci.summary(job.name)}
        )
    for path in job.outputs:
        steps.append(
            {
                "name": f"upload {path}",
                "if": "always()",
                "uses": UPLOAD,
                "with": {
                    "name": f"cvspec-{ctx.project}-{job.name}",
                    "path": path,
                    "if-no-files-found": "warn",
                },
            }
        )
    out["steps"] = steps
    return out


def _download(ctx: BuildContext, stage: str) -> dict[str, Any]:
    outputs = BY_NAME[stage].outputs
    return {
        "name": f"download the {stage} outputs",
        "uses": DOWNLOAD,
        "with": {
            "name": f"cvspec-{ctx.project}-{stage}",
            "path": stage_dir(ctx.project, outputs[0]) if len(outputs) == 1 else "runs",
        },
    }


def _package_steps(host: str, job: ci.Job) -> list[dict[str, Any]]:
    """Build everywhere; log in and push only on the default branch, credentials by name."""
    if host == "ghcr.io":
        user, password = "${{ github.actor }}", "${{ secrets.GITHUB_TOKEN }}"
    else:
        user, password = "${{ secrets.REGISTRY_USERNAME }}", "${{ secrets.REGISTRY_PASSWORD }}"
    return [
        {"name": "build images", "if": f"!({ON_DEFAULT})", "run": job.command},
        {
            "name": "build and push images",
            "if": ON_DEFAULT,
            "env": {
                "CVSPEC_PUSH": "1",
                "CVSPEC_REGISTRY_USERNAME": user,
                "CVSPEC_REGISTRY_PASSWORD": password,
            },
            "run": job.command,
        },
    ]


def _notify(spec: Any, needs: list[str]) -> dict[str, Any]:
    """Post to Slack when a run outside pull requests fails; the webhook is a named secret."""
    secret = spec.monitor.notify.slack_webhook_secret
    return {
        "needs": needs,
        "if": "failure() && github.event_name != 'pull_request'",
        "runs-on": _runner(spec, False),
        "timeout-minutes": ci.NOTIFY_TIMEOUT,
        "permissions": {},
        "env": {
            "CVSPEC_SLACK_WEBHOOK": f"${{{{ secrets.{secret} }}}}",
            "CVSPEC_REF": "${{ github.ref_name }}",
            "CVSPEC_RUN_URL": f"{REPO_URL}/actions/runs/${{{{ github.run_id }}}}",
        },
        "steps": [{"name": "post to Slack", "run": ci.NOTIFY_SCRIPT}],
    }
