"""Launch files for training on more than one GPU or machine: torchrun, Slurm, Kubernetes.

`train.distributed.engine` picks one; `cvspec run --stage train` itself runs torchrun on this
machine (nodes: 1). Kubernetes gets pytorchjob.yaml and pytorchjob.sh, which creates the job
with the train image of the checked-out commit. Each file starts `python -m cvspec.train` on
the generated config tree under torchrun, so every engine trains exactly what `cvspec run`
trains.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any

from cvspec.generate.api import Artifact, BuildContext
from cvspec.generate.builtin.docker import UID
from cvspec.generate.builtin.train_config import data_root
from cvspec.generate.render import dump_yaml
from cvspec.package.images import registry_host, repository
from cvspec.spec.model_train import node_resources

NAME = "launch"
FILES = {"torchrun": "launch/torchrun.sh", "slurm": "launch/train.sbatch"}
JOB = "launch/pytorchjob.yaml"
JOB_SCRIPT = "launch/pytorchjob.sh"  # fills in the image tag and creates the job
# The job's image tag until pytorchjob.sh puts the commit's SHA there: not an image reference,
# so the file applied as it is starts no pod (InvalidImageName) rather than some `latest`.
TAG_PLACEHOLDER = "${CVSPEC_IMAGE_TAG}"
WORKDIR = "/app"  # the train image's working folder (docker generator)
BACKOFF_LIMIT = 6  # pod restarts before the PyTorchJob fails


class LaunchGenerator:
    """Plans generated/<project>/launch/: the launcher `train.distributed.engine` names."""

    name = NAME
    version = "2"

    def plan(self, spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
        """Nothing for engine none; otherwise the launch file (and for Kubernetes its script)."""
        dist = spec.train.distributed
        if dist.engine == "none":
            return
        if dist.engine == "kubernetes":
            yield from _kubernetes(spec, ctx)
            return
        path = FILES[dist.engine]
        asked = node_resources(spec.train)
        context = {
            "project": ctx.project,
            "nodes": dist.nodes,
            "gpus": dist.gpus_per_node,
            "gpu": spec.deploy.gpu,  # Slurm asks for GPUs only when the image uses them
            "cpus": asked.cpus,
            "mem": slurm_memory(asked.memory),
            "config_dir": f"{ctx.out_dir}/train",
            "data": data_root(spec, ctx),
            "up": _up(ctx, path),
            "script": f"{ctx.out_dir}/{path}",
        }
        yield Artifact(path, NAME, "shell", template=f"{path}.j2", context=context)


def _up(ctx: BuildContext, path: str) -> str:
    """From the folder of generated/<project>/<path> back to the repository root."""
    return "/".join(".." for _ in posixpath.dirname(f"{ctx.out_dir}/{path}").split("/"))


def _kubernetes(spec: Any, ctx: BuildContext) -> Iterator[Artifact]:
    """pytorchjob.yaml, its image tag left to fill in, and pytorchjob.sh that fills it in."""
    job = pytorch_job(spec, ctx)
    script = f"{ctx.out_dir}/{JOB_SCRIPT}"
    note = (
        f"# Launch: bash {script} [kubectl options]\n"
        f"# It creates this job with the train image of the checked-out commit: {TAG_PLACEHOLDER}\n"
        "# becomes the commit's git SHA, the tag CI's package job pushes. Applied as it is, the\n"
        "# job starts no pod (InvalidImageName), rather than one of an unknown image.\n"
    )
    yield Artifact(JOB, NAME, "yaml", data=note + dump_yaml(job))
    context = {
        "job": job["metadata"]["name"],
        "job_file": f"{ctx.out_dir}/{JOB}",
        "repository": repository(spec, "train"),
        "registry": registry_host(repository(spec, "train")),
        "placeholder": TAG_PLACEHOLDER,
        "up": _up(ctx, JOB_SCRIPT),
        "script": script,
    }
    yield Artifact(JOB_SCRIPT, NAME, "shell", template=f"{JOB_SCRIPT}.j2", context=context)


def torchrun_args(spec: Any, ctx: BuildContext, endpoint: str, rdzv_id: str) -> list[str]:
    """`python -m torch.distributed.run ... -m cvspec.train --config-dir ...` as argv."""
    dist = spec.train.distributed
    return [
        "python",
        "-m",
        "torch.distributed.run",
        f"--nnodes={dist.nodes}",
        f"--nproc-per-node={dist.gpus_per_node}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={endpoint}",
        f"--rdzv-id={rdzv_id}",
        "-m",
        "cvspec.train",
        "--config-dir",
        f"{ctx.out_dir}/train",
    ]


def pytorch_job(spec: Any, ctx: BuildContext) -> dict[str, Any]:
    """A Kubeflow PyTorchJob: one Master pod and nodes - 1 Worker pods of the train image.

    The image's tag is TAG_PLACEHOLDER, which pytorchjob.sh replaces with the commit's SHA:
    one immutable image for every pod and restart, pulled once per node (IfNotPresent).
    Each pod gets the node's share of train.distributed (cpus_per_node, memory_per_node, of it
    shm_size as /dev/shm), as requests equal to limits: Guaranteed QoS, the last pods a node
    under memory pressure evicts.

    The training operator gives every pod MASTER_ADDR and MASTER_PORT; torchrun's c10d
    rendezvous there assigns the ranks. The images and the runs live on two volumes the cluster
    provides (PersistentVolumeClaims <project>-data and <project>-runs, ReadWriteMany; a '_' in
    the project's name is a '-' in every Kubernetes name).
    """
    dist = spec.train.distributed
    name = ctx.project.replace("_", "-")  # Kubernetes names are DNS names: no '_'
    data = data_root(spec, ctx)
    mount = data if posixpath.isabs(data) else posixpath.join(WORKDIR, data)
    argv = torchrun_args(spec, ctx, "$(MASTER_ADDR):$(MASTER_PORT)", f"{ctx.project}-train")
    asked = node_resources(spec.train)
    share = {"cpu": asked.cpus, "memory": quantity(asked.memory)}
    limits: dict[str, Any] = dict(share)
    if spec.deploy.gpu:
        limits["nvidia.com/gpu"] = dist.gpus_per_node
    container: dict[str, Any] = {
        "name": "pytorch",  # the name the training operator looks for
        "image": f"{repository(spec, 'train')}:{TAG_PLACEHOLDER}",
        "imagePullPolicy": "IfNotPresent",  # the tag names one build: no pull per restart
        "command": argv[:3],
        "args": argv[3:],
        "resources": {"requests": share, "limits": limits},
        "volumeMounts": [
            {"name": "data", "mountPath": mount, "readOnly": True},
            {"name": "runs", "mountPath": f"{WORKDIR}/runs"},
            # data loader workers hand batches over here, and NCCL talks between GPUs
            {"name": "shm", "mountPath": "/dev/shm"},
        ],
        # what a namespace enforcing the `restricted` Pod Security Standard asks of a container
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    pod = {
        "metadata": {"labels": _labels(ctx)},
        "spec": {
            # The image's non-root user; fsGroup makes the runs volume writable to it, where a
            # fresh volume's root would belong to root. OnRootMismatch: a volume already owned
            # so is not walked file by file at every start.
            "securityContext": {
                "runAsUser": UID,
                "runAsGroup": UID,
                "fsGroup": UID,
                "fsGroupChangePolicy": "OnRootMismatch",
                "runAsNonRoot": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            # Training never calls the Kubernetes API (the ranks meet through torchrun's
            # rendezvous): no service account token in the pods for code or data to read.
            "automountServiceAccountToken": False,
            "containers": [container],
            "volumes": [
                {  # read-only claim: training never writes the dataset, nor fsGroup it
                    "name": "data",
                    "persistentVolumeClaim": {"claimName": f"{name}-data", "readOnly": True},
                },
                {"name": "runs", "persistentVolumeClaim": {"claimName": f"{name}-runs"}},
                # tmpfs of this size (Kubernetes' own /dev/shm is 64 MB), counted in the memory
                {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": quantity(asked.shm)}},
            ],
        },
    }
    replicas: dict[str, Any] = {
        "Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": pod}
    }
    if dist.nodes > 1:
        replicas["Worker"] = {
            "replicas": dist.nodes - 1,
            "restartPolicy": "OnFailure",
            "template": pod,
        }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": _job_name(name, dist.nodes), "labels": _labels(ctx)},
        "spec": {
            # OnFailure restarts a pod that failed, so a preempted node resumes from the last
            # checkpoint; the limit (a Kubernetes Job's default) stops a job that fails on every
            # start (a wrong config, a missing volume) instead of restarting it for ever.
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": BACKOFF_LIMIT},
            "pytorchReplicaSpecs": replicas,
        },
    }


def slurm_memory(size: int) -> str:
    """Bytes as Slurm's --mem: '48G', or MiB rounded up, '11671M' (Slurm's G and M are 1024s)."""
    return f"{size // 2**30}G" if size % 2**30 == 0 else f"{-(-size // 2**20)}M"


def quantity(size: int) -> str:
    """Bytes as a Kubernetes quantity: '12Gi', '1536Mi', or a plain count."""
    for unit, scale in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size % scale == 0:
            return f"{size // scale}{unit}"
    return str(size)


def _job_name(name: str, nodes: int) -> str:
    """<name>-train, short enough for the operator's pod Services, <job>-master-0 and
    <job>-worker-<i>: each a DNS label of at most 63 characters."""
    suffix = max(len("-master-0"), len(f"-worker-{max(nodes - 2, 0)}"))
    return f"{name}-train"[: 63 - suffix].rstrip("-")


def _labels(ctx: BuildContext) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": ctx.project,
        "app.kubernetes.io/component": "train",
        "app.kubernetes.io/managed-by": "cvspec",
    }
