"""What the GitHub and GitLab pipelines share: one job per stage of the graph, and their steps."""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

from cvspec.generate.api import BuildContext
from cvspec.generate.builtin.cuda import CPU, TorchBuild, torch_build
from cvspec.generate.builtin.train_config import data_root, from_root
from cvspec.package.images import (
    cvspec_requirement,
    images,
    needs_git,
    plain_path,
    registry_host,
)
from cvspec.run.graph import BY_NAME, STAGES, Stage, stage_dir

CHECK = "check"  # the first job: generated files match the spec
NOTIFY = "notify"
PYTHON = "3.11"
# serve is a long-running server: it is deployed, never run as a CI job.
CI_STAGES: tuple[Stage, ...] = tuple(s for s in STAGES if s.name != "serve")
# Stages that read the dataset itself (the rest read earlier stages' outputs); export runs
# the ONNX parity check on a few evaluation images.
DATASET_STAGES = frozenset({"data", "train", "export", "evaluate", "test"})
# Earlier stages whose outputs a job reads, where not all of them: packaging copies the export
# into the serve image and, before pushing, checks the evaluation of that export.
READS = {"package": ("export", "evaluate")}
# The dvc requirement of cvspec's `ops` extra; a job that pulls adds the remote's plugin.
DVC = "dvc>=3.50"
# Minutes a job may run (GitHub's timeout-minutes, GitLab's timeout); the rest: DEFAULT_TIMEOUT.
TIMEOUT = {"check": 15, "train": 360}
DEFAULT_TIMEOUT = 60
NOTIFY_TIMEOUT = 5
# After training, CI keeps of runs/<p>/train what later jobs read (the chosen run's best
# checkpoint, and every run's metadata): the other checkpoints would make the artifact large.
HANDOFF = 'python -m cvspec.train.handoff "runs/$CVSPEC_PROJECT/train"'
# What a job shows a reviewer (GitHub's job summary): a file of its stage's output.
SUMMARY = {"evaluate": ("MODEL_CARD.md", "model card"), "test": ("summary.md", "test results")}
JUNIT = "junit.xml"  # the test stage's report (GitLab shows it in the merge request)
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


