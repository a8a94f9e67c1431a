"""What the GitHub and GitLab pipelines share: one job per stage of the graph, and their steps."""

from __future__ import annotations

from typing import Any, NamedTuple

from cvspec.generate.api import BuildContext
from cvspec.generate.builtin.cuda import CPU
from cvspec.generate.builtin.train_config import data_root
from cvspec.package.images import images, plain_path, registry_host
from cvspec.run.graph import BY_NAME, STAGES, Stage, stage_dir

CHECK = "check"  # the first job: generated files match the spec
NOTIFY = "notify"
PYTHON = "3.11"
# serve is a long-running server: it is deployed, never run as a CI job.
CI_STAGES: tuple[Stage, ...] = tuple(s for s in STAGES if s.name != "serve")
# Stages that read the dataset itself (the rest read earlier stages' outputs); export runs
# the ONNX parity check on a few evaluation images.
DATASET_STAGES = frozenset({"data", "train", "export", "evaluate", "test"})
RUN_STAGE = (
    'cvspec run "$CVSPEC_SPEC" --stage {stage} ${{CVSPEC_PROFILE:+--profile "$CVSPEC_PROFILE"}}'
)
# A stale build fails the job, and its log shows the lines the spec change would generate.
CHECK_COMMAND = 'cvspec check "$CVSPEC_SPEC" || { cvspec diff "$CVSPEC_SPEC"; exit 1; }'
DVC_PULL = 'dvc pull "$CVSPEC_DATA"'
# Reads only environment variables, so no value can change what the script does.
NOTIFY_SCRIPT = (
    "python3 -c 'import json, os, urllib.request as r; e = os.environ; "
    'url = e.get("CVSPEC_SLACK_WEBHOOK", ""); '
    'text = "cvspec %s: pipeline failed on %s: %s" % '
    '(e["CVSPEC_PROJECT"], e["CVSPEC_REF"], e["CVSPEC_RUN_URL"]); '
    'body = json.dumps({"text": text}).encode(); '
    'headers = {"Content-Type": "application/json"}; '
    "r.urlopen(r.Request(url, body, headers), timeout=10) if url "
    'else print("no Slack webhook configured: skipped")\''
)


def stage_options(spec: Any, stage: str) -> tuple[str, ...]:
    """Options a pipeline (CI, DVC) adds to `cvspec run --stage STAGE`: a spec that trains on
    several machines trains on the pipeline's one machine (its gpus_per_node processes), as
    `cvspec run` refuses to start the other machines; the full run starts from launch/."""
    if stage == "train" and spec.train.distributed.nodes > 1:
        return ("--set", "train.distributed.nodes=1")
    return ()


class Job(NamedTuple):
    """One CI job: a stage of the graph (or the check), what it installs and runs."""

    name: str
    needs: tuple[str, ...]  # direct needs, as in the stage graph; roots need `check`
    upstream: tuple[str, ...]  # every stage before it whose outputs it downloads
    install: str  # pip arguments, using $CVSPEC_VERSION
    command: str
    outputs: tuple[str, ...]  # paths from the repository root it uploads
    gpu: bool  # runs on the GPU runner when the spec names one
    dataset: bool  # pulls the DVC-versioned dataset first
    os_packages: tuple[str, ...] = ()  # what a bare python image lacks (OpenCV's libGL, glib)


def upstream(stage: Stage) -> list[str]:
    """Every stage `stage` needs, directly or not, in graph order."""
    seen: set[str] = set()
    todo = list(stage.needs)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(BY_NAME[name].needs)
    return [s.name for s in STAGES if s.name in seen]


def jobs(spec: Any, ctx: BuildContext) -> list[Job]:
    """The check job, then one job per CI stage, in graph order."""
    plain_path(ctx.spec_file, "spec file")
    dvc = spec.data.versioning == "dvc"
    model_extra = "detect" if spec.task == "detection" else "train"
    found = [Job(CHECK, (), (), '"cvspec==$CVSPEC_VERSION"', CHECK_COMMAND, (), False, False)]
    for stage in CI_STAGES:
        extras = {"data": [], "package": ["ops"], "test": [model_extra]}.get(stage.name)
        extras = [model_extra] if extras is None else extras
        dataset = dvc and stage.name in DATASET_STAGES
        if dataset and "ops" not in extras:
            extras = [*extras, "ops"]
        req = f"cvspec[{','.join(extras)}]" if extras else "cvspec"
        install = f'"{req}==$CVSPEC_VERSION"' + (" pytest" if stage.name == "test" else "")
        gpu = stage.name == "train" or (
            stage.name == "evaluate" and spec.evaluate.latency.device == "cuda"
        )
        found.append(
            Job(
                stage.name,
                stage.needs or (CHECK,),
                tuple(upstream(stage)),
                install,
                " ".join([RUN_STAGE.format(stage=stage.name), *stage_options(spec, stage.name)]),
                tuple(f"{stage_dir(ctx.project, out)}/" for out in stage.outputs),
                gpu,
                dataset,
                CPU.gl_packages if model_extra == "detect" and model_extra in extras else (),
            )
        )
    return found


def common_env(spec: Any, ctx: BuildContext) -> dict[str, str]:
    """Values every job's commands read from the environment (never spliced into them)."""
    env = {
        "CVSPEC_SPEC": ctx.spec_file,
        "CVSPEC_VERSION": ctx.cvspec_version,
        "CVSPEC_PROJECT": ctx.project,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if spec.data.versioning == "dvc":
        env["CVSPEC_DATA"] = data_root(spec, ctx)
        env["DVC_NO_ANALYTICS"] = "1"
    return env


def has_ci_profile(spec: Any) -> bool:
    """True when the spec has a `ci` profile (pull requests train with it)."""
    return "ci" in spec.profiles


def push_registry(spec: Any, ctx: BuildContext) -> str | None:
    """The registry host the package job pushes to; None when images have none."""
    hosts = {registry_host(i.repository) for i in images(spec, ctx.spec_file, ctx.out_dir)}
    return None if None in hosts or len(hosts) != 1 else hosts.pop()


def wants_slack(spec: Any) -> bool:
    """True when the spec names a Slack channel (so failures are posted there)."""
    return bool(spec.monitor.notify.slack or spec.project.contacts.slack)
