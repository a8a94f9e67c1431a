"""Training on several processes: launch files per engine, and real torchrun on the CPU (gloo)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import MINIMAL_SPEC, cvspec, project, tool
from test_train import TINY_SPEC, current_run, tiny_project

from cvspec.train.data import EpochSampler

DISTRIBUTED = MINIMAL_SPEC + "train:\n  batch_size: 32\n  distributed: {ENGINE}\n"


def build(tmp_path: Path, engine: str, extra: str = "") -> Path:
    root = project(tmp_path, DISTRIBUTED.replace("ENGINE", engine) + extra)
    result = cvspec("build", cwd=root)
    assert result.code == 0, result.err
    return root / "generated/demo/launch"


@pytest.mark.parametrize(
    ("engine", "name"),
    [("torchrun", "torchrun.sh"), ("slurm", "train.sbatch")],
)
def test_shell_launchers_pass_shellcheck(tmp_path: Path, engine: str, name: str) -> None:
    launch = build(tmp_path, f"engine: {engine}, nodes: 2, gpus_per_node: 4")
    script = launch / name
    checked = subprocess.run(
        [tool("shellcheck"), "--severity=style", str(script)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout
    text = script.read_text()
    assert "--nnodes=2" in text or "--nodes=2" in text
    assert "--nproc-per-node=4" in text
    assert "-m cvspec.train --config-dir generated/demo/train" in text
    assert sorted(p.name for p in launch.iterdir()) == [name]
    assert "--gpus-per-node" not in text  # deploy.gpu is off: a CPU partition must take it
    # each process resumes from (or reuses) the run it finds under runs/: one folder for all
    assert (
        "runs/ must be one folder shared" in text
        or "runs/ on a file system all nodes share" in text
    )


def test_slurm_asks_for_gpus_only_when_the_image_uses_them(tmp_path: Path) -> None:
    spec = "engine: slurm, nodes: 2, gpus_per_node: 4"
    text = (build(tmp_path, spec, "deploy: {gpu: true}\n") / "train.sbatch").read_text()
    assert "#SBATCH --gpus-per-node=4\n" in text and "one per GPU" in text


def test_kubernetes_gets_a_pytorchjob(tmp_path: Path) -> None:
    launch = build(
        tmp_path, "engine: kubernetes, nodes: 4, gpus_per_node: 2", "deploy: {gpu: true}\n"
    )
    text = (launch / "pytorchjob.yaml").read_text()
    assert "&" not in text and "*" not in text  # no YAML aliases: each pod spelled out
    # no registry: CI pushes nothing, and the pods would pull from Docker Hub
    assert "names no registry host" in (launch / "pytorchjob.sh").read_text()
    job = yaml.safe_load(text)
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] == 3
    # pods restart on failure (a preempted node resumes), but not for ever (a broken config)
    assert job["spec"]["runPolicy"] == {"cleanPodPolicy": "None", "backoffLimit": 6}
    assert {r["restartPolicy"] for r in replicas.values()} == {"OnFailure"}
    (container,) = replicas["Worker"]["template"]["spec"]["containers"]
    # the tag pytorchjob.sh fills in (the commit's SHA), never latest
    assert container["name"] == "pytorch"
    assert container["image"] == "demo-train:${CVSPEC_IMAGE_TAG}"
    assert container["imagePullPolicy"] == "IfNotPresent"
    # 2 GPUs x (4 workers + 1) CPUs; 2 GiB a CPU plus the shm, 2 x 4 x 512 MiB
    share = {"cpu": 10, "memory": "24Gi"}
    assert container["resources"] == {
        "requests": share,
        "limits": {**share, "nvidia.com/gpu": 2},
    }
    argv = container["command"] + container["args"]
    assert argv[:3] == ["python", "-m", "torch.distributed.run"]
    assert "--rdzv-endpoint=$(MASTER_ADDR):$(MASTER_PORT)" in argv
    assert argv[-3:] == ["cvspec.train", "--config-dir", "generated/demo/train"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["data"] == "/app/data/demo" and mounts["runs"] == "/app/runs"
    for role in ("Master", "Worker"):  # the image's user, and a runs volume it can write
        assert replicas[role]["template"]["spec"]["securityContext"] == {
            "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
            "fsGroupChangePolicy": "OnRootMismatch", "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        }  # fmt: skip
        claims = {
            v["name"]: v.get("persistentVolumeClaim")
            for v in replicas[role]["template"]["spec"]["volumes"]
        }
        assert claims["data"] == {"claimName": "demo-data", "readOnly": True}
        assert claims["runs"] == {"claimName": "demo-runs"}
    dockerfile = (launch.parent / "docker/Dockerfile.train").read_text()
    assert "USER 10001:10001\n" in dockerfile


def test_engine_none_makes_no_launch_files(tmp_path: Path) -> None:
    root = project(tmp_path)
    assert cvspec("build", cwd=root).code == 0
    assert not (root / "generated/demo/launch").exists()


def test_shards_cover_the_epoch_once_with_equal_lengths() -> None:
    for size, world in ((10, 3), (9, 3), (2, 4)):
        shards = [list(EpochSampler(size, 0, True, rank, world)) for rank in range(world)]
        assert len({len(s) for s in shards}) == 1  # same steps on every process
        seen = [i for shard in shards for _, i in shard]
        assert set(seen) == set(range(size)) and len(seen) == len(shards[0]) * world
        plain = [list(EpochSampler(size, 0, False, rank, world)) for rank in range(world)]
        assert sorted(i for shard in plain for _, i in shard) == list(range(size))


DDP_SPEC = TINY_SPEC + "  distributed: {engine: torchrun, gpus_per_node: 2}\n"


def test_cvspec_run_trains_on_two_processes(tmp_path: Path) -> None:
    # two machines in the spec: `cvspec run` refuses, and CI trains on its one machine
    root = tiny_project(
        tmp_path, DDP_SPEC.replace("gpus_per_node: 2", "nodes: 2, gpus_per_node: 2")
    )
    refused = cvspec("run", "specs/tiny.yaml", "--stage", "train", cwd=root, timeout=300)
    assert refused.code == 2 and "generated/tiny/launch/torchrun.sh" in refused.err
    workflow = yaml.safe_load((root / ".github/workflows/cvspec-tiny.yml").read_text())
    (command,) = [
        s["run"] for s in workflow["jobs"]["train"]["steps"] if "--stage" in s.get("run", "")
    ]
    assert command.endswith(" --set train.distributed.nodes=1")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"TMPDIR": str(scratch)}
    one_machine = ("--set", "train.distributed.nodes=1")
    one_process = ("--set", "train.distributed={engine: none, nodes: 1, gpus_per_node: 1}")
    alone = cvspec(
        "run", "specs/tiny.yaml", "--stage", "train", *one_process, cwd=root, timeout=300
    )
    assert alone.code == 0, alone.err[-3000:]
    single = current_run(root)
    result = cvspec(
        "run", "specs/tiny.yaml", "--stage", "train", *one_machine, cwd=root, timeout=300, env=env
    )
    assert result.code == 0, result.err[-3000:]
    assert not list(scratch.glob("torchelastic_*"))  # torchrun's logs stay with the runs
    run = current_run(root)
    assert run != single  # two processes train another model than one: not a reuse of it
    assert f"): trained (2 processes) run {run.name}: " in result.err  # the stage's summary
    again = cvspec(
        "run", "specs/tiny.yaml", "--stage", "train", *one_machine, cwd=root, timeout=300
    )
    assert again.code == 0, again.err[-3000:]
    assert f"): reused run {run.name}: " in again.err and "trained" not in again.err
    assert current_run(root) == run
    assert list((run.parent / "torchrun").glob("*/attempt_0"))
    status = json.loads((run / "run.json").read_text())
    assert status["state"] == "done" and status["processes"] == 2
    assert sorted(run.parent.glob("*/run.json")) == sorted(
        [run / "run.json", single / "run.json"]
    )  # one run of two processes: rank 0's
    rows = (run / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2 and json.loads(rows[-1])["val_accuracy"] > 0.5
    import torch

    weights = torch.load(run / "checkpoints/best.pt", weights_only=False)["model"]
    assert not any(k.startswith("module.") for k in weights)  # the bare model's, not DDP's
    exported = cvspec(
        "run", "specs/tiny.yaml", "--stage", "export", *one_machine, cwd=root, timeout=300
    )
    assert exported.code == 0, exported.err[-3000:]


def test_the_stage_summary_says_what_the_processes_did(tmp_path: Path) -> None:
    from cvspec.train.runs import RunDir, set_current
    from cvspec.train.stage import launched_note

    run = RunDir(tmp_path / "0123456789ab")
    for note, said in (
        ("trained", "trained (2 processes)"),
        ("resumed at epoch 3", "resumed at epoch 3 (2 processes)"),  # after a Ctrl-C
        ("reused", "reused"),  # a run finished before: nothing trained now
    ):
        set_current(tmp_path, run, "classification", note)  # as rank 0 leaves it
        assert launched_note(tmp_path, 2) == said


def test_generated_torchrun_script_runs(tmp_path: Path) -> None:
    root = tiny_project(tmp_path, DDP_SPEC)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # the venv's python
    env = {**os.environ, "PATH": path, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    env["TMPDIR"] = str(tmp_path)  # torchrun's default log folder is a new one in the temp dir
    env.pop("CVSPEC_DEBUG", None)
    done = subprocess.run(
        ["bash", "tiny/launch/torchrun.sh", "train.epochs=1"],
        cwd=tmp_path / "generated",  # the script finds the repository root itself
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = current_run(root)
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1


def test_slurm_script_gives_its_task_the_cpus_it_asked_for(tmp_path: Path) -> None:
    """The batch script run as Slurm runs it, with scontrol and srun stand-ins that record
    their call: since Slurm 22.05 srun inherits no --cpus-per-task from sbatch, so the step must
    ask again or torchrun's processes and their data loaders share one CPU."""
    spec = "engine: slurm, nodes: 2, gpus_per_node: 4"
    script = build(tmp_path, spec, "deploy: {gpu: true}\n") / "train.sbatch"
    assert "#SBATCH --cpus-per-task=20\n" in script.read_text()  # 4 x (4 workers + 1)
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "scontrol").write_text("#!/bin/sh\nprintf 'gpu-a\\ngpu-b\\n'\n")
    (stubs / "srun").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/srun.args\n')
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    env = {
        "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}",
        "SLURM_JOB_NODELIST": "gpu-[a-b]",
        "SLURM_NNODES": "2",
        "SLURM_JOB_ID": "4242",
        "SLURM_CPUS_PER_TASK": "20",
    }
    done = subprocess.run(
        ["bash", str(script), "train.epochs=3"],
        cwd=script.parents[3],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    argv = (tmp_path / "srun.args").read_text().splitlines()
    assert argv[: argv.index("python")] == ["--kill-on-bad-exit=1", "--cpus-per-task=20"]
    # a port of its own (29500 + job id % 1000): another job on gpu-a meets elsewhere
    assert "--rdzv-endpoint=gpu-a:29742" in argv and "--rdzv-id=4242" in argv
    assert argv[-4:] == ["cvspec.train", "--config-dir", "generated/demo/train", "train.epochs=3"]


DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")  # RFC 1035, as Services need
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def test_pytorchjob_names_are_kubernetes_names(tmp_path: Path) -> None:
    """A project name may hold '_' and 63 characters; the job, its claims and the Services the
    training operator names after the job (<job>-master-0, <job>-worker-<i>) must be DNS names
    the API server takes (apimachinery's IsDNS1123Subdomain and IsDNS1035Label)."""
    name = "vision_" + "x" * 56
    spec = DISTRIBUTED.replace("ENGINE", "engine: kubernetes, nodes: 16, gpus_per_node: 2")
    root = project(tmp_path, spec.replace("{name: demo}", f"{{name: {name}}}"))
    result = cvspec("build", cwd=root)
    assert result.code == 0, result.err
    job = yaml.safe_load((root / f"generated/{name}/launch/pytorchjob.yaml").read_text())
    job_name = job["metadata"]["name"]
    assert job_name.startswith("vision-xxx") and DNS_SUBDOMAIN.fullmatch(job_name)
    replicas = job["spec"]["pytorchReplicaSpecs"]
    services = [f"{job_name}-master-0"]
    services += [f"{job_name}-worker-{i}" for i in range(replicas["Worker"]["replicas"])]
    assert len(services) == 16 and all(DNS_LABEL.fullmatch(s) for s in services), services
    for role in ("Master", "Worker"):
        for volume in replicas[role]["template"]["spec"]["volumes"]:
            claim = volume.get("persistentVolumeClaim")
            if claim:
                assert DNS_SUBDOMAIN.fullmatch(claim["claimName"]), claim
                assert claim["claimName"] == f"vision-{'x' * 56}-{volume['name']}"


# apimachinery's resource.Quantity: a number, then a binary (Ki..Ei) or decimal suffix
QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?")


def _pods(job: dict[str, object]) -> list[dict[str, Any]]:
    replicas: dict[str, Any] = job["spec"]["pytorchReplicaSpecs"]  # type: ignore[index]
    return [r["template"]["spec"] for r in replicas.values()]


def test_pytorchjob_pods_get_the_shared_memory_and_the_share_they_ask_for(tmp_path: Path) -> None:
    """Kubernetes' /dev/shm is 64 MB: data loader workers die on a bus error without a bigger
    one; the pods ask for CPUs and memory (requests = limits), and Slurm asks for the same."""
    spec, workers = "engine: kubernetes, nodes: 2, gpus_per_node: 4", "  workers: 6\n"
    job = yaml.safe_load(
        (build(tmp_path / "default", spec, workers) / "pytorchjob.yaml").read_text()
    )
    for pod in _pods(job):
        (container,) = pod["containers"]
        assert "/dev/shm" in {m["mountPath"] for m in container["volumeMounts"]}
        (shm,) = [v for v in pod["volumes"] if v["name"] == "shm"]
        assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "12Gi"}  # 4 x 6 x 512Mi
        share = {"cpu": 28, "memory": "68Gi"}  # 4 x 7 CPUs, 2 GiB each, plus the shm
        assert container["resources"] == {"requests": share, "limits": share}  # no deploy.gpu
    asked = (
        "engine: ENGINE, nodes: 2, gpus_per_node: 4, cpus_per_node: 32, "
        "memory_per_node: 200Gi, shm_size: 16GiB"
    )
    job = yaml.safe_load(
        (
            build(tmp_path / "k8s", asked.replace("ENGINE", "kubernetes")) / "pytorchjob.yaml"
        ).read_text()
    )
    for pod in _pods(job):
        (container,) = pod["containers"]
        share = {"cpu": 32, "memory": "200Gi"}
        assert container["resources"] == {"requests": share, "limits": share}
        (shm,) = [v for v in pod["volumes"] if v["name"] == "shm"]
        assert shm["emptyDir"]["sizeLimit"] == "16Gi"
    odd = "engine: kubernetes, memory_per_node: 10.5GB, shm_size: 1500MB"
    job = yaml.safe_load((build(tmp_path / "odd", odd) / "pytorchjob.yaml").read_text())
    for pod in _pods(job):
        (container,) = pod["containers"]
        (shm,) = [v for v in pod["volumes"] if v["name"] == "shm"]
        sizes = [shm["emptyDir"]["sizeLimit"], *container["resources"]["limits"].values()]
        assert sizes == ["1500000000", 5, "10500000000"], sizes
        assert all(QUANTITY.fullmatch(str(q)) for q in sizes)  # as the API server parses them
    sbatch = build(tmp_path / "slurm", asked.replace("ENGINE", "slurm")) / "train.sbatch"
    text = sbatch.read_text()
    assert "#SBATCH --cpus-per-task=32\n" in text and "#SBATCH --mem=200G\n" in text
    default = build(tmp_path / "slurm-default", spec.replace("kubernetes", "slurm"), workers)
    text = (default / "train.sbatch").read_text()
    assert "#SBATCH --cpus-per-task=28\n" in text and "#SBATCH --mem=68G\n" in text