def summary(stage: str) -> str:
    """Shell lines appending the stage's summary file to $GITHUB_STEP_SUMMARY (stdout where that
    is unset: outside GitHub), or saying that the stage stopped before writing it."""
    return (
        f'summary="runs/$CVSPEC_PROJECT/{stage}/{SUMMARY[stage][0]}"\n'
        'if [ -f "$summary" ]; then cat "$summary"; '
        'else echo "No $summary: the stage stopped before writing it."; '
        'fi >> "${GITHUB_STEP_SUMMARY:-/dev/stdout}"'
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
    upstream: tuple[str, ...]  # every stage before it (GitLab: the jobs it waits for)
    downloads: tuple[str, ...]  # the stages of `upstream` whose outputs it reads
    extras: tuple[str, ...]  # cvspec's extras it installs
    requirement: str  # pip requirement for cvspec with those extras ($CVSPEC_REQUIREMENT)
    install: tuple[str, ...]  # shell lines that install it, reading $CVSPEC_REQUIREMENT
    command: str
    outputs: tuple[str, ...]  # paths from the repository root it uploads
    gpu: bool  # runs on the GPU runner when the spec names one
    dataset: bool  # pulls the DVC-versioned dataset first
    # what a bare python image lacks: OpenCV's libGL and glib, git for a git+ requirement
    os_packages: tuple[str, ...] = ()
    torch: str = ""  # the torch build it installs: "" (none), "cpu" or "cu130"...
    timeout: int = DEFAULT_TIMEOUT  # minutes
    handoff: str = ""  # what runs after the stage (even a failed one), before the upload

    @property
    def cache_key(self) -> str:
        """Names pip's cache: the same for jobs that install the same, and new whenever what
        they install changes; `<extras>-<torch>-` is the prefix of every key of that set."""
        label = "-".join([*self.extras, self.torch] if self.torch else self.extras) or "core"
        text = "\n".join([self.requirement, *self.install])
        return f"{label}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


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


def torch_for(spec: Any, on_gpu: bool) -> TorchBuild:
    """The torch build a job installs: the train image's CPU wheels, or on a GPU runner the
    CUDA wheels of deploy.cuda (PyTorch's stable CUDA line when the spec builds no GPU image)."""
    return torch_build(True, spec.deploy.cuda) if on_gpu else CPU


def install_lines(
    torch: TorchBuild | None, dvc_remote: str | None, ort_gpu: str | None
) -> tuple[str, ...]:
    """Shell lines installing a job's packages: torch first, from the index and with the pins
    of the train image (so cvspec's `torch>=` is met by them, not by PyPI's CUDA build), then
    cvspec ($CVSPEC_REQUIREMENT) and, for a job that pulls data, dvc with the remote's plugin."""
    lines = []
    if torch is not None:
        lines.append(
            f"python -m pip install --index-url {torch.index_url} "
            f"torch=={torch.torch} torchvision=={torch.torchvision}"
        )
    packages = ['"$CVSPEC_REQUIREMENT"']
    if dvc_remote is not None:
        plugin = "" if dvc_remote in ("local", "http", "") else f"[{dvc_remote}]"
        packages.append(f'"dvc{plugin}{DVC.removeprefix("dvc")}"')
    lines.append(f"python -m pip install {' '.join(packages)}")
    if ort_gpu:  # onnxruntime's CUDA build replaces the CPU one (one package name for both)
        lines.append(
            f'python -m pip uninstall --yes onnxruntime && python -m pip install "{ort_gpu}"'
        )
    return tuple(lines)


def jobs(spec: Any, ctx: BuildContext) -> list[Job]:
    """The check job, then one job per CI stage, in graph order."""
    plain_path(ctx.spec_file, "spec file")
    dvc = spec.data.versioning == "dvc"
    remote = str(spec.ci.dvc_remote or "")
    model_extra = "detect" if spec.task == "detection" else "train"
    check_req = cvspec_requirement(spec, ctx.cvspec_version)
    git = ("git",) if needs_git(check_req) else ()  # pip fetches cvspec with git
    found = [
        Job(
            CHECK,
            (),
            (),
            (),
            (),
            check_req,
            install_lines(None, None, None),
            CHECK_COMMAND,
            (),
            False,
            False,
            git,
            timeout=TIMEOUT[CHECK],
        )
    ]
    for stage in CI_STAGES:
        extras = {"data": [], "package": ["ops"], "test": [model_extra]}.get(stage.name)
        extras = [model_extra] if extras is None else extras
        dataset = dvc and stage.name in DATASET_STAGES
        gpu = stage.name == "train" or (
            stage.name == "evaluate" and spec.evaluate.latency.device == "cuda"
        )
        on_gpu = gpu and bool(spec.ci.gpu_runner)
        torch = torch_for(spec, on_gpu) if model_extra in extras else None
        ort_gpu = None
        if torch is not None and on_gpu and stage.name == "evaluate":
            ort_gpu = torch.onnxruntime_gpu  # the latency gate is timed on CUDA
        before = tuple(upstream(stage))
        found.append(
            Job(
                stage.name,
                stage.needs or (CHECK,),
                before,
                tuple(s for s in before if s in READS.get(stage.name, before)),
                tuple(extras),
                cvspec_requirement(spec, ctx.cvspec_version, extras),
                install_lines(torch, remote if dataset else None, ort_gpu),
                " ".join([RUN_STAGE.format(stage=stage.name), *stage_options(spec, stage.name)]),
                tuple(f"{stage_dir(ctx.project, out)}/" for out in stage.outputs),
                gpu,
                dataset,
                (CPU.gl_packages if model_extra == "detect" and model_extra in extras else ())
                + git,
                torch="" if torch is None else _torch_tag(torch),
                timeout=TIMEOUT.get(stage.name, DEFAULT_TIMEOUT),
                handoff=HANDOFF if stage.name == "train" else "",
            )
        )
    return found


def _torch_tag(build: TorchBuild) -> str:
    """cpu, or cuXYZ: the wheel index's own name for the build."""
    return build.index_url.rsplit("/", 1)[-1]


def common_env(spec: Any, ctx: BuildContext) -> dict[str, str]:
    """Values every job's commands read from the environment (never spliced into them)."""
    env = {
        "CVSPEC_SPEC": ctx.spec_file,
        "CVSPEC_PROJECT": ctx.project,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONUNBUFFERED": "1",
    }
    if spec.data.versioning == "dvc":
        env["CVSPEC_DATA"] = data_root(spec, ctx)
        env["DVC_NO_ANALYTICS"] = "1"
    return env


def watched(spec: Any, ctx: BuildContext) -> list[tuple[str, bool]]:
    """What the project's pipeline reads from the repository, as (path from the root, is a
    folder): the spec and every file it extends, its generated folder, its data (and the data's
    `.dvc` file), its start weights and its templates. A pull request or push that changes none
    of them runs none of its jobs, so in a monorepo each project's pipeline runs for its own
    changes only. A path outside the repository is left out: no commit changes it; one with a
    `$` (GitLab expands variables in `rules:changes`, GitHub reads `${{` as an expression) is
    watched as the folder above it, the repository itself when that is all there is."""
    found = [(path, False) for path in ctx.spec_inputs] + [(ctx.out_dir, True)]
    data = data_root(spec, ctx)
    found.append((data, True))
    if spec.data.versioning == "dvc":
        found.append((f"{data}.dvc", False))
    if spec.model.weights:
        found.append((from_root(str(spec.model.weights), ctx), False))
    if spec.templates:
        found.append((from_root(str(spec.templates), ctx), True))
    inside = []
    for path, folder in found:
        if path.startswith("/") or path.split("/")[0] == "..":
            continue
        if "$" in path:
            path, folder = path[: path.index("$")].rpartition("/")[0], True
        if (path, folder) not in inside:
            inside.append((path, folder))
    return inside


def watched_globs(spec: Any, ctx: BuildContext, special: str, everything: str) -> list[str]:
    """`watched` as a provider's path patterns: each of `special` escaped by a backslash, and a
    folder followed by `everything`, the provider's pattern for every file under it."""
    globs = []
    for path, folder in watched(spec, ctx):
        literal = "".join(f"\\{c}" if c in special else c for c in path)
        globs.append(f"{literal}/{everything}" if folder and literal else literal or everything)
    return globs


def has_ci_profile(spec: Any) -> bool:
    """True when the spec has a `ci` profile (pull requests train with it)."""
    return "ci" in spec.profiles


def push_registry(spec: Any, ctx: BuildContext) -> str | None:
    """The registry host the package job pushes to; None when images have none."""
    hosts = {
        registry_host(i.repository)
        for i in images(spec, ctx.spec_file, ctx.out_dir, ctx.spec_inputs)
    }
    return None if None in hosts or len(hosts) != 1 else hosts.pop()


def wants_slack(spec: Any) -> bool:
    """True when the spec names a Slack channel (so failures are posted there)."""
    return bool(spec.monitor.notify.slack or spec.project.contacts.slack)