def test_pytorchjob_pods_pass_the_restricted_pod_security_standard(tmp_path: Path) -> None:
    """A namespace enforcing `restricted` refuses pods without these (the API server's
    PodSecurity admission): non-root, no privilege escalation, no capabilities, seccomp."""
    job = yaml.safe_load(
        (build(tmp_path, "engine: kubernetes, nodes: 2") / "pytorchjob.yaml").read_text()
    )
    for pod in _pods(job):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        (container,) = pod["containers"]
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }
        kinds = {k for v in pod["volumes"] for k in v if k != "name"}
        assert kinds <= {"persistentVolumeClaim", "emptyDir"}  # no hostPath
        assert pod["automountServiceAccountToken"] is False  # no Kubernetes API credentials


def _git(root: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
    }
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    done = subprocess.run(["git", *args], cwd=root, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_pytorchjob_launches_the_image_of_the_checked_out_commit(tmp_path: Path) -> None:
    """pytorchjob.sh creates the job with the image CI pushed for this commit (tag: its SHA),
    with kubectl a stand-in that records what it was given; it refuses `latest` and a checkout
    whose changes that image does not hold."""
    launch = build(tmp_path, "engine: kubernetes, nodes: 2", "deploy: {registry: ghcr.io/acme}\n")
    root = launch.parents[2]
    script = launch / "pytorchjob.sh"
    checked = subprocess.run(
        [tool("shellcheck"), "--severity=style", str(script)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout
    assert "bash generated/demo/launch/pytorchjob.sh" in (launch / "pytorchjob.yaml").read_text()
    assert "names no registry host" not in script.read_text()
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "train")
    sha = _git(root, "rev-parse", "HEAD")
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "kubectl").write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/kubectl.args\ncat > {tmp_path}/job.yaml\n'
    )
    (stubs / "kubectl").chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}"}
    env.pop("CVSPEC_IMAGE_TAG", None)

    def launch_job(**extra: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "job.yaml").unlink(missing_ok=True)
        return subprocess.run(
            ["bash", str(script), "--namespace", "ml"],
            cwd=tmp_path,  # the script finds the repository root itself
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = launch_job()
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "kubectl.args").read_text().split() == [
        "create",
        "-f",
        "-",
        "--namespace",
        "ml",
    ]
    job = yaml.safe_load((tmp_path / "job.yaml").read_text())
    for pod in _pods(job):
        (container,) = pod["containers"]
        assert container["image"] == f"ghcr.io/acme/demo-train:{sha}"
        assert container["imagePullPolicy"] == "IfNotPresent"
    assert launch_job(CVSPEC_IMAGE_TAG="v3").returncode == 0
    assert "ghcr.io/acme/demo-train:v3\n" in (tmp_path / "job.yaml").read_text()
    for tag in ("latest", "a b", "x;y"):
        refused = launch_job(CVSPEC_IMAGE_TAG=tag)
        assert refused.returncode == 2 and "never latest" in refused.stderr
        assert not (tmp_path / "job.yaml").exists()
    with (root / "specs/demo.yaml").open("a") as spec_file:  # a change the image lacks
        spec_file.write("# edited\n")
    refused = launch_job()
    assert refused.returncode == 2 and "uncommitted changes" in refused.stderr
    assert not (tmp_path / "job.yaml").exists()


def test_what_a_machine_gives_the_run_reruns_no_dvc_stage(tmp_path: Path) -> None:
    """cpus_per_node, memory_per_node and shm_size change no result: params.yaml, which DVC
    reruns the train stage on, does not hold them."""
    outputs = []
    spec = DISTRIBUTED.replace("ENGINE", "engine: slurm, nodes: 2RESOURCES").replace(
        "path: ../data/demo", "path: ../data/demo, versioning: dvc"
    )
    for n, resources in enumerate(("", ", cpus_per_node: 64, memory_per_node: 400GiB")):
        root = project(tmp_path / str(n), spec.replace("RESOURCES", resources))
        result = cvspec("build", cwd=root)
        assert result.code == 0, result.err
        generated = root / "generated/demo"
        outputs.append([(generated / name).read_text() for name in ("params.yaml", "dvc.yaml")])
    assert outputs[0] == outputs[1]
    assert "memory_per_node" not in outputs[0][0]
